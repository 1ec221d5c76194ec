//! A provider that echoes the API key in its answers, seen from the editor: the real `codetier`
//! binary over stdio shows, caches and logs the answer with the key scrubbed.
//!
//! The fake provider puts the request's bearer token into the answer (and the reasoning), a few
//! characters a delta, so the key also arrives split across SSE events. Nothing the editor
//! receives (command results, diagnostics, messages, progress, hover), nothing in the on-disk
//! cache and nothing in the server's log may hold it.

use std::path::Path;
use std::time::Duration;

use codetier_tests::client::TestServer;
use codetier_tests::fake::{Answer, Behavior, FakeProvider, Script};
use serde_json::{json, Value};

const KEY: &str = "sk-key-echo-test-0c5d7e9a-SECRET";
const URI: &str = "file:///tmp/codetier-key-echo/src/lib.rs";
const WAIT: Duration = Duration::from_secs(20);

const LIB: &str = "fn average(values: &[i32]) -> i32 {\n    let mut sum = 0;\n    for i in 0..=values.len() {\n        sum += values[i];\n    }\n    sum / values.len() as i32\n}\n";

/// The explanation's headline is shown as a diagnostic and a message; the rest on hover.
const EXPLANATION: &str = "Your request carried the key {key} in its header.\n\n\
The loop also reads past the end: {key} is not needed to see it.";

/// One finding whose message and replacement hold the key.
const FINDINGS: &str = r#"[{"line": 3, "severity": "error", "message": "the key {key} leaks here", "replacement": "    for i in 0..values.len() { // {key}"}]"#;

/// Everything, split three characters a delta.
fn echoing(answer: &str) -> Behavior {
    Behavior {
        answer: Answer::Text(answer.to_owned()),
        reasoning: Some("Thinking about {key} first.".into()),
        echo_key: true,
        token_chars: Some(3),
        ..Behavior::default()
    }
}

fn range(sl: u32, sc: u32, el: u32, ec: u32) -> Value {
    json!({ "start": { "line": sl, "character": sc }, "end": { "line": el, "character": ec } })
}

fn execute(server: &mut TestServer, action: &str, token: &str) -> Value {
    let id = server.send(
        "workspace/executeCommand",
        json!({
            "command": format!("codetier.{action}"),
            "arguments": [{ "uri": URI, "range": range(2, 0, 4, 5) }],
            "workDoneToken": token,
        }),
    );
    server
        .response(id, WAIT)
        .unwrap_or_else(|e| panic!("{action} failed: {e}"))
}

/// Every byte of every file under `dir`, so a key in any cache file (SQLite, its WAL) is found.
fn files_holding(dir: &Path, needle: &[u8], found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_holding(&path, needle, found);
        } else if let Ok(bytes) = std::fs::read(&path) {
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(path.display().to_string());
            }
        }
    }
}

fn cache_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                if e.path().is_dir() {
                    cache_files(&e.path())
                } else {
                    1
                }
            })
            .sum()
    })
}

#[test]
fn an_echoed_key_never_reaches_the_editor_the_cache_or_the_log() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let script = Script {
        default: echoing(EXPLANATION),
        rules: vec![codetier_tests::fake::Rule {
            model: Some("qwen3-coder-30b".into()),
            requests: None,
            behavior: echoing(FINDINGS),
        }],
        expected_key: Some(KEY.into()),
        ..Script::default()
    };
    let fake = rt
        .block_on(FakeProvider::start(script))
        .expect("the fake provider starts");
    let mut server = TestServer::builder()
        .env("CODETIER_BASE_URL", &fake.base_url())
        .env("GLOBAL_API_KEY", KEY)
        .start();
    server.open(URI, "rust", LIB);

    // Explain: the answer holds the key twice, split across deltas.
    let explained = execute(&mut server, "explain", "explain-1");
    assert_eq!(
        explained["text"],
        "Your request carried the key *** in its header.\n\n\
         The loop also reads past the end: *** is not needed to see it.",
        "{explained}"
    );
    let diagnostics =
        server.wait_diagnostics(URI, WAIT, |d| d.iter().any(|x| x["source"] == "codetier"));
    let headline = server.wait_notification("window/showMessage", WAIT, |m| {
        m["message"].as_str().is_some_and(|s| s.contains("carried"))
    });
    assert!(
        headline["message"]
            .as_str()
            .is_some_and(|m| m.contains("the key *** in")),
        "{headline}"
    );
    let hover = server.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": URI }, "position": { "line": 2, "character": 8 } }),
    );

    // Asked again, it comes from the cache, still scrubbed.
    let cached = execute(&mut server, "explain", "explain-2");
    assert_eq!(cached["cached"], true, "{cached}");
    assert_eq!(cached["text"], explained["text"]);

    // Review on the coder tier: the finding's message and proposed fix hold the key.
    let id = server.send(
        "workspace/executeCommand",
        json!({
            "command": "codetier.review",
            "arguments": [{ "uri": URI, "range": range(2, 0, 4, 5), "tier": "coder" }],
            "workDoneToken": "review-1",
        }),
    );
    let reviewed = server.response(id, WAIT).expect("review succeeds");
    assert_eq!(
        reviewed["findings"].as_array().map(Vec::len),
        Some(1),
        "{reviewed}"
    );
    let findings = server.wait_diagnostics(URI, WAIT, |d| {
        d.iter()
            .any(|x| x["message"].as_str().is_some_and(|m| m.contains("leaks")))
    });
    let finding = findings
        .iter()
        .find(|x| x["message"].as_str().is_some_and(|m| m.contains("leaks")))
        .cloned()
        .unwrap_or_default();
    assert_eq!(finding["message"], "the key *** leaks here", "{finding}");
    let fixes = server.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": URI }, "range": finding["range"],
                "context": { "diagnostics": [finding], "only": ["quickfix"] } }),
    );

    let usage = server.request(
        "workspace/executeCommand",
        json!({ "command": "codetier.usage", "arguments": [] }),
    );

    // Everything the editor got, in one place.
    let mut seen = vec![
        explained,
        cached,
        reviewed,
        hover,
        fixes.clone(),
        usage,
        json!(diagnostics),
        json!(findings),
        headline,
    ];
    for method in [
        "textDocument/publishDiagnostics",
        "window/showMessage",
        "window/logMessage",
        "$/progress",
    ] {
        seen.extend(server.take_notifications(method));
    }
    seen.extend(server.server_requests("workspace/applyEdit"));
    let everything = serde_json::to_string(&seen).unwrap_or_default();
    assert!(
        !everything.contains(KEY),
        "the key reached the editor: {everything}"
    );
    assert!(
        everything.contains("for i in 0..values.len() { // ***"),
        "the quick fix is there, scrubbed: {fixes}"
    );

    // The provider did echo the key: every request carried it.
    let sent = fake.requests();
    assert_eq!(sent.len(), 2, "explain once (then cached), review once");
    assert!(sent.iter().all(|r| r.key_matched == Some(true)));

    let home = server.home().to_owned();
    server.shutdown();
    assert!(
        cache_files(&home.join("cache")) > 0,
        "the answers were cached on disk"
    );
    let mut leaked = Vec::new();
    files_holding(&home, KEY.as_bytes(), &mut leaked);
    assert!(leaked.is_empty(), "the key is stored in {leaked:?}");
    let log = server.stderr();
    assert!(!log.contains(KEY), "the key reached the log:\n{log}");
}
