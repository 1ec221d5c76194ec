//! Estimated usage is marked wherever it is shown: a provider that reports no `usage` (as some
//! local servers do), seen from the editor (command result, progress, the usage report) and
//! from the command line (the review summary, its JSON, the explain footer). The real
//! `codetier` binary against the fake provider.

use std::process::Stdio;
use std::time::Duration;

use codetier_tests::client::{codetier_bin, TestServer};
use codetier_tests::fake::{Answer, Behavior, FakeProvider, Script};
use serde_json::{json, Value};

const KEY: &str = "sk-usage-estimated-test-93be";
const WAIT: Duration = Duration::from_secs(20);
const URI: &str = "file:///tmp/codetier-usage/src/lib.rs";
const SOURCE: &str = "fn main() {\n    let d = 0;\n    println!(\"{}\", 1 / d);\n}\n";
const FINDINGS: &str = r#"[{"line": 3, "severity": "error", "message": "divides by zero"}]"#;

/// Answers `text` and, unless `usage`, reports no token counts.
fn script(text: &str, usage: bool) -> Script {
    Script::always(Behavior {
        answer: Answer::Text(text.to_owned()),
        usage,
        ..Behavior::default()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn explain(server: &mut TestServer, token: &str) -> (Value, Vec<Value>) {
    let id = server.send(
        "workspace/executeCommand",
        json!({
            "command": "codetier.explain",
            "arguments": [{ "uri": URI, "range": {
                "start": { "line": 1, "character": 0 }, "end": { "line": 2, "character": 30 } } }],
            "workDoneToken": token,
        }),
    );
    let mut steps = Vec::new();
    loop {
        let p = server.wait_notification("$/progress", WAIT, |p| p["token"] == token);
        let end = p["value"]["kind"] == "end";
        steps.push(p["value"].clone());
        if end {
            break;
        }
    }
    (server.response(id, WAIT).expect("explain succeeds"), steps)
}

#[test]
fn the_editor_sees_estimated_usage_marked() {
    let rt = runtime();
    let fake = rt
        .block_on(FakeProvider::start(script(
            "Division by zero on line 3.",
            false,
        )))
        .expect("the fake provider starts");
    let mut server = TestServer::builder()
        .env("CODETIER_BASE_URL", &fake.base_url())
        .env("GLOBAL_API_KEY", KEY)
        .start();
    server.open(URI, "rust", SOURCE);

    let (result, steps) = explain(&mut server, "estimated");
    assert_eq!(result["usage"]["estimated"], true, "{result}");
    assert!(
        result["usage"]["output_tokens"].as_u64() > Some(0),
        "{result}"
    );
    let end = steps
        .last()
        .and_then(|s| s["message"].as_str())
        .unwrap_or_default();
    assert!(
        end.contains("· ~$0.0"),
        "the progress end marks the cost: {end:?}"
    );

    let report = server.request(
        "workspace/executeCommand",
        json!({ "command": "codetier.usage", "arguments": [] }),
    );
    assert_eq!(report["estimated"], true, "{report}");
    assert_eq!(report["per_tier"][0]["estimated"], true, "{report}");
    let shown = server.wait_notification("window/showMessage", WAIT, |m| {
        m["message"]
            .as_str()
            .is_some_and(|s| s.contains("usage this session"))
    });
    let text = shown["message"].as_str().unwrap_or_default();
    assert!(
        text.contains("~$0.0") && text.contains("estimated tokens"),
        "{text}"
    );

    // A provider that reports usage: exact, unmarked.
    fake.set_script(script("Exact this time.", true));
    server.edit(URI, (0, 0), (0, 0), "// again\n");
    let (result, steps) = explain(&mut server, "exact");
    assert_eq!(result["usage"]["estimated"], false, "{result}");
    let end = steps
        .last()
        .and_then(|s| s["message"].as_str())
        .unwrap_or_default();
    assert!(end.contains("· $0.0") && !end.contains('~'), "{end:?}");
    server.told(
        "codetier: Exact this time.",
        &["codetier: Division by zero on line 3."],
    );
}

async fn cli(
    dir: &std::path::Path,
    home: &std::path::Path,
    url: &str,
    args: &[&str],
) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(codetier_bin());
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("CODETIER_LOG")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("GLOBAL_API_KEY", KEY)
        .env("CODETIER_BASE_URL", url)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("codetier finished within 60 s")
        .expect("run codetier");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_marks_estimated_costs_in_its_summary_json_and_footer() {
    let fake = FakeProvider::start(script(FINDINGS, false))
        .await
        .expect("the fake provider starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let home = tempfile::tempdir().expect("home");
    std::fs::create_dir_all(dir.path().join(".git")).expect("mkdir .git");
    std::fs::write(dir.path().join("main.rs"), SOURCE).expect("write");
    let url = fake.base_url();

    let (code, stdout, stderr) = cli(
        dir.path(),
        home.path(),
        &url,
        &[
            "review",
            "--fresh",
            "--fail-on",
            "never",
            "--format",
            "json",
            "main.rs",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains("; cost ~$0.0"), "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(doc["summary"]["cost_estimated"], true, "{doc}");
    assert_eq!(doc["files"][0]["cost_estimated"], true, "{doc}");
    assert!(doc["summary"]["cost_usd"].as_f64() > Some(0.0), "{doc}");

    fake.set_script(script("Division by zero.", false));
    let (code, stdout, stderr) =
        cli(dir.path(), home.path(), &url, &["explain", "main.rs:2-3"]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(" ms, ~$0.0"),
        "the footer marks the cost: {stderr}"
    );

    // The same review answered from the cache costs nothing, exactly.
    fake.set_script(script(FINDINGS, false));
    let (code, _, stderr) = cli(
        dir.path(),
        home.path(),
        &url,
        &["review", "--fail-on", "never", "main.rs"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("(1 from cache)") && stderr.contains("; cost $0.000000"),
        "{stderr}"
    );
}
