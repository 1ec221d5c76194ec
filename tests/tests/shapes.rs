//! The large JSON shapes editors and pipelines read, pinned as `insta` snapshots: the
//! `initialize` result, code-action lists (literals and bare commands, with quick fixes), command
//! results, and the CLI's SARIF. Volatile fields (latency, paths, the version) are filtered.
//!
//! A deliberate change of a shape: `cargo insta review` (or `INSTA_UPDATE=always`) and commit
//! the new snapshot with the change that made it.

use std::process::{Command, Stdio};
use std::time::Duration;

use codetier_tests::bench::Bench;
use codetier_tests::client::{codetier_bin, TestServer};
use codetier_tests::fake::{Answer, Behavior, FakeProvider, Script};
use serde_json::{json, Value};

const KEY: &str = "sk-shapes-test-5d1e-SECRET";
const URI: &str = "file:///tmp/codetier-shapes/src/lib.rs";
const WAIT: Duration = Duration::from_secs(20);
const LIB: &str =
    "fn main() {\n    let unused = 1;\n    let d = 0;\n    println!(\"{}\", 1 / d);\n}\n";
const FINDINGS: &str = r#"[
  {"line": 2, "severity": "warning", "message": "the value is never used", "replacement": "    let _unused = 1;"},
  {"line": 4, "severity": "error", "message": "division by zero"}
]"#;

fn script(answer: &str) -> Script {
    Script::always(Behavior {
        answer: Answer::Text(answer.to_owned()),
        usage: true,
        ..Behavior::default()
    })
}

fn start(answer: &str, capabilities: Option<Value>) -> Bench {
    Bench::start(script(answer), KEY, |builder| match capabilities {
        Some(caps) => builder.capabilities(caps),
        None => builder,
    })
}

/// A client that declares nothing beyond applying edits.
fn bare() -> Value {
    json!({ "workspace": { "applyEdit": true } })
}

fn range(sl: u32, sc: u32, el: u32, ec: u32) -> Value {
    json!({ "start": { "line": sl, "character": sc }, "end": { "line": el, "character": ec } })
}

fn code_actions(server: &mut TestServer, range: Value, diagnostics: Value) -> Value {
    server.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": URI }, "range": range, "context": { "diagnostics": diagnostics } }),
    )
}

fn execute(server: &mut TestServer, action: &str, range: Value) -> Value {
    server.request(
        "workspace/executeCommand",
        json!({ "command": format!("codetier.{action}"), "arguments": [{ "uri": URI, "range": range }] }),
    )
}

#[test]
fn initialize_results() {
    let b = start("", None);
    insta::assert_json_snapshot!("initialize_vscode_like", b.server.initialize_result(), {
        ".serverInfo.version" => "[version]",
    });
    let b = start("", Some(bare()));
    insta::assert_json_snapshot!("initialize_bare", b.server.initialize_result(), {
        ".serverInfo.version" => "[version]",
    });
}

#[test]
fn code_action_lists_and_quick_fixes() {
    let mut b = start(FINDINGS, None);
    b.server.open(URI, "rust", LIB);
    // A cursor inside `main`: every action, widened to the function.
    insta::assert_json_snapshot!(
        "code_actions_at_a_cursor",
        code_actions(&mut b.server, range(2, 8, 2, 8), json!([]))
    );
    let review = execute(&mut b.server, "review", range(0, 0, 5, 0));
    insta::assert_json_snapshot!("review_result", review, {
        ".latency_ms" => "[latency]",
    });
    let diagnostics = b.server.wait_diagnostics(URI, WAIT, |d| d.len() == 2);
    insta::assert_json_snapshot!("review_diagnostics", diagnostics);
    // The diagnostics sent back: quick fixes first, then the actions and their escalations.
    insta::assert_json_snapshot!(
        "code_actions_with_findings",
        code_actions(&mut b.server, range(1, 0, 1, 18), json!(diagnostics))
    );
}

#[test]
fn bare_clients_get_commands() {
    let mut b = start(FINDINGS, Some(bare()));
    b.server.open(URI, "rust", LIB);
    insta::assert_json_snapshot!(
        "code_actions_bare_client",
        code_actions(&mut b.server, range(2, 8, 2, 8), json!([]))
    );
}

#[test]
fn explain_result() {
    let mut b = start("Division by zero on line 4: `d` is 0.", None);
    b.server.open(URI, "rust", LIB);
    let result = execute(&mut b.server, "explain", range(2, 0, 3, 30));
    insta::assert_json_snapshot!("explain_result", result, {
        ".latency_ms" => "[latency]",
    });
    b.server.told("codetier: Division by zero on line 4", &[]);
    let usage = b.server.request(
        "workspace/executeCommand",
        json!({ "command": "codetier.usage", "arguments": [] }),
    );
    insta::assert_json_snapshot!("usage_result", usage);
    b.server.told("codetier usage this session", &[]);
}

#[test]
fn review_as_sarif() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = rt
        .block_on(FakeProvider::start(script(FINDINGS)))
        .expect("the fake provider starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let home = tempfile::tempdir().expect("home");
    std::fs::create_dir_all(dir.path().join(".git")).expect("mkdir .git");
    std::fs::create_dir_all(dir.path().join("src")).expect("mkdir src");
    std::fs::write(dir.path().join("src/lib.rs"), LIB).expect("write");
    let out = Command::new(codetier_bin())
        .args(["review", "--format", "sarif", "src/lib.rs"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("GLOBAL_API_KEY", KEY)
        .env("CODETIER_BASE_URL", fake.base_url())
        .env("NO_COLOR", "1")
        .output()
        .expect("run codetier");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let sarif: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    insta::assert_json_snapshot!("review_sarif", sarif, {
        ".runs[].tool.driver.version" => "[version]",
        ".runs[].originalUriBaseIds[\"%SRCROOT%\"].uri" => "[dir]",
    });
}
