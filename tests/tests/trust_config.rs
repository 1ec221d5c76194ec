//! A hostile repository's `.codetier.toml` over stdio and in the CLI: it cannot loosen privacy,
//! change models, prices or request bodies, or make the server read a device; the user is told
//! which keys were refused and the rest of the file applies. Asserted on what the fake provider
//! received.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use codetier_tests::client::{codetier_bin, TestServer};
use codetier_tests::fake::{Answer, Behavior, FakeProvider, RecordedRequest, Script};
use serde_json::{json, Value};

const KEY: &str = "sk-trust-config-test-91d2-SECRET";
const WAIT: Duration = Duration::from_secs(20);

/// Tries everything a workspace may not do, plus one thing it may (context lines).
const HOSTILE: &str = r#"
[privacy]
redact_secrets = false
exclude = []

[tiers.flash]
model = "deepseek-r1"
output_usd_per_million = 0.0000001
extra_body = { n = 64 }

[context]
surrounding_lines = 2
"#;

const REFUSED: [&str; 4] = [
    "privacy.redact_secrets",
    "tiers.flash.model",
    "tiers.flash.output_usd_per_million",
    "tiers.flash.extra_body",
];

/// A secret the prompt must never carry, and code around it.
const SECRET: &str = "ghp_Zx8Kq2Lm9Np4Rs7Tv1Wy3Ab6Cd0Ef5Gh8Jk";
const FINDINGS: &str = r#"[{"line": 2, "severity": "warning", "message": "token in source"}]"#;

fn lib_rs() -> String {
    format!("fn main() {{\n    let token = \"{SECRET}\";\n    println!(\"{{}}\", token);\n}}\n")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn findings() -> Script {
    Script::always(Behavior {
        answer: Answer::Text(FINDINGS.to_owned()),
        ..Behavior::default()
    })
}

fn project(workspace_file: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join(".git")).expect("mkdir .git");
    std::fs::create_dir_all(dir.path().join("src")).expect("mkdir src");
    std::fs::write(dir.path().join("src/lib.rs"), lib_rs()).expect("write lib.rs");
    std::fs::write(dir.path().join(".env"), format!("TOKEN={SECRET}\n")).expect("write .env");
    if let Some(text) = workspace_file {
        std::fs::write(dir.path().join(".codetier.toml"), text).expect("write .codetier.toml");
    }
    dir
}

fn prompt_of(request: &RecordedRequest) -> String {
    request
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// What every request the fake received must (not) hold, whoever sent it.
fn assert_user_settings_held(requests: &[RecordedRequest]) {
    assert!(!requests.is_empty(), "nothing reached the provider");
    for r in requests {
        assert_eq!(
            r.model, "deepseek-v4-flash",
            "the workspace changed the model"
        );
        assert!(
            r.body.get("n").is_none(),
            "extra_body from the workspace: {}",
            r.body
        );
        assert_eq!(
            r.body["thinking"],
            json!({ "type": "disabled" }),
            "the user's extra_body stays"
        );
        let prompt = prompt_of(r);
        assert!(
            !prompt.contains(&SECRET[..12]),
            "the secret was sent: {prompt}"
        );
    }
}

fn review(server: &mut TestServer, uri: &str) -> Result<Value, Value> {
    let id = server.send(
        "workspace/executeCommand",
        json!({
            "command": "codetier.review",
            "arguments": [{ "uri": uri, "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 4, "character": 0 } } }],
            "workDoneToken": "review-1",
        }),
    );
    server.response(id, WAIT)
}

fn message_containing(server: &TestServer, needle: &str) -> Value {
    server.wait_notification("window/showMessage", WAIT, |m| {
        m["message"].as_str().is_some_and(|s| s.contains(needle))
    })
}

#[test]
fn over_lsp_a_workspace_file_cannot_loosen_privacy_or_change_what_is_spent() {
    let rt = runtime();
    let fake = rt.block_on(FakeProvider::start(findings())).expect("fake");
    let dir = project(Some(HOSTILE));
    let mut server = TestServer::builder()
        .env("CODETIER_BASE_URL", &fake.base_url())
        .env("GLOBAL_API_KEY", KEY)
        .root(dir.path())
        .start();

    // One warning names the file and each refused key; nothing else is refused.
    let warning = message_containing(&server, "refused: a workspace file");
    assert_eq!(warning["type"], 2, "a warning: {warning}");
    let text = warning["message"].as_str().unwrap_or_default();
    assert!(
        text.contains(&dir.path().join(".codetier.toml").display().to_string()),
        "{text}"
    );
    for key in REFUSED {
        assert!(
            text.contains(&format!("`{key}`")),
            "{key} not named: {text}"
        );
    }
    assert!(
        !text.contains("`privacy.exclude`"),
        "adding nothing is not refused: {text}"
    );
    assert!(
        !text.contains("`context."),
        "context keys are the workspace's to set: {text}"
    );

    let uri = format!("file://{}", dir.path().join("src/lib.rs").display());
    server.open(&uri, "rust", &lib_rs());
    let result = review(&mut server, &uri).expect("review answers");
    assert_eq!(result["model"], "deepseek-v4-flash", "{result}");
    // Priced at the user's (built-in) flash price, not the workspace's near-zero one.
    let output = result["usage"]["output_tokens"]
        .as_f64()
        .unwrap_or_default();
    let cost = result["cost_usd"].as_f64().unwrap_or_default();
    assert!(output > 0.0, "{result}");
    assert!((cost - output * 0.25 / 1e6).abs() < 1e-12, "{result}");
    assert_user_settings_held(&fake.requests());

    // `.env` stays excluded although the workspace wrote `exclude = []`.
    let env_uri = format!("file://{}", dir.path().join(".env").display());
    server.open(&env_uri, "plaintext", &format!("TOKEN={SECRET}\n"));
    let before = fake.requests().len();
    let refused = review(&mut server, &env_uri);
    let shown = format!("{refused:?}");
    assert!(shown.contains("privacy.exclude"), "{shown}");
    assert_eq!(
        fake.requests().len(),
        before,
        "an excluded file reached the provider"
    );
    let _ = server.take_notifications("window/showMessage");
    let _ = server.take_notifications("$/progress");
    let _ = server.take_notifications("textDocument/publishDiagnostics");
    let _ = server.take_server_requests("window/workDoneProgress/create");
    server.shutdown();
}

#[test]
fn a_workspace_file_that_is_a_device_is_refused_and_the_server_keeps_serving() {
    let rt = runtime();
    let fake = rt.block_on(FakeProvider::start(findings())).expect("fake");
    for target in ["/dev/zero", "/dev/stdin"] {
        let dir = project(None);
        std::os::unix::fs::symlink(target, dir.path().join(".codetier.toml")).expect("symlink");
        let mut server = TestServer::builder()
            .env("CODETIER_BASE_URL", &fake.base_url())
            .env("GLOBAL_API_KEY", KEY)
            .root(dir.path())
            .start();
        let error = message_containing(&server, "not a regular file");
        assert_eq!(error["type"], 1, "{error}");
        let uri = format!("file://{}", dir.path().join("src/lib.rs").display());
        server.open(&uri, "rust", &lib_rs());
        let result = review(&mut server, &uri).expect("the server still answers");
        assert_eq!(result["model"], "deepseek-v4-flash", "{target}: {result}");
        let _ = server.take_notifications("window/showMessage");
        let _ = server.take_notifications("$/progress");
        let _ = server.take_notifications("textDocument/publishDiagnostics");
        let _ = server.take_server_requests("window/workDoneProgress/create");
        server.shutdown();
    }
}

/// Runs the CLI in `dir` against `fake`.
fn cli(dir: &Path, fake: &FakeProvider, args: &[&str]) -> std::process::Output {
    let home = dir.join(".home");
    std::process::Command::new(codetier_bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env_remove("CODETIER_LOG")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("GLOBAL_API_KEY", KEY)
        .env("CODETIER_BASE_URL", fake.base_url())
        .output()
        .expect("run codetier")
}

#[test]
fn in_the_cli_a_workspace_file_cannot_loosen_privacy_or_change_what_is_spent() {
    let rt = runtime();
    let fake = rt.block_on(FakeProvider::start(findings())).expect("fake");
    let dir = project(Some(HOSTILE));
    let out = cli(
        dir.path(),
        &fake,
        &["review", "--format", "json", "src/lib.rs", ".env"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for key in REFUSED {
        assert!(
            stderr.contains(&format!("`{key}`")),
            "{key} not named: {stderr}"
        );
    }
    assert!(!stdout.contains(KEY) && !stderr.contains(KEY));
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let skipped = report.to_string();
    assert!(
        skipped.contains(".env") && skipped.contains("privacy.exclude"),
        "{skipped}"
    );
    let requests = fake.requests();
    assert_user_settings_held(&requests);
    assert!(
        requests.iter().all(|r| !prompt_of(r).contains("TOKEN=")),
        ".env reached the provider"
    );
}
