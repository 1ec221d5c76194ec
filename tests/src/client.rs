//! A test LSP client: spawns the real `codetier` binary, speaks Content-Length framed
//! JSON-RPC over its stdio, and plays a fake editor (answers progress and applyEdit, keeps
//! its own copy of each document and sends didChange like a real editor).

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How the fake editor answers `workspace/applyEdit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EditPolicy {
    Accept,
    Refuse,
    /// Never answer (to test the server's timeout).
    Ignore,
}

/// How the fake editor answers `window/workDoneProgress/create`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreatePolicy {
    Answer,
    /// Answer with an error: the editor refuses the token.
    Refuse,
    /// Keep the request unanswered until [`TestServer::answer_held_creates`] (a slow editor).
    Hold,
}

/// Default wait for anything the server should send.
pub const WAIT: Duration = Duration::from_secs(20);

/// Path of the built `codetier` binary: `CODETIER_BIN`, or next to this test binary.
pub fn codetier_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CODETIER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/test-xxxx -> target/<profile>/codetier
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = profile_dir.join("codetier");
    if !bin.exists() {
        build_once(profile_dir);
    }
    bin
}

fn build_once(profile_dir: &Path) {
    static BUILD: Mutex<bool> = Mutex::new(false);
    let mut built = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if *built {
        return;
    }
    let release = profile_dir.ends_with("release");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "-p", "codetier", "--bin", "codetier"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "building codetier failed");
    *built = true;
}

#[derive(Default)]
struct Inbox {
    responses: HashMap<i64, Value>,
    notifications: VecDeque<Value>,
    /// Requests the server sent us, after we answered them.
    server_requests: Vec<Value>,
    /// Every `workspace/applyEdit` the fake editor applied, in order.
    applied_edits: Vec<AppliedEdit>,
    /// How many `workspace/applyEdit` it refused because their version was not the current one.
    stale_versions: usize,
    closed: bool,
}

/// One text edit the fake editor applied for a `workspace/applyEdit`.
#[derive(Clone, Debug)]
pub struct AppliedEdit {
    pub uri: String,
    /// The version the edit named, which was the editor's version when it was applied.
    pub version: i32,
    pub label: Option<String>,
    pub range: Value,
    /// The editor's text under `range` just before the edit.
    pub replaced: String,
    pub new_text: String,
    /// Whether `range` named positions inside the document (not past a line's end or the last line).
    pub in_bounds: bool,
}

struct Doc {
    text: String,
    version: i32,
    language: String,
}

struct Shared {
    inbox: Mutex<Inbox>,
    signal: Condvar,
    stdin: Mutex<ChildStdin>,
    docs: Mutex<HashMap<String, Doc>>,
    policy: Mutex<EditPolicy>,
    creates: Mutex<CreatePolicy>,
    /// Ids of `create` requests held back under [`CreatePolicy::Hold`].
    held_creates: Mutex<Vec<Value>>,
    utf8: Mutex<bool>,
    stderr: Mutex<String>,
}

impl Shared {
    fn send(&self, msg: &Value) {
        let body = serde_json::to_string(msg).expect("json");
        let mut stdin = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        let _ = write!(stdin, "Content-Length: {}\r\n\r\n{}", body.len(), body);
        let _ = stdin.flush();
    }

    fn send_raw(&self, bytes: &[u8]) {
        let mut stdin = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        let _ = stdin.write_all(bytes);
        let _ = stdin.flush();
    }
}

pub struct Builder {
    env: Vec<(String, String)>,
    args: Vec<String>,
    init_options: Value,
    utf8: bool,
    progress: bool,
    policy: EditPolicy,
    root: Option<PathBuf>,
    capabilities: Option<Value>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            env: Vec::new(),
            args: Vec::new(),
            init_options: json!({}),
            utf8: false,
            progress: true,
            policy: EditPolicy::Accept,
            root: None,
            capabilities: None,
        }
    }
}

impl Builder {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }
    pub fn init_options(mut self, options: Value) -> Self {
        self.init_options = options;
        self
    }
    /// Offer utf-8 positions (the server then prefers them).
    pub fn utf8(mut self, yes: bool) -> Self {
        self.utf8 = yes;
        self
    }
    pub fn progress(mut self, yes: bool) -> Self {
        self.progress = yes;
        self
    }
    pub fn edits(mut self, policy: EditPolicy) -> Self {
        self.policy = policy;
        self
    }
    /// Declares these client capabilities instead of the default editor-like set.
    pub fn capabilities(mut self, capabilities: Value) -> Self {
        self.capabilities = Some(capabilities);
        self
    }
    pub fn root(mut self, root: &Path) -> Self {
        self.root = Some(root.to_owned());
        self
    }

    /// Spawns the server without initializing it.
    pub fn spawn(self) -> TestServer {
        let home = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(codetier_bin());
        cmd.args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("GLOBAL_API_KEY")
            .env_remove("CODETIER_BASE_URL")
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_CACHE_HOME", home.path().join("cache"))
            .env("CODETIER_LOG", "debug");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn codetier");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let shared = Arc::new(Shared {
            inbox: Mutex::new(Inbox::default()),
            signal: Condvar::new(),
            stdin: Mutex::new(stdin),
            docs: Mutex::new(HashMap::new()),
            policy: Mutex::new(self.policy),
            creates: Mutex::new(CreatePolicy::Answer),
            held_creates: Mutex::new(Vec::new()),
            utf8: Mutex::new(false),
            stderr: Mutex::new(String::new()),
        });
        let reader = shared.clone();
        std::thread::spawn(move || read_loop(stdout, &reader));
        let log = shared.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines();
            while let Some(Ok(line)) = lines.next() {
                let mut buf = log.stderr.lock().unwrap_or_else(|e| e.into_inner());
                buf.push_str(&line);
                buf.push('\n');
            }
        });
        TestServer {
            child: Some(child),
            shared,
            next_id: 1,
            home,
            builder_utf8: self.utf8,
            builder: Some(self),
            initialized: None,
        }
    }

    /// Spawns and initializes the server.
    pub fn start(self) -> TestServer {
        let mut server = self.spawn();
        server.initialize();
        server
    }
}

fn read_loop(stdout: impl Read, shared: &Shared) {
    let mut reader = BufReader::new(stdout);
    loop {
        let mut length = None;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let mut inbox = shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
                    inbox.closed = true;
                    shared.signal.notify_all();
                    return;
                }
                Ok(_) => {}
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                length = v.trim().parse::<usize>().ok();
            }
        }
        let Some(length) = length else { continue };
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            continue;
        }
        let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
            continue;
        };
        handle_incoming(shared, msg);
    }
}

fn handle_incoming(shared: &Shared, msg: Value) {
    let is_request = msg.get("method").is_some() && msg.get("id").is_some();
    if is_request {
        let method = msg["method"].as_str().unwrap_or_default().to_owned();
        let id = msg["id"].clone();
        let reply = match method.as_str() {
            "window/workDoneProgress/create" => {
                let policy = *shared.creates.lock().unwrap_or_else(|e| e.into_inner());
                match policy {
                    CreatePolicy::Answer => {
                        Some(json!({ "jsonrpc": "2.0", "id": id, "result": null }))
                    }
                    CreatePolicy::Refuse => Some(
                        json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32603, "message": "refused by the test editor" } }),
                    ),
                    CreatePolicy::Hold => {
                        shared
                            .held_creates
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(id.clone());
                        None
                    }
                }
            }
            "workspace/applyEdit" => {
                let policy = *shared.policy.lock().unwrap_or_else(|e| e.into_inner());
                match policy {
                    EditPolicy::Accept => {
                        let result = match apply_workspace_edit(shared, &msg["params"]) {
                            Ok(()) => json!({ "applied": true }),
                            Err(why) => json!({ "applied": false, "failureReason": why }),
                        };
                        Some(json!({ "jsonrpc": "2.0", "id": id, "result": result }))
                    }
                    EditPolicy::Refuse => Some(
                        json!({ "jsonrpc": "2.0", "id": id, "result": { "applied": false, "failureReason": "refused by the test editor" } }),
                    ),
                    EditPolicy::Ignore => None,
                }
            }
            _ => Some(
                json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32601, "message": "not supported by the test client" } }),
            ),
        };
        if let Some(reply) = reply {
            shared.send(&reply);
        }
        let mut inbox = shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
        inbox.server_requests.push(msg);
        shared.signal.notify_all();
        return;
    }
    let mut inbox = shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
    if msg.get("method").is_some() {
        inbox.notifications.push_back(msg);
    } else if let Some(id) = msg.get("id").and_then(Value::as_i64) {
        inbox.responses.insert(id, msg);
    } else {
        inbox.notifications.push_back(msg);
    }
    shared.signal.notify_all();
}

/// Applies a versioned workspace edit to the editor's copy and tells the server, as an editor
/// does: all or nothing, and only when every versioned document is at the version named.
/// The `didChange` is sent while the documents are locked, so it cannot overtake (or be
/// overtaken by) typing from another thread.
fn apply_workspace_edit(shared: &Shared, params: &Value) -> Result<(), String> {
    let utf8 = *shared.utf8.lock().unwrap_or_else(|e| e.into_inner());
    let edit = &params["edit"];
    let label = params["label"].as_str().map(str::to_owned);
    let Some(changes) = edit["documentChanges"].as_array() else {
        return Err("the test editor only applies documentChanges".into());
    };
    let mut docs = shared.docs.lock().unwrap_or_else(|e| e.into_inner());
    for change in changes {
        let uri = change["textDocument"]["uri"].as_str().unwrap_or_default();
        let Some(doc) = docs.get(uri) else {
            return Err(format!("{uri} is not open"));
        };
        if let Some(v) = change["textDocument"]["version"].as_i64() {
            if v as i32 != doc.version {
                let mut inbox = shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
                inbox.stale_versions += 1;
                return Err(format!(
                    "the edit is for version {v}, the document is at version {}",
                    doc.version
                ));
            }
        }
    }
    let mut applied = Vec::new();
    let mut notifications = Vec::new();
    for change in changes {
        let uri = change["textDocument"]["uri"].as_str().unwrap_or_default();
        let Some(doc) = docs.get_mut(uri) else {
            continue;
        };
        let mut content_changes = Vec::new();
        let mut edits: Vec<&Value> = change["edits"]
            .as_array()
            .map(|e| e.iter().collect())
            .unwrap_or_default();
        // Apply from the end so earlier ranges stay valid.
        edits.sort_by_key(|e| {
            std::cmp::Reverse((
                e["range"]["start"]["line"].as_u64(),
                e["range"]["start"]["character"].as_u64(),
            ))
        });
        for e in edits {
            let text = e["newText"].as_str().unwrap_or_default();
            applied.push(AppliedEdit {
                uri: uri.to_owned(),
                version: doc.version,
                label: label.clone(),
                range: e["range"].clone(),
                replaced: naive::slice(&doc.text, &e["range"], utf8),
                new_text: text.to_owned(),
                in_bounds: naive::in_bounds(&doc.text, &e["range"]["start"], utf8)
                    && naive::in_bounds(&doc.text, &e["range"]["end"], utf8),
            });
            naive::apply(&mut doc.text, &e["range"], text, utf8);
            content_changes.push(json!({ "range": e["range"], "text": text }));
        }
        doc.version += 1;
        notifications.push(json!({
            "jsonrpc": "2.0", "method": "textDocument/didChange",
            "params": { "textDocument": { "uri": uri, "version": doc.version }, "contentChanges": content_changes }
        }));
    }
    for n in notifications {
        shared.send(&n);
    }
    drop(docs);
    let mut inbox = shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
    inbox.applied_edits.extend(applied);
    Ok(())
}

pub struct TestServer {
    child: Option<Child>,
    shared: Arc<Shared>,
    next_id: i64,
    home: tempfile::TempDir,
    builder_utf8: bool,
    builder: Option<Builder>,
    /// The server's answer to `initialize`, once it was sent.
    initialized: Option<Value>,
}

impl TestServer {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The temporary HOME the server runs with (config and cache live under it).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn initialize(&mut self) -> Value {
        let b = self.builder.take().unwrap_or_default();
        let encodings = if self.builder_utf8 {
            json!(["utf-8", "utf-16"])
        } else {
            json!(["utf-16"])
        };
        let root = b.root.as_ref().map(|r| format!("file://{}", r.display()));
        let capabilities = b.capabilities.clone().unwrap_or_else(|| {
            json!({
                "general": { "positionEncodings": encodings },
                "window": { "workDoneProgress": b.progress, "showMessage": {} },
                "workspace": { "applyEdit": true, "workspaceEdit": { "documentChanges": true }, "configuration": false },
                "textDocument": {
                    "hover": { "contentFormat": ["markdown", "plaintext"] },
                    "codeAction": {
                        "codeActionLiteralSupport": { "codeActionKind": { "valueSet": ["", "quickfix", "refactor"] } },
                        "isPreferredSupport": true
                    },
                    "publishDiagnostics": { "dataSupport": true },
                    "inlineCompletion": {}
                }
            })
        });
        let result = self.request(
            "initialize",
            json!({
                "processId": null,
                "rootUri": root,
                "capabilities": capabilities,
                "initializationOptions": b.init_options,
            }),
        );
        let utf8 = result["capabilities"]["positionEncoding"] == "utf-8";
        *self.shared.utf8.lock().unwrap_or_else(|e| e.into_inner()) = utf8;
        self.notify("initialized", json!({}));
        self.initialized = Some(result.clone());
        result
    }

    /// The server's answer to `initialize` (`Null` before it was sent).
    pub fn initialize_result(&self) -> Value {
        self.initialized.clone().unwrap_or_default()
    }

    pub fn utf8(&self) -> bool {
        *self.shared.utf8.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_edit_policy(&self, policy: EditPolicy) {
        *self.shared.policy.lock().unwrap_or_else(|e| e.into_inner()) = policy;
    }

    pub fn set_create_policy(&self, policy: CreatePolicy) {
        *self
            .shared
            .creates
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = policy;
    }

    /// Answers every `window/workDoneProgress/create` held back so far; returns how many.
    pub fn answer_held_creates(&self) -> usize {
        let held: Vec<Value> = std::mem::take(
            &mut *self
                .shared
                .held_creates
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for id in &held {
            self.shared
                .send(&json!({ "jsonrpc": "2.0", "id": id, "result": null }));
        }
        held.len()
    }

    pub fn notify(&self, method: &str, params: Value) {
        self.shared
            .send(&json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Writes raw bytes to the server's stdin (for malformed-input tests).
    pub fn send_raw(&self, bytes: &[u8]) {
        self.shared.send_raw(bytes);
    }

    /// Sends a request and returns its id without waiting.
    pub fn send(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.shared
            .send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        id
    }

    /// Waits for the response to `id`: `Ok(result)` or `Err(error object)`.
    pub fn response(&self, id: i64, timeout: Duration) -> Result<Value, Value> {
        let deadline = Instant::now() + timeout;
        let mut inbox = self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(msg) = inbox.responses.remove(&id) {
                return match msg.get("error") {
                    Some(err) => Err(err.clone()),
                    None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
                };
            }
            let now = Instant::now();
            assert!(
                !inbox.closed,
                "server closed its output while we waited for response {id}\n{}",
                self.stderr()
            );
            assert!(
                now < deadline,
                "no response to request {id} within {timeout:?}\nserver log:\n{}",
                self.stderr()
            );
            inbox = self
                .shared
                .signal
                .wait_timeout(inbox, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    pub fn try_request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.send(method, params);
        self.response(id, WAIT)
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        match self.try_request(method, params) {
            Ok(v) => v,
            Err(e) => panic!("{method} failed: {e}"),
        }
    }

    pub fn cancel(&self, id: i64) {
        self.notify("$/cancelRequest", json!({ "id": id }));
    }

    /// Waits for a notification of `method` matching `pred`, removing it from the inbox.
    pub fn wait_notification(
        &self,
        method: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let mut inbox = self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(pos) = inbox
                .notifications
                .iter()
                .position(|n| n["method"] == method && pred(&n["params"]))
            {
                let msg = inbox.notifications.remove(pos).unwrap_or_default();
                return msg["params"].clone();
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "no {method} notification within {timeout:?}\nserver log:\n{}",
                self.stderr()
            );
            inbox = self
                .shared
                .signal
                .wait_timeout(inbox, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Every notification of `method` received so far (removed from the inbox).
    pub fn take_notifications(&self, method: &str) -> Vec<Value> {
        let mut inbox = self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
        let (matching, rest): (Vec<_>, Vec<_>) = inbox
            .notifications
            .drain(..)
            .partition(|n| n["method"] == method);
        inbox.notifications = rest.into();
        matching.into_iter().map(|n| n["params"].clone()).collect()
    }

    /// The messages shown to the user so far (`window/showMessage`), removed from the inbox.
    pub fn take_messages(&self) -> Vec<String> {
        self.take_notifications("window/showMessage")
            .iter()
            .map(|p| p["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Waits until a message containing `last` was shown (messages go out in order, but may
    /// trail the reply they belong to), then takes every message shown so far and checks that
    /// each contains `last` or one of `also`.
    pub fn told(&self, last: &str, also: &[&str]) -> Vec<String> {
        let seen = self.wait_until(Duration::from_secs(10), |s| {
            let inbox = s.shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
            inbox.notifications.iter().any(|n| {
                n["method"] == "window/showMessage"
                    && n["params"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(last))
            })
        });
        let told = self.take_messages();
        assert!(seen, "no message containing {last:?}; told: {told:?}");
        for m in &told {
            assert!(
                m.contains(last) || also.iter().any(|a| m.contains(a)),
                "unexpected message {m:?}; told: {told:?}"
            );
        }
        told
    }

    /// Requests the server sent (already answered by the fake editor).
    pub fn server_requests(&self, method: &str) -> Vec<Value> {
        let inbox = self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
        inbox
            .server_requests
            .iter()
            .filter(|r| r["method"] == method)
            .cloned()
            .collect()
    }

    /// The latest diagnostics published for `uri`, waiting up to `timeout` for `pred`.
    pub fn wait_diagnostics(
        &self,
        uri: &str,
        timeout: Duration,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let p = self.wait_notification("textDocument/publishDiagnostics", timeout, |p| {
            p["uri"] == uri
                && pred(
                    p["diagnostics"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or(&[]),
                )
        });
        p["diagnostics"].as_array().cloned().unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        self.shared
            .stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    // ---- documents ---------------------------------------------------------------

    pub fn open(&self, uri: &str, language: &str, text: &str) {
        self.shared
            .docs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                uri.into(),
                Doc {
                    text: text.into(),
                    version: 1,
                    language: language.into(),
                },
            );
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": language, "version": 1, "text": text } }),
        );
    }

    /// Replaces `[(l0,c0),(l1,c1))` (in the negotiated encoding) with `text`, like typing.
    pub fn edit(&self, uri: &str, start: (u32, u32), end: (u32, u32), text: &str) {
        let utf8 = self.utf8();
        let range = json!({ "start": { "line": start.0, "character": start.1 }, "end": { "line": end.0, "character": end.1 } });
        // Sent under the documents' lock: an edit the fake editor applies from its reader
        // thread cannot slip between this change and its notification.
        let mut docs = self.shared.docs.lock().unwrap_or_else(|e| e.into_inner());
        let doc = docs
            .get_mut(uri)
            .expect("edit of a document not opened by the test");
        naive::apply(&mut doc.text, &range, text, utf8);
        doc.version += 1;
        let version = doc.version;
        self.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": [{ "range": range, "text": text }] }),
        );
    }

    pub fn close(&self, uri: &str) {
        self.shared
            .docs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uri);
        self.notify(
            "textDocument/didClose",
            json!({ "textDocument": { "uri": uri } }),
        );
    }

    /// The editor's copy of a document: (version, text).
    pub fn text(&self, uri: &str) -> (i32, String) {
        let docs = self.shared.docs.lock().unwrap_or_else(|e| e.into_inner());
        let doc = docs.get(uri).expect("document");
        let _ = &doc.language;
        (doc.version, doc.text.clone())
    }

    /// The server's copy of a document, via `codetier/viewFileText`.
    pub fn server_text(&mut self, uri: &str) -> (i32, String) {
        let v = self.request("codetier/viewFileText", json!({ "uri": uri }));
        (
            v["version"].as_i64().unwrap_or(-1) as i32,
            v["text"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Sends a request whose text is read from the editor's copy of `uri` under the documents'
    /// lock, so it is stamped with exactly the text returned (no edit slips in between).
    pub fn send_with_text(
        &mut self,
        uri: &str,
        make: impl FnOnce(i32, &str) -> (String, Value),
    ) -> (i64, i32, String) {
        let docs = self.shared.docs.lock().unwrap_or_else(|e| e.into_inner());
        let doc = docs.get(uri).expect("document");
        let (method, params) = make(doc.version, &doc.text);
        let id = self.next_id;
        self.next_id += 1;
        self.shared
            .send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        (id, doc.version, doc.text.clone())
    }

    /// The response to `id` if it has arrived (removed from the inbox), without waiting.
    pub fn poll_response(&self, id: i64) -> Option<Result<Value, Value>> {
        let mut inbox = self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
        let msg = inbox.responses.remove(&id)?;
        Some(match msg.get("error") {
            Some(err) => Err(err.clone()),
            None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
        })
    }

    /// Waits until `ready` holds (checked whenever anything arrives) or `timeout` passes;
    /// returns whether it held.
    pub fn wait_until(&self, timeout: Duration, mut ready: impl FnMut(&Self) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if ready(self) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let inbox = self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
            if inbox.closed {
                drop(inbox);
                return ready(self);
            }
            let wait = (deadline - now).min(Duration::from_millis(50));
            drop(
                self.shared
                    .signal
                    .wait_timeout(inbox, wait)
                    .unwrap_or_else(|e| e.into_inner()),
            );
        }
    }

    /// Requests of `method` the server sent (already answered), removed from the log.
    pub fn take_server_requests(&self, method: &str) -> Vec<Value> {
        let mut inbox = self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
        let (matching, rest): (Vec<_>, Vec<_>) = inbox
            .server_requests
            .drain(..)
            .partition(|r| r["method"] == method);
        inbox.server_requests = rest;
        matching
    }

    /// Edits the fake editor applied for `workspace/applyEdit` since the last call.
    pub fn take_applied_edits(&self) -> Vec<AppliedEdit> {
        let mut inbox = self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut inbox.applied_edits)
    }

    /// How many `workspace/applyEdit` were refused for naming a version that was not current.
    pub fn stale_version_edits(&self) -> usize {
        self.shared
            .inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stale_versions
    }

    /// The uris of the documents the editor has open.
    pub fn open_documents(&self) -> Vec<String> {
        let docs = self.shared.docs.lock().unwrap_or_else(|e| e.into_inner());
        let mut uris: Vec<String> = docs.keys().cloned().collect();
        uris.sort();
        uris
    }

    /// Kills the server with SIGKILL (no shutdown, no destructor) and reaps it; the test then
    /// owns what it left behind. Messages it sent are no longer checked.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's resident memory (`VmRSS` of `/proc/<pid>/status`), in KiB; `None` where
    /// `/proc` is not available.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// How many file descriptors the server has open (`/proc/<pid>/fd`).
    pub fn fd_count(&self) -> Option<usize> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()?))
            .ok()
            .map(Iterator::count)
    }

    /// Sends `exit` without `shutdown` and returns the exit status (the spec asks for 1).
    pub fn exit_without_shutdown(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        self.notify("exit", Value::Null);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "codetier did not exit within 10 s of `exit`\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Shuts down cleanly and returns the exit status.
    pub fn shutdown(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let id = self.send("shutdown", Value::Null);
        let _ = self.response(id, Duration::from_secs(10));
        self.notify("exit", Value::Null);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "codetier did not exit within 10 s of `exit`\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.child.is_none() {
            return;
        }
        if std::thread::panicking() {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            return;
        }
        let status = self.shutdown();
        let log = self.stderr();
        assert!(
            !log.contains("panicked"),
            "the server logged a panic:\n{log}"
        );
        if let Some(status) = status {
            assert!(status.success(), "codetier exited with {status}\n{log}");
        }
        let unread = self.unread();
        assert!(
            unread.is_empty(),
            "the test left {} server message(s) unread; read them (or take them, to say they do \
             not matter):\n{}",
            unread.len(),
            unread.join("\n")
        );
    }
}

impl TestServer {
    /// What the server said that the test never read: replies to its requests, and messages
    /// shown to the user (what the user sees is what a test should check). Progress,
    /// diagnostics and log lines are state the tests read when they matter.
    fn unread(&self) -> Vec<String> {
        let inbox = self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
        let mut unread: Vec<String> = inbox
            .responses
            .values()
            .map(|r| format!("reply {r}"))
            .collect();
        unread.extend(
            inbox
                .notifications
                .iter()
                .filter(|n| n["method"] == "window/showMessage")
                .map(|n| format!("message {}", n["params"])),
        );
        unread
    }
}

/// The naive model of a document the fake editor keeps: positions converted by walking chars.
pub mod naive {
    use serde_json::Value;

    /// Char offset of an LSP position, clamped like the protocol says.
    pub fn offset(text: &str, line: u64, character: u64, utf8: bool) -> usize {
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        let mut l = 0;
        while l < line {
            loop {
                if i >= chars.len() {
                    return chars.len();
                }
                let c = chars[i];
                i += 1;
                if c == '\n' {
                    break;
                }
                if c == '\r' {
                    if chars.get(i) == Some(&'\n') {
                        i += 1;
                    }
                    break;
                }
            }
            l += 1;
        }
        let mut units = 0u64;
        while i < chars.len() && chars[i] != '\n' && chars[i] != '\r' {
            let w = if utf8 {
                chars[i].len_utf8()
            } else {
                chars[i].len_utf16()
            } as u64;
            if units + w > character {
                break;
            }
            units += w;
            i += 1;
        }
        i
    }

    /// The text under an LSP range (clamped like `apply`).
    pub fn slice(text: &str, range: &Value, utf8: bool) -> String {
        let (a, b) = bounds(text, range, utf8);
        text.chars().skip(a).take(b - a).collect()
    }

    /// Whether a position names a place in the text: an existing line (or the empty line after
    /// a final newline) and a character no further than that line's end.
    pub fn in_bounds(text: &str, pos: &Value, utf8: bool) -> bool {
        let (Some(line), Some(character)) = (pos["line"].as_u64(), pos["character"].as_u64())
        else {
            return false;
        };
        let lines: Vec<&str> = text.split('\n').collect();
        let Some(l) = lines.get(line as usize) else {
            return false;
        };
        let l = l.strip_suffix('\r').unwrap_or(l);
        let len: usize = l
            .chars()
            .map(|c| if utf8 { c.len_utf8() } else { c.len_utf16() })
            .sum();
        character as usize <= len
    }

    fn bounds(text: &str, range: &Value, utf8: bool) -> (usize, usize) {
        let pos = |p: &Value| {
            offset(
                text,
                p["line"].as_u64().unwrap_or(0),
                p["character"].as_u64().unwrap_or(0),
                utf8,
            )
        };
        let (a, b) = (pos(&range["start"]), pos(&range["end"]));
        (a.min(b), a.max(b))
    }

    pub fn apply(text: &mut String, range: &Value, new_text: &str, utf8: bool) {
        let pos = |p: &Value| {
            offset(
                text,
                p["line"].as_u64().unwrap_or(0),
                p["character"].as_u64().unwrap_or(0),
                utf8,
            )
        };
        let (a, b) = (pos(&range["start"]), pos(&range["end"]));
        let (a, b) = (a.min(b), a.max(b));
        let mut chars: Vec<char> = text.chars().collect();
        chars.splice(a..b, new_text.chars());
        *text = chars.into_iter().collect();
    }
}
