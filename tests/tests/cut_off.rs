//! Answers the provider stopped early (`finish_reason: length` or `content_filter`), over stdio and
//! in the CLI: generate applies nothing and says why, review keeps its complete findings, explain
//! shows what arrived marked as cut off, and nothing cut off is cached.

use std::process::Stdio;
use std::time::Duration;

use codetier_tests::bench::Bench;
use codetier_tests::client::codetier_bin;
use codetier_tests::fake::{Answer, Behavior, FakeProvider, Script};
use serde_json::{json, Value};

const KEY: &str = "sk-cut-off-test-41be-SECRET";
const URI: &str = "file:///tmp/codetier-cut-off/src/lib.rs";
const WAIT: Duration = Duration::from_secs(20);
const LIB: &str =
    "fn main() {\n    let unused = 1;\n}\n\nfn largest(values: &[i32]) -> i32 {\n    todo!()\n}\n";

fn cut(text: &str, reason: &str) -> Script {
    Script::always(Behavior {
        answer: Answer::Text(text.to_owned()),
        finish_reason: Some(reason.to_owned()),
        ..Behavior::default()
    })
}

fn start(script: Script) -> Bench {
    let b = Bench::start(script, KEY, |b| b);
    b.server.open(URI, "rust", LIB);
    b
}

fn run(b: &mut Bench, action: &str, sl: u32, el: u32) -> Result<Value, Value> {
    b.server.try_request(
        "workspace/executeCommand",
        json!({ "command": format!("codetier.{action}"), "arguments": [{ "uri": URI,
            "range": { "start": { "line": sl, "character": 0 }, "end": { "line": el, "character": 0 } } }] }),
    )
}

fn message(b: &Bench, needle: &str) -> String {
    let m = b.server.wait_notification("window/showMessage", WAIT, |m| {
        m["message"].as_str().is_some_and(|s| s.contains(needle))
    });
    m["message"].as_str().unwrap_or_default().to_owned()
}

fn drain(b: &Bench) {
    for method in [
        "window/showMessage",
        "$/progress",
        "textDocument/publishDiagnostics",
    ] {
        let _ = b.server.take_notifications(method);
    }
    let _ = b
        .server
        .take_server_requests("window/workDoneProgress/create");
}

#[test]
fn a_cut_off_generate_applies_nothing_and_names_the_key() {
    let mut b = start(cut(
        "```rust\nfn largest(values: &[i32]) -> i32 {\n    let mut best =",
        "length",
    ));
    let shown = format!("{:?}", run(&mut b, "generate", 4, 7));
    assert!(
        shown.contains("cut off") && shown.contains("tiers.flash.max_tokens"),
        "{shown}"
    );
    assert!(shown.contains("nothing was applied"), "{shown}");
    assert!(
        b.server.take_applied_edits().is_empty(),
        "a cut-off answer was applied"
    );
    assert_eq!(b.server.text(URI).1, LIB);
    drain(&b);
}

#[test]
fn a_cut_off_review_keeps_its_complete_findings_and_is_not_cached() {
    let answer = r#"[{"line": 2, "severity": "warning", "message": "the value is never used"}, {"line": 6, "severity": "err"#;
    let mut b = start(cut(answer, "length"));
    let result = run(&mut b, "review", 0, 7).expect("review answers");
    assert_eq!(result["cut_off"], "length", "{result}");
    assert_eq!(
        result["findings"].as_array().map(Vec::len),
        Some(1),
        "{result}"
    );
    let note = result["cut_off_note"].as_str().unwrap_or_default();
    assert!(note.contains("1 complete finding"), "{note}");
    assert!(message(&b, "cut off").contains("tiers.flash.max_tokens"));
    // Asked again: not from the cache.
    let again = run(&mut b, "review", 0, 7).expect("review answers");
    assert_eq!(again["cached"], false, "{again}");
    assert_eq!(b.fake.requests().len(), 2);
    drain(&b);
}

#[test]
fn a_cut_off_explanation_shows_what_arrived_marked() {
    let mut b = start(cut(
        "Headline: `unused` is never read.\n\nThe binding on line 2 is",
        "length",
    ));
    let result = run(&mut b, "explain", 1, 2).expect("explain answers");
    assert_eq!(result["cut_off"], "length", "{result}");
    assert!(
        result["text"]
            .as_str()
            .is_some_and(|t| t.contains("never read")),
        "{result}"
    );
    let hover = b.server.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": URI }, "position": { "line": 1, "character": 5 } }),
    );
    assert!(hover.to_string().contains("cut off"), "{hover}");
    drain(&b);
}

#[test]
fn a_content_filter_stop_has_its_own_message() {
    let mut b = start(cut("Headline: this", "content_filter"));
    let result = run(&mut b, "explain", 1, 2).expect("explain answers");
    assert_eq!(result["cut_off"], "content_filter", "{result}");
    assert!(message(&b, "content filter").contains("codetier"));
    drain(&b);
}

#[test]
fn in_the_cli_a_cut_off_generate_write_leaves_the_file_alone_and_fails() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = rt
        .block_on(FakeProvider::start(cut(
            "```rust\nfn largest(values: &[i32]) -> i32 {\n    let",
            "length",
        )))
        .expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(dir.path().join(".git")).expect("git");
    std::fs::write(dir.path().join("lib.rs"), LIB).expect("write");
    let home = dir.path().join(".home");
    let out = std::process::Command::new(codetier_bin())
        .args(["generate", "--write", "lib.rs:6"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("GLOBAL_API_KEY", KEY)
        .env("CODETIER_BASE_URL", fake.base_url())
        .env_remove("CODETIER_LOG")
        .output()
        .expect("run codetier");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("cut off") && stderr.contains("tiers.flash.max_tokens"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("lib.rs")).expect("read"),
        LIB
    );
}
