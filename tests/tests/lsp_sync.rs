//! The real `codetier` binary over stdio: initialize, document sync in both encodings, and
//! bad input that must get a clear error while the server keeps running.

use codetier_tests::client::TestServer;
use serde_json::json;

const URI: &str = "file:///tmp/codetier-test/main.rs";

#[test]
fn initialize_announces_capabilities() {
    let mut server = TestServer::builder().spawn();
    let result = server.initialize();
    let caps = &result["capabilities"];
    assert_eq!(caps["textDocumentSync"]["change"], 2, "incremental sync");
    assert_eq!(caps["textDocumentSync"]["openClose"], true);
    assert_eq!(caps["hoverProvider"], true);
    assert_eq!(caps["positionEncoding"], "utf-16");
    let commands: Vec<&str> = caps["executeCommandProvider"]["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    for c in [
        "codetier.explain",
        "codetier.generate",
        "codetier.review",
        "codetier.usage",
    ] {
        assert!(
            commands.contains(&c),
            "{c} missing from executeCommandProvider"
        );
    }
    assert!(caps["codeActionProvider"]["codeActionKinds"]
        .as_array()
        .is_some_and(|k| !k.is_empty()));
    assert_eq!(result["serverInfo"]["name"], "codetier");
}

#[test]
fn utf8_is_chosen_when_offered() {
    let server = TestServer::builder().utf8(true).start();
    assert!(server.utf8());
}

fn edit_session(utf8: bool) {
    let mut server = TestServer::builder().utf8(utf8).start();
    assert_eq!(server.utf8(), utf8);
    let text = "fn main() {\r\n    let crab = \"🦀\";\r\n    let e = \"e\u{301}\";\rprintln!(\"{crab}\");\n}\n";
    server.open(URI, "rust", text);
    // Edits after the emoji, across the CRLF, after a lone CR, and past the end.
    let after_emoji = if utf8 { 20 } else { 18 };
    server.edit(URI, (1, after_emoji), (1, after_emoji), " // crab");
    server.edit(URI, (0, 11), (1, 4), "\n    ");
    server.edit(URI, (3, 0), (3, 8), "eprintln");
    server.edit(URI, (2, 13), (2, 14), "é");
    server.edit(URI, (99, 0), (120, 5), "// appended past the end\n");
    server.edit(URI, (0, 3), (0, 200), "start() {");
    let (v_client, t_client) = server.text(URI);
    let (v_server, t_server) = server.server_text(URI);
    assert_eq!(t_server, t_client);
    assert_eq!(v_server, v_client);
}

#[test]
fn incremental_edits_utf16() {
    edit_session(false);
}

#[test]
fn incremental_edits_utf8() {
    edit_session(true);
}

#[test]
fn a_flood_of_edits_is_applied_in_order() {
    let mut server = TestServer::builder().start();
    server.open(URI, "rust", "");
    let mut ids = Vec::new();
    for i in 0..1500u32 {
        server.edit(URI, (i, 0), (i, 0), &format!("line {i} ✓\n"));
        if i % 50 == 0 {
            // Requests in between must not overtake or be overtaken by the edits.
            ids.push(server.send(
                "textDocument/codeAction",
                json!({ "textDocument": { "uri": URI }, "range": { "start": { "line": i, "character": 0 }, "end": { "line": i, "character": 0 } }, "context": { "diagnostics": [] } }),
            ));
        }
    }
    for id in ids {
        server
            .response(id, codetier_tests::client::WAIT)
            .expect("codeAction answered");
    }
    let (_, client) = server.text(URI);
    let (version, text) = server.server_text(URI);
    assert_eq!(version, 1501);
    assert_eq!(text, client);
}

#[test]
fn unknown_documents_get_clear_errors() {
    let mut server = TestServer::builder().start();
    let err = server
        .try_request("codetier/viewFileText", json!({ "uri": "file:///nope.rs" }))
        .unwrap_err();
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("file:///nope.rs"),
        "{err}"
    );
    let err = server
        .try_request(
            "workspace/executeCommand",
            json!({ "command": "codetier.explain", "arguments": [{ "uri": "file:///nope.rs", "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 0, "character": 1 } } }] }),
        )
        .unwrap_err();
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no open document"),
        "{err}"
    );
    // An edit to an unknown document is logged, not fatal.
    server.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": "file:///nope.rs", "version": 2 }, "contentChanges": [{ "text": "x" }] }),
    );
    server.open(URI, "rust", "ok");
    assert_eq!(server.server_text(URI).1, "ok");
}

#[test]
fn bad_commands_and_arguments_are_refused_clearly() {
    let mut server = TestServer::builder().start();
    server.open(URI, "rust", "fn f() {}\n");
    let err = server
        .try_request(
            "workspace/executeCommand",
            json!({ "command": "codetier.nope", "arguments": [] }),
        )
        .unwrap_err();
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown command"),
        "{err}"
    );
    let err = server
        .try_request(
            "workspace/executeCommand",
            json!({ "command": "codetier.review", "arguments": [] }),
        )
        .unwrap_err();
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expects one argument"),
        "{err}"
    );
    let err = server
        .try_request(
            "workspace/executeCommand",
            json!({ "command": "codetier.review", "arguments": [{ "uri": URI }] }),
        )
        .unwrap_err();
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("range"),
        "{err}"
    );
    let err = server
        .try_request(
            "workspace/executeCommand",
            json!({ "command": "codetier.review", "arguments": [{ "uri": URI, "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 0, "character": 3 } }, "tier": "platinum" }] }),
        )
        .unwrap_err();
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("platinum"),
        "{err}"
    );
}

#[test]
fn stale_versions_and_wild_ranges_keep_the_store_consistent() {
    let mut server = TestServer::builder().start();
    server.open(URI, "rust", "abc\n😀x\n");
    server.edit(URI, (0, 0), (0, 0), "1");
    // An older version than the current one is refused (logged), the text stays.
    server.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 1 }, "contentChanges": [{ "text": "stale" }] }),
    );
    // A utf-16 offset inside the surrogate pair of 😀, and a reversed range.
    server.edit(URI, (1, 1), (1, 1), "!");
    server.edit(URI, (0, 3), (0, 1), "");
    let (_, client) = server.text(URI);
    let (_, text) = server.server_text(URI);
    assert!(!text.contains("stale"));
    assert!(text.starts_with('1'), "{text:?}");
    assert_eq!(
        text.lines().count(),
        client.lines().count(),
        "server {text:?} vs editor {client:?}"
    );
}

#[test]
fn malformed_json_rpc_gets_an_error_and_the_server_keeps_running() {
    let mut server = TestServer::builder().start();
    server.send_raw(b"Content-Length: 9\r\n\r\n{\"bad\": }");
    server.send_raw(b"Content-Length: 2\r\n\r\n[]");
    server.open(URI, "rust", "still alive");
    assert_eq!(server.server_text(URI).1, "still alive");
}

#[test]
fn requests_before_initialize_are_refused() {
    let mut server = TestServer::builder().spawn();
    let err = server
        .try_request("codetier/viewFileText", json!({ "uri": URI }))
        .unwrap_err();
    assert_eq!(err["code"], -32002, "{err}");
    server.initialize();
}

#[test]
fn version_and_help() {
    let bin = codetier_tests::client::codetier_bin();
    let out = std::process::Command::new(&bin)
        .arg("--version")
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("codetier "));
    let out = std::process::Command::new(&bin)
        .arg("--help")
        .output()
        .expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--stdio") && help.contains("--config"),
        "{help}"
    );
}

#[test]
fn the_disk_cache_opens_at_the_first_document_not_at_startup() {
    // An editor starts a server per workspace; one never given a document touches no disk
    // cache. The first document gets it ready before its first action.
    let mut server = TestServer::builder().start();
    let file = server.home().join("cache/codetier/cache.sqlite3");
    // A request answered after `initialized`: anything it started has had its turn.
    server.request(
        "textDocument/hover",
        json!({
        "textDocument": { "uri": URI }, "position": { "line": 0, "character": 0 } }),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !file.exists(),
        "no document yet, and {} exists",
        file.display()
    );
    server.open(URI, "rust", "fn main() {}\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(file.exists(), "the first document opened the disk cache");
    server.shutdown();
}
