//! Trust over stdio, asserted on what the fake provider received: a selection that cuts a
//! secret sends none of it, files excluded by name (in any case, `.env.*`) or by what a symlink
//! resolves to are never sent, and a selection cut to fit the budget is reported with the lines
//! that were sent.

use std::path::Path;
use std::time::Duration;

use codetier_tests::bench::Bench;
use codetier_tests::client::TestServer;
use codetier_tests::fake::{Answer, Behavior, RecordedRequest, Script};
use serde_json::{json, Value};

const KEY: &str = "sk-privacy-test-91c2-SECRET";
const WAIT: Duration = Duration::from_secs(30);

/// A fake provider answering `answer`, and codetier talking to it.
fn start(answer: &str, init_options: Value) -> Bench {
    let script = Script::always(Behavior {
        answer: Answer::Text(answer.to_owned()),
        ..Behavior::default()
    });
    Bench::start(script, KEY, |b| b.init_options(init_options))
}

fn range(sl: usize, sc: usize, el: usize, ec: usize) -> Value {
    json!({ "start": { "line": sl, "character": sc }, "end": { "line": el, "character": ec } })
}

fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// Runs `codetier.<action>` on `range` of `uri` with a progress token, skipping the cache (two
/// cuts of one secret may mask to the same prompt); the reply.
fn run(
    server: &mut TestServer,
    action: &str,
    uri: &str,
    range: Value,
    diagnostics: &[String],
    token: &str,
) -> Result<Value, Value> {
    let id = server.send(
        "workspace/executeCommand",
        json!({
            "command": format!("codetier.{action}"),
            "arguments": [{ "uri": uri, "range": range, "diagnostics": diagnostics, "fresh": true }],
            "workDoneToken": token,
        }),
    );
    server.response(id, WAIT)
}

/// The `$/progress` values sent for `token`, in order, through its `end`.
fn progress(server: &TestServer, token: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let p = server.wait_notification("$/progress", WAIT, |p| p["token"] == token);
        let end = p["value"]["kind"] == "end";
        seen.push(p["value"].clone());
        if end {
            return seen;
        }
    }
}

/// Everything a request sent: all its messages, joined.
fn sent(request: &RecordedRequest) -> String {
    request
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The 8-char windows of `secret` found in `text`.
fn leaks(secret: &str, text: &str) -> Vec<String> {
    let chars: Vec<char> = secret.chars().collect();
    chars
        .windows(8)
        .map(|w| w.iter().collect::<String>())
        .filter(|w| text.contains(w.as_str()))
        .collect()
}

/// Lines (0-based from 1) each holding one secret of a shape the issue names.
const SECRETS: &[(&str, &str)] = &[
    ("    let db_password = \"Tr0ub4dor&3-x\";", "Tr0ub4dor&3-x"),
    (
        "    let url = \"postgres://app:s3cr3tPa55w0rd@db.internal:5432/app\";",
        "s3cr3tPa55w0rd",
    ),
    (
        "    let gh = \"ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8\";",
        "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    ),
    (
        "    let hook = \"whsec_5f1e2d3c4b5a69788796a5b4c3d2e1f0\";",
        "whsec_5f1e2d3c4b5a69788796a5b4c3d2e1f0",
    ),
    (
        "    let gitlab = \"glpat-Xy9_aB3cD4eF5gH6iJ7kL8m\";",
        "glpat-Xy9_aB3cD4eF5gH6iJ7kL8m",
    ),
    (
        "    let mail = \"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\";",
        "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",
    ),
    (
        "    let azure = \"AccountName=a;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;EndpointSuffix=core.windows.net\";",
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
    ),
    (
        "    let header = \"Authorization: Basic dXNlcjpwYXNzd29yZA==\";",
        "dXNlcjpwYXNzd29yZA==",
    ),
    (
        "    let jdbc = \"jdbc:mysql://db/app?user=app&password=plainWordsPass\";",
        "plainWordsPass",
    ),
    (
        "    let refresh_token = \"3f9a8c7e6d5b4a3c2b1a0f9e8d7c6b5a4f3e2d1c\";",
        "3f9a8c7e6d5b4a3c2b1a0f9e8d7c6b5a4f3e2d1c",
    ),
];

#[test]
fn a_selection_cutting_a_secret_sends_none_of_it_and_says_how_many_were_masked() {
    let mut b = start("Nothing wrong here.", json!({}));
    let uri = "file:///tmp/codetier-privacy/src/connect.rs";
    let mut text = String::from("fn connect() {\n");
    for (line, _) in SECRETS {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str("}\n");
    b.server.open(uri, "rust", &text);

    // Per secret, three cuts: exactly the secret, its tail from the middle on, and a range
    // from the line above into the middle of it. A diagnostic of another tool quotes it.
    let mut asked = 0;
    for (i, (line, secret)) in SECRETS.iter().enumerate() {
        let row = i + 1;
        let start = line.find(secret).expect("secret on its line");
        let middle = start + secret.len() / 2;
        let end = start + secret.len();
        for (k, cut) in [
            range(row, start, row, end),
            range(row, middle, row, end),
            range(row - 1, 3, row, middle),
        ]
        .into_iter()
        .enumerate()
        {
            let quote = vec![format!("unused value: `{}`", &secret[..secret.len() - 1])];
            let token = format!("cut-{i}-{k}");
            let result = run(&mut b.server, "explain", uri, cut, &quote, &token)
                .unwrap_or_else(|e| panic!("{secret}: {e}"));
            asked += 1;
            let requests = b.fake.requests();
            assert_eq!(requests.len(), asked, "one request per cut");
            let prompt = sent(&requests[asked - 1]);
            let leaked = leaks(secret, &prompt);
            assert!(
                leaked.is_empty(),
                "{leaked:?} of {secret:?} reached the provider:\n{prompt}"
            );
            assert!(prompt.contains("[REDACTED:"), "{prompt}");
            // All the lines are shown as context, each secret is masked once.
            assert_eq!(result["redactions"], SECRETS.len(), "{result}");
            let steps = progress(&b.server, &token);
            let masked = format!("{} secrets masked", SECRETS.len());
            let told = |kind: &str| {
                steps.iter().any(|s| {
                    s["kind"] == kind && s["message"].as_str().is_some_and(|m| m.contains(&masked))
                })
            };
            assert!(told("report") && told("end"), "{steps:?}");
        }
    }
    // The value alone was quoted exactly, masked.
    let first = sent(&b.fake.requests()[0]);
    assert!(
        first.contains("exactly selected:\n```rust\n[REDACTED:secret]\n```"),
        "{first}"
    );
    assert!(
        !b.server.stderr().contains(KEY),
        "the key leaked into the log"
    );
    b.server.told("codetier: Nothing wrong here.", &[]);
}

/// A project on disk whose files the editor opens by `file://` URI.
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, text) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, text).expect("write");
    }
    dir
}

/// Asks to explain line 1 of `uri`; the error message when it is refused.
fn refused(b: &mut Bench, uri: &str, text: &str) -> String {
    b.server.open(uri, "plaintext", text);
    let before = b.fake.requests().len();
    let err = run(&mut b.server, "explain", uri, range(0, 0, 0, 5), &[], uri)
        .expect_err("an excluded file is refused");
    assert_eq!(b.fake.requests().len(), before, "{uri}: nothing was sent");
    err["message"].as_str().unwrap_or_default().to_owned()
}

#[cfg(unix)]
#[test]
fn default_excludes_ignore_case_and_follow_symlinks() {
    let dir = project(&[
        (".env", "DB_PASSWORD=MARKER_DOTENV\n"),
        ("certs/SERVER.PEM", "MARKER_PEM\n"),
        ("Secrets/db.toml", "password = \"MARKER_SECRETS_DIR\"\n"),
        ("src/lib.rs", "pub fn ok() -> u32 { 1 }\n"),
    ]);
    let root = dir.path();
    std::os::unix::fs::symlink(root.join(".env"), root.join("src/notes.txt")).expect("symlink");
    let mut b = start("Fine.", json!({}));

    for (path, text) in [
        ("certs/SERVER.PEM", "MARKER_PEM\n"),
        ("Secrets/db.toml", "password = \"MARKER_SECRETS_DIR\"\n"),
        (".ENV", "DB_PASSWORD=MARKER_DOTENV\n"),
    ] {
        let message = refused(&mut b, &file_uri(&root.join(path)), text);
        assert!(message.contains("privacy.exclude"), "{path}: {message}");
    }
    // An innocent name whose file is `.env`: refused, and the message says why.
    let message = refused(
        &mut b,
        &file_uri(&root.join("src/notes.txt")),
        "DB_PASSWORD=MARKER_DOTENV\n",
    );
    assert!(
        message.contains("privacy.exclude")
            && message.contains("resolves to")
            && message.contains(".env"),
        "{message}"
    );

    // An ordinary file still goes, and none of the excluded contents ever did.
    let lib = file_uri(&root.join("src/lib.rs"));
    b.server.open(&lib, "rust", "pub fn ok() -> u32 { 1 }\n");
    run(
        &mut b.server,
        "explain",
        &lib,
        range(0, 0, 0, 10),
        &[],
        "lib",
    )
    .expect("lib.rs is sent");
    let requests = b.fake.requests();
    assert_eq!(requests.len(), 1);
    let prompt = sent(&requests[0]);
    assert!(prompt.contains("pub fn ok()"), "{prompt}");
    assert!(!prompt.contains("MARKER_"), "{prompt}");
    b.server.told("codetier: Fine.", &[]);
}

#[test]
fn env_variants_are_excluded_by_default() {
    let mut b = start("Fine.", json!({}));
    for name in [".env.local", ".env.production", ".Env.Development.Local"] {
        let uri = format!("file:///tmp/codetier-privacy/web/{name}");
        let message = refused(&mut b, &uri, "STRIPE_KEY=MARKER_ENV_VARIANT\n");
        assert!(message.contains("privacy.exclude"), "{name}: {message}");
    }
    assert!(b.fake.requests().is_empty());
}

#[test]
fn a_selection_cut_to_fit_the_budget_says_which_lines_were_sent() {
    let mut b = start(
        "[]",
        json!({ "context": { "token_budget": 700, "surrounding_lines": 20 } }),
    );
    let uri = "file:///tmp/codetier-privacy/src/huge.rs";
    let lines = 500_000;
    let text: String = (1..=lines).map(|i| format!("let v{i} = {i};\n")).collect();
    b.server.open(uri, "rust", &text);
    let result = run(
        &mut b.server,
        "review",
        uri,
        range(0, 0, lines, 0),
        &[],
        "huge",
    )
    .expect("reviewed");
    assert_eq!(result["truncated"], true, "{result}");
    assert_eq!(result["covered_lines"][0], 0, "{result}");
    let last = result["covered_lines"][1].as_u64().expect("covered_lines") as usize;
    assert!(last > 10 && last < 5_000, "{result}");
    let (sent_lines, next) = (last + 1, last + 2);
    let note = format!(
        "the selection (lines 1–500,000) was cut to fit context.token_budget: only lines 1–{sent_lines} were sent"
    );
    assert_eq!(result["coverage_note"], note.as_str(), "{result}");
    // What the provider received ends at that line.
    let prompt = sent(&b.fake.requests()[0]);
    assert!(
        prompt.contains(&format!("let v{sent_lines} = {sent_lines};")),
        "the last line sent"
    );
    assert!(
        !prompt.contains(&format!("let v{next} = ")),
        "the next line was not sent"
    );
    // The user is told, by message and in the progress.
    let shown = b.server.wait_notification("window/showMessage", WAIT, |m| {
        m["message"].as_str().is_some_and(|s| s.contains(&note))
    });
    assert_eq!(shown["type"], 2, "a warning: {shown}");
    let steps = progress(&b.server, "huge");
    assert!(
        steps
            .iter()
            .any(|s| s["kind"] == "end" && s["message"].as_str().is_some_and(|m| m.contains(&note))),
        "{steps:?}"
    );

    // Context cut, selection whole: the result says which lines went, without a warning.
    let small = "file:///tmp/codetier-privacy/src/small.rs";
    let text: String = (1..=200)
        .map(|i| format!("let value_number_{i} = compute({i}, {i});\n"))
        .collect();
    b.server.open(small, "rust", &text);
    let result = run(
        &mut b.server,
        "explain",
        small,
        range(100, 0, 102, 0),
        &[],
        "small",
    )
    .expect("explained");
    assert_eq!(result["truncated"], false, "{result}");
    assert_eq!(result["context_truncated"], true, "{result}");
    assert_eq!(result["covered_lines"], json!([100, 101]), "{result}");
    let (from, to) = (
        result["context_lines"][0].as_u64().expect("from"),
        result["context_lines"][1].as_u64().expect("to"),
    );
    assert!(from > 80 && to < 121, "{result}");
    let note = format!(
        "the context around the selection (lines 101–102) was cut to fit context.token_budget: lines {}–{} were sent",
        from + 1,
        to + 1
    );
    assert_eq!(result["coverage_note"], note.as_str(), "{result}");
    let prompt = sent(&b.fake.requests()[1]);
    let row = |n: u64| format!("let value_number_{n} = ");
    assert!(
        prompt.contains(&row(from + 1)) && prompt.contains(&row(to + 1)),
        "{prompt}"
    );
    assert!(
        !prompt.contains(&row(from)) && !prompt.contains(&row(to + 2)),
        "{prompt}"
    );
    let warnings: Vec<Value> = b
        .server
        .take_notifications("window/showMessage")
        .into_iter()
        .filter(|m| {
            m["message"]
                .as_str()
                .is_some_and(|s| s.contains("context around"))
        })
        .collect();
    assert!(
        warnings.is_empty(),
        "no pop-up for trimmed context: {warnings:?}"
    );
}
