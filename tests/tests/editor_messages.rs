//! What editors that show one message line and log the server's stderr (Helix, Neovim) get: the
//! usage report as one line with the table in the log, `CODETIER_LOG=debug` raising codetier's
//! own lines only, and no information line per action at the default level. The real `codetier`
//! binary over stdio, driven as Helix drives it (plain `workspace/executeCommand`, no progress
//! token), against the fake provider.

use std::time::Duration;

use codetier_tests::client::TestServer;
use codetier_tests::fake::{Answer, Behavior, FakeProvider, Script};
use serde_json::{json, Value};

const KEY: &str = "sk-editor-messages-test-5d21";
const WAIT: Duration = Duration::from_secs(20);
const URI: &str = "file:///tmp/codetier-editor-messages/src/lib.rs";
const SOURCE: &str = "fn main() {\n    let d = 0;\n    println!(\"{}\", 1 / d);\n}\n";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn fake(rt: &tokio::runtime::Runtime) -> FakeProvider {
    let script = Script::always(Behavior {
        answer: Answer::Text("Division by zero on line 3.".into()),
        usage: true,
        ..Behavior::default()
    });
    rt.block_on(FakeProvider::start(script))
        .expect("the fake provider starts")
}

/// A server with `CODETIER_LOG` set to `log` ("" leaves the level to the configuration) and
/// `RUST_LOG` to `rust_log` when given.
fn start(fake: &FakeProvider, log: &str, rust_log: Option<&str>) -> TestServer {
    let mut builder = TestServer::builder()
        .env("CODETIER_BASE_URL", &fake.base_url())
        .env("GLOBAL_API_KEY", KEY)
        .env("CODETIER_LOG", log);
    if let Some(rust_log) = rust_log {
        builder = builder.env("RUST_LOG", rust_log);
    }
    let server = builder.start();
    server.open(URI, "rust", SOURCE);
    server
}

/// Runs `action` on lines 2-3, as Helix's `:lsp-workspace-command` does.
fn run(server: &mut TestServer, action: &str) -> Value {
    let result = request(server, action);
    if action == "explain" {
        let told = server.told("codetier: Division by zero on line 3.", &[]);
        assert_eq!(told.len(), 1, "{told:?}");
    }
    result
}

fn request(server: &mut TestServer, action: &str) -> Value {
    server.request(
        "workspace/executeCommand",
        json!({
            "command": format!("codetier.{action}"),
            "arguments": [{ "uri": URI, "range": {
                "start": { "line": 1, "character": 0 }, "end": { "line": 3, "character": 0 } } }],
        }),
    )
}

#[test]
fn usage_is_one_line_for_the_status_line_and_a_table_in_the_log() {
    let rt = runtime();
    let fake = fake(&rt);
    let mut server = start(&fake, "", None);
    run(&mut server, "explain");
    run(&mut server, "review");
    server.take_notifications("window/showMessage");

    let report = server.request(
        "workspace/executeCommand",
        json!({ "command": "codetier.usage", "arguments": [] }),
    );
    assert_eq!(report["per_tier"][0]["requests"], 2, "{report}");
    let shown = server.wait_notification("window/showMessage", WAIT, |m| {
        m["message"]
            .as_str()
            .is_some_and(|s| s.contains("usage this session"))
    });
    let line = shown["message"].as_str().unwrap_or_default();
    assert!(!line.contains('\n'), "one line: {line:?}");
    assert!(
        line.contains("2 requests") && line.contains("tokens in") && line.contains("$0.0"),
        "{line}"
    );
    assert!(
        server.wait_until(WAIT, |s| s.stderr().contains("cache hits")),
        "the table is in the log:\n{}",
        server.stderr()
    );
    let log = server.stderr();
    let table = &log[log.find("usage this session").unwrap_or(0)..];
    assert!(
        table.contains("tier") && table.contains("flash") && table.contains("total"),
        "{table}"
    );
}

#[test]
fn codetier_log_debug_raises_codetier_only() {
    let rt = runtime();
    let fake = fake(&rt);
    let mut server = start(&fake, "debug", None);
    run(&mut server, "explain");
    run(&mut server, "review");
    let log = server.stderr();
    assert!(
        log.contains("DEBUG codetier"),
        "codetier's own debug lines:\n{log}"
    );
    for noisy in ["reqwest", "hyper", "globset", "h2::", "rustls"] {
        assert!(
            !log.contains(noisy),
            "{noisy} lines with CODETIER_LOG=debug:\n{log}"
        );
    }
    drop(server);

    // RUST_LOG still opens a dependency up, beside CODETIER_LOG's level for codetier.
    let mut server = start(&fake, "debug", Some("hyper_util=debug"));
    run(&mut server, "explain");
    assert!(
        server.wait_until(WAIT, |s| s.stderr().contains("hyper_util")),
        "RUST_LOG=hyper_util=debug:\n{}",
        server.stderr()
    );
    assert!(server.stderr().contains("DEBUG codetier"));
}

#[test]
fn actions_log_no_information_lines_at_the_default_level() {
    let rt = runtime();
    let fake = fake(&rt);
    let mut server = start(&fake, "", None);
    for action in ["explain", "review", "explain"] {
        run(&mut server, action);
    }
    server.edit(URI, (0, 0), (0, 0), "// edited\n");
    run(&mut server, "review");
    let log = server.stderr();
    let info: Vec<&str> = log.lines().filter(|l| l.contains(" INFO ")).collect();
    assert!(info.is_empty(), "INFO lines from plain actions: {info:#?}");
}
