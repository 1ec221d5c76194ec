//! What the LSP specification asks of every server, checked against the real binary over stdio
//! with clients that declare less than VS Code does: `$/` requests, the shutdown sequence, a
//! lying `Content-Length`, and replies shaped by the client's capabilities (code action literals,
//! `isPreferred`, `documentChanges`, echoed `Diagnostic.data`, plain-text hover).

use std::time::Duration;

use codetier_tests::bench::Bench;
use codetier_tests::client::TestServer;
use codetier_tests::fake::{Answer, Behavior, Script};
use serde_json::{json, Value};

const KEY: &str = "sk-conformance-test-77aa-SECRET";
const URI: &str = "file:///tmp/codetier-conformance/src/lib.rs";
const WAIT: Duration = Duration::from_secs(20);
const LIB: &str =
    "fn main() {\n    let unused = 1;\n    let d = 0;\n    println!(\"{}\", 1 / d);\n}\n";
const FINDINGS: &str = r#"[
  {"line": 2, "severity": "warning", "message": "the value is never used", "replacement": "    let _unused = 1;"}
]"#;

fn start(capabilities: Option<Value>) -> Bench {
    let script = Script::always(Behavior {
        answer: Answer::Text(FINDINGS.to_owned()),
        ..Behavior::default()
    });
    Bench::start(script, KEY, |builder| match capabilities {
        Some(caps) => builder.capabilities(caps),
        None => builder,
    })
}

/// A client that declares nothing beyond applying edits (pytest-lsp's bare client, old editors).
fn bare() -> Value {
    json!({ "workspace": { "applyEdit": true } })
}

fn range(sl: u32, el: u32) -> Value {
    json!({ "start": { "line": sl, "character": 0 }, "end": { "line": el, "character": 0 } })
}

/// Reviews the whole file and returns the codetier diagnostics it published.
fn review(server: &mut TestServer) -> Vec<Value> {
    server.open(URI, "rust", LIB);
    let result = server.request(
        "workspace/executeCommand",
        json!({ "command": "codetier.review", "arguments": [{ "uri": URI, "range": range(0, 5) }] }),
    );
    assert!(result["findings"].is_array(), "{result}");
    let diags = server.wait_diagnostics(URI, WAIT, |d| !d.is_empty());
    diags
        .into_iter()
        .filter(|d| d["source"] == "codetier")
        .collect()
}

fn code_actions(server: &mut TestServer, range: Value, diagnostics: Vec<Value>) -> Vec<Value> {
    server
        .request(
            "textDocument/codeAction",
            json!({ "textDocument": { "uri": URI }, "range": range, "context": { "diagnostics": diagnostics } }),
        )
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn drain(server: &TestServer) {
    for method in [
        "window/showMessage",
        "$/progress",
        "textDocument/publishDiagnostics",
        "window/logMessage",
    ] {
        let _ = server.take_notifications(method);
    }
    let _ = server.take_server_requests("window/workDoneProgress/create");
}

#[test]
fn dollar_requests_are_answered_with_method_not_found() {
    let mut b = start(None);
    let err = b
        .server
        .try_request("$/codetier/unknown", json!({}))
        .expect_err("a $/ request must get an error");
    assert_eq!(err["code"], -32601, "{err}");
    // A `$/` notification is ignored, and the server goes on.
    b.server.notify("$/setTrace", json!({ "value": "off" }));
    b.server.open(URI, "rust", LIB);
    assert_eq!(b.server.server_text(URI).1, LIB);
}

#[test]
fn after_shutdown_requests_are_invalid_and_exit_is_clean() {
    let mut b = start(None);
    b.server.request("shutdown", Value::Null);
    let err = b
        .server
        .try_request(
            "textDocument/hover",
            json!({ "textDocument": { "uri": URI }, "position": { "line": 0, "character": 0 } }),
        )
        .expect_err("no request after shutdown");
    assert_eq!(err["code"], -32600, "{err}");
    let status = b.server.exit_without_shutdown();
    assert_eq!(status.code(), Some(0), "shutdown came first");
}

#[test]
fn exit_without_shutdown_exits_with_1() {
    let mut b = start(None);
    let status = b.server.exit_without_shutdown();
    assert_eq!(status.code(), Some(1));
}

#[test]
fn a_too_short_content_length_is_answered_for_its_id() {
    let mut b = start(None);
    let body = r#"{"jsonrpc":"2.0","id":9001,"method":"codetier/viewFileText","params":{"uri":"file:///x"}}"#;
    // The next message follows at once: the cut-off tail is glued to its header.
    let next = r#"{"jsonrpc":"2.0","id":9002,"method":"codetier/viewFileText","params":{"uri":"file:///y"}}"#;
    b.server.send_raw(
        format!(
            "Content-Length: 30\r\n\r\n{body}Content-Length: {}\r\n\r\n{next}",
            next.len()
        )
        .as_bytes(),
    );
    let err = b
        .server
        .response(9001, WAIT)
        .expect_err("the cut request gets an error");
    assert_eq!(err["code"], -32700, "{err}");
    // The message behind it is not swallowed: it gets its own answer.
    let _ = b.server.response(9002, WAIT);
    // The server goes on reading.
    b.server.open(URI, "rust", LIB);
    assert_eq!(b.server.server_text(URI).1, LIB);
}

#[test]
fn a_client_without_code_action_literals_gets_commands() {
    let mut b = start(Some(bare()));
    b.server.open(URI, "rust", LIB);
    let actions = code_actions(&mut b.server, range(1, 2), Vec::new());
    assert!(!actions.is_empty());
    for a in &actions {
        assert!(a["command"].is_string(), "a Command, not a CodeAction: {a}");
        assert!(a.get("kind").is_none() && a.get("edit").is_none(), "{a}");
        assert!(
            a["title"].as_str().is_some_and(|t| t.contains("(Flash)")),
            "{a}"
        );
    }
    drain(&b.server);
}

#[test]
fn quick_fixes_follow_the_client_s_capabilities_and_need_no_echoed_data() {
    // Neovim 0.7's shape: literals, no isPreferred, no documentChanges, no dataSupport.
    let caps = json!({
        "workspace": { "applyEdit": true },
        "textDocument": {
            "codeAction": { "codeActionLiteralSupport": { "codeActionKind": { "valueSet": ["", "quickfix", "refactor"] } } },
            "publishDiagnostics": {},
            "hover": { "contentFormat": ["plaintext"] }
        }
    });
    let mut b = start(Some(caps));
    let diags = review(&mut b.server);
    assert_eq!(diags.len(), 1, "{diags:?}");
    // The client does not echo `data`.
    let mut sent = diags[0].clone();
    sent.as_object_mut().map(|d| d.remove("data"));
    let actions = code_actions(&mut b.server, sent["range"].clone(), vec![sent.clone()]);
    let fix = actions
        .iter()
        .find(|a| a["kind"] == "quickfix")
        .unwrap_or_else(|| panic!("no quick fix rebuilt from the server's notes: {actions:?}"));
    assert!(
        fix.get("isPreferred").is_none(),
        "isPreferred without support: {fix}"
    );
    let edit = &fix["edit"];
    assert!(
        edit.get("documentChanges").is_none(),
        "documentChanges without support: {edit}"
    );
    let edits = &edit["changes"][URI];
    assert_eq!(edits[0]["newText"], "    let _unused = 1;", "{edit}");

    // Hover in plain text: no markdown emphasis or fences.
    let hover = b.server.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": URI }, "position": sent["range"]["start"] }),
    );
    assert_eq!(hover["contents"]["kind"], "plaintext", "{hover}");
    let text = hover["contents"]["value"].as_str().unwrap_or_default();
    assert!(text.contains("the value is never used"), "{text}");
    assert!(!text.contains("**") && !text.contains("```"), "{text}");
    drain(&b.server);
}

#[test]
fn a_full_client_gets_versioned_preferred_fixes_and_markdown() {
    let mut b = start(None);
    let diags = review(&mut b.server);
    let actions = code_actions(&mut b.server, diags[0]["range"].clone(), diags.clone());
    let fix = actions
        .iter()
        .find(|a| a["kind"] == "quickfix")
        .unwrap_or_else(|| panic!("no quick fix: {actions:?}"));
    assert_eq!(fix["isPreferred"], true, "{fix}");
    assert!(
        fix["edit"]["documentChanges"][0]["textDocument"]["version"].is_number(),
        "{fix}"
    );
    let hover = b.server.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": URI }, "position": diags[0]["range"]["start"] }),
    );
    assert_eq!(hover["contents"]["kind"], "markdown", "{hover}");
    drain(&b.server);
}
