//! A lean LSP client for timing: spawns `codetier`, frames JSON-RPC over its stdio, reads replies on the calling thread.
//!
//! Unlike the test client (`tests/src/client.rs`) it keeps no copy of the documents and no
//! inbox: notifications from the server are read and dropped, requests from the server get a
//! null result, so the client adds as little as possible to what is timed. Replies are read on
//! the thread that sent the request (no hand-off between threads); a watchdog kills the server
//! when it stays silent for a minute, which turns a hang into an error instead of a stuck run.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

/// How long the server may stay silent while a reply is awaited.
const SILENCE: Duration = Duration::from_secs(60);

/// One `codetier` process and the pipes to it.
pub struct Lsp {
    child: Arc<Mutex<Child>>,
    pid: u32,
    stdin: BufWriter<ChildStdin>,
    /// `None` once [`Lsp::reader`] took it.
    stdout: Option<BufReader<ChildStdout>>,
    next_id: i64,
    /// Milliseconds since `epoch` of the last byte read, and whether a reply is awaited.
    watch: Arc<Watch>,
    stderr_path: PathBuf,
    // Last: the server's HOME (config, cache and stderr log) outlives the process.
    _home: tempfile::TempDir,
}

struct Watch {
    epoch: Instant,
    last_ms: AtomicU64,
    waiting: AtomicBool,
    done: AtomicBool,
}

impl Watch {
    fn touch(&self) {
        self.last_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// What to start `codetier` with.
#[derive(Default)]
pub struct Options<'a> {
    /// Extra environment, e.g. `CODETIER_BASE_URL` and the key.
    pub env: Vec<(&'a str, String)>,
    /// A command that runs `codetier` (its path appended), e.g. `valgrind --tool=callgrind`.
    pub wrapper: Vec<String>,
}

impl Lsp {
    /// Starts `bin` (`codetier`) with a fresh HOME, config and cache directory; stderr goes to a file there.
    pub fn spawn(bin: &Path, opts: &Options<'_>) -> anyhow::Result<Lsp> {
        let home = tempfile::tempdir().context("temporary HOME")?;
        let stderr_path = home.path().join("codetier.stderr");
        let stderr = std::fs::File::create(&stderr_path).context("stderr log")?;
        let mut cmd = match opts.wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(bin);
                cmd
            }
            None => Command::new(bin),
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .env_remove("GLOBAL_API_KEY")
            .env_remove("CODETIER_BASE_URL")
            .env_remove("CODETIER_LOG")
            .env_remove("RUST_LOG")
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_CACHE_HOME", home.path().join("cache"));
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;
        let stdin = BufWriter::new(child.stdin.take().context("stdin")?);
        let stdout = BufReader::with_capacity(1 << 20, child.stdout.take().context("stdout")?);
        let pid = child.id();
        let child = Arc::new(Mutex::new(child));
        let watch = Arc::new(Watch {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            done: AtomicBool::new(false),
        });
        spawn_watchdog(Arc::clone(&child), Arc::clone(&watch));
        Ok(Lsp {
            child,
            pid,
            stdin,
            stdout: Some(stdout),
            next_id: 1,
            watch,
            stderr_path,
            _home: home,
        })
    }

    /// The `initialize` request and the `initialized` notification, as an editor with
    /// work-done progress and utf-16 positions sends them. Returns the initialize result.
    pub fn initialize(&mut self) -> anyhow::Result<Value> {
        self.initialize_with(json!({}), json!({}))
    }

    /// `initialize` with `text_document` merged into the client's `textDocument` capabilities
    /// (e.g. `{ "inlineCompletion": {} }`) and `init_options` as initializationOptions.
    pub fn initialize_with(
        &mut self,
        text_document: Value,
        init_options: Value,
    ) -> anyhow::Result<Value> {
        let mut caps = json!({ "hover": { "contentFormat": ["markdown", "plaintext"] }, "codeAction": {}, "publishDiagnostics": {} });
        if let (Some(caps), Some(extra)) = (caps.as_object_mut(), text_document.as_object()) {
            caps.extend(extra.clone());
        }
        let result = self.request(
            "initialize",
            json!({
                "processId": std::process::id(),
                "rootUri": null,
                "capabilities": {
                    "general": { "positionEncodings": ["utf-16"] },
                    "window": { "workDoneProgress": true, "showMessage": {} },
                    "workspace": { "applyEdit": true, "workspaceEdit": { "documentChanges": true }, "configuration": false },
                    "textDocument": caps
                },
                "initializationOptions": init_options,
            }),
        )?;
        self.notify("initialized", json!({}))?;
        Ok(result)
    }

    pub fn notify(&mut self, method: &str, params: Value) -> anyhow::Result<()> {
        self.write(&json!({ "jsonrpc": "2.0", "method": method, "params": params }))?;
        self.stdin.flush().context("flush to codetier")
    }

    /// Writes a notification without flushing, for bursts; `request` flushes.
    pub fn notify_buffered(&mut self, method: &str, params: Value) -> anyhow::Result<()> {
        self.write(&json!({ "jsonrpc": "2.0", "method": method, "params": params }))
    }

    pub fn open(&mut self, uri: &str, text: &str) -> anyhow::Result<()> {
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "rust", "version": 0, "text": text } }),
        )
    }

    /// Sends a request and reads until its reply; `Err` for an error reply.
    pub fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.write(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))?;
        self.stdin.flush().context("flush to codetier")?;
        self.watch.touch();
        self.watch.waiting.store(true, Ordering::Relaxed);
        let reply = self.read_reply(id);
        self.watch.waiting.store(false, Ordering::Relaxed);
        let reply = reply.map_err(|e| e.context(format!("{method}: {}", self.stderr_tail())))?;
        match reply.get("error") {
            Some(err) => bail!("{method} failed: {err}"),
            None => Ok(reply.get("result").cloned().unwrap_or(Value::Null)),
        }
    }

    /// Sends a request without waiting for its reply; its id.
    pub fn send(&mut self, method: &str, params: Value) -> anyhow::Result<i64> {
        let id = self.next_id;
        self.next_id += 1;
        self.write(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))?;
        self.stdin.flush().context("flush to codetier")?;
        Ok(id)
    }

    /// Hands the server's output to a thread that sends each message, with when it was read,
    /// to the returned channel, for a client that does not wait for its replies (an editor
    /// typing on). From then on [`Lsp::request`] and [`Lsp::shutdown`] fail; dropping the
    /// `Lsp` still ends the server.
    pub fn reader(&mut self) -> anyhow::Result<std::sync::mpsc::Receiver<(Instant, Value)>> {
        let mut stdout = self.stdout.take().context("the reader was taken already")?;
        let watch = Arc::clone(&self.watch);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            while let Ok(msg) = read_message(&mut stdout, &watch) {
                if tx.send((Instant::now(), msg)).is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    /// The server's resident set size and its peak, in bytes, from `/proc/PID/status`.
    pub fn rss(&self) -> anyhow::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .context("read /proc/PID/status")?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .ok_or_else(|| anyhow!("no {name} in /proc/PID/status"))?;
            let kib: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow!("unreadable {line}"))?;
            Ok(kib * 1024)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// `shutdown` then `exit`; waits for the process (killing it after 10 s).
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        let result = self
            .request("shutdown", Value::Null)
            .and_then(|_| self.notify("exit", Value::Null));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(Some(status)) = child.try_wait() {
                drop(child);
                result?;
                if !status.success() {
                    bail!("codetier exited with {status}: {}", self.stderr_tail());
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("codetier did not exit within 10 s of `exit`");
            }
            drop(child);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn write(&mut self, msg: &Value) -> anyhow::Result<()> {
        let body = serde_json::to_vec(msg)?;
        write!(self.stdin, "Content-Length: {}\r\n\r\n", body.len())
            .and_then(|()| self.stdin.write_all(&body))
            .context("write to codetier")
    }

    fn read_reply(&mut self, id: i64) -> anyhow::Result<Value> {
        loop {
            let msg = self.read_message()?;
            let has_method = msg.get("method").is_some();
            match (has_method, msg.get("id")) {
                // A request from the server: answer it as an accommodating editor would.
                (true, Some(server_id)) => {
                    let result = if msg["method"] == "workspace/applyEdit" {
                        json!({ "applied": false, "failureReason": "benchmark client" })
                    } else {
                        Value::Null
                    };
                    let reply = json!({ "jsonrpc": "2.0", "id": server_id, "result": result });
                    self.write(&reply)?;
                    self.stdin.flush().context("flush to codetier")?;
                }
                (false, Some(reply_id)) if reply_id.as_i64() == Some(id) => return Ok(msg),
                // Notifications, and replies to requests nobody waits for any more.
                _ => {}
            }
        }
    }

    fn read_message(&mut self) -> anyhow::Result<Value> {
        let stdout = self.stdout.as_mut().context("the reader was taken")?;
        read_message(stdout, &self.watch)
    }

    /// The last lines the server wrote to stderr, for error messages.
    pub fn stderr_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("codetier stderr (last lines):\n{tail}")
    }
}

impl Drop for Lsp {
    fn drop(&mut self) {
        self.watch.done.store(true, Ordering::Relaxed);
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads one framed message.
fn read_message(stdout: &mut BufReader<ChildStdout>, watch: &Watch) -> anyhow::Result<Value> {
    let mut length = None;
    let mut line = String::new();
    loop {
        line.clear();
        let n = stdout.read_line(&mut line).context("read from codetier")?;
        if n == 0 {
            bail!("codetier closed its output");
        }
        watch.touch();
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            if length.is_some() {
                break;
            }
            continue;
        }
        if let Some(v) = trimmed.strip_prefix("Content-Length:") {
            length = v.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length.unwrap_or(0)];
    stdout
        .read_exact(&mut body)
        .context("read a message body from codetier")?;
    serde_json::from_slice(&body).context("codetier sent a message that is not JSON")
}

/// Kills the server when a reply is awaited and nothing was read for `SILENCE`.
fn spawn_watchdog(child: Arc<Mutex<Child>>, watch: Arc<Watch>) {
    std::thread::spawn(move || {
        while !watch.done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(500));
            let idle = watch
                .epoch
                .elapsed()
                .saturating_sub(Duration::from_millis(watch.last_ms.load(Ordering::Relaxed)));
            if watch.waiting.load(Ordering::Relaxed) && idle > SILENCE {
                let mut child = child.lock().unwrap_or_else(|e| e.into_inner());
                let _ = child.kill();
                return;
            }
        }
    });
}
