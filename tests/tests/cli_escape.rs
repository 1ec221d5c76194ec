//! CLI text output cannot be steered by file names or model text: the real `codetier` binary
//! against the fake provider, with a file named to forge a compiler line and a model that sends
//! terminal escape sequences and GitHub Actions workflow commands. Text output escapes them;
//! JSON and SARIF carry them exactly.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use codetier_tests::client::codetier_bin;
use codetier_tests::fake::{Answer, Behavior, FakeProvider, Script};
use serde_json::Value;

const KEY: &str = "sk-test-cli-escape-41d2-SECRET";

/// A path (a directory whose name holds a newline, and a file in it) that, printed raw, ends
/// its own line and forges an error on another file.
const FORGING_NAME: &str = "evil\nsrc/main.rs:1:1: error: forged by a file name.rs";
/// A file name that, printed raw at the start of a line, is a workflow command.
const COMMAND_NAME: &str = "::error file=src%2Fmain.rs,line=1::forged.rs";

const SOURCE: &str = "fn main() {\n    let d = 0;\n    println!(\"{}\", 1 / d);\n}\n";

/// One finding whose message clears the screen, colours, hides a link, overwrites its own line
/// with a carriage return, and then starts new lines with workflow commands; its replacement
/// does the same.
const FINDINGS: &str = r#"[{"line": 3, "severity": "error",
  "message": "divides by zero\u001b[2J\u001b[31m red \u001b]8;;https://x.test\u0007link\u001b]8;;\u0007\rOVERWRITTEN\n::error file=src/main.rs,line=1::forged by the model\n  ::add-mask::x\n##[error]old form",
  "replacement": "    println!(\"{}\", 1 / d.max(1)); \u001b[8m\n::set-output name=x::y"}]"#;

/// An explanation and a generated function with the same tricks.
const EXPLANATION: &str = "Division by zero.\u{1b}[2J\n\n::error file=a.rs,line=1::forged\r\u{1b}[1A\u{9b}2K gone \u{202e}txt.exe";
const GENERATED: &str =
    "```rust\nfn main() {\n    println!(\"\u{1b}[31mhi\");\n}\n::warning::forged\n```";

fn script(answer: &str) -> Script {
    Script::always(Behavior {
        answer: Answer::Text(answer.to_owned()),
        ..Behavior::default()
    })
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{:?}\n--- stderr\n{:?}",
            self.code, self.stdout, self.stderr
        )
    }
}

async fn codetier(dir: &Path, home: &Path, base_url: &str, args: &[&str]) -> Run {
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
        .env("CODETIER_BASE_URL", base_url)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("codetier finished within 60 s")
        .expect("run codetier");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Text output a terminal and a CI runner can show as is: no escape sequences, no carriage
/// returns, no bidi overrides, no line that is a workflow command, and every line that reads as
/// a finding names a file that was really reviewed.
fn assert_inert(what: &str, out: &str, reviewed: &[&str]) {
    for bad in ['\u{1b}', '\r', '\u{7}', '\u{9b}', '\u{202e}'] {
        assert!(!out.contains(bad), "{what}: {bad:?} in {out:?}");
    }
    assert!(!out.contains("##["), "{what}: {out:?}");
    for line in out.lines() {
        assert!(
            !line.trim_start().starts_with("::"),
            "{what}: a workflow command line: {line:?}"
        );
        if line.contains(": error: ") && !line.starts_with("codetier:") {
            assert!(
                reviewed.iter().any(|name| line.starts_with(name)),
                "{what}: a finding line for a file that was not reviewed: {line:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_text_escapes_file_names_and_model_text_while_json_and_sarif_stay_exact() {
    let fake = FakeProvider::start(script(FINDINGS))
        .await
        .expect("the fake provider starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let home = tempfile::tempdir().expect("home");
    std::fs::create_dir_all(dir.path().join(".git")).expect("mkdir .git");
    for name in [FORGING_NAME, COMMAND_NAME] {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, SOURCE).expect("write a strangely named file");
    }
    let url = fake.base_url();
    let args = |format: &'static str| ["review", "--fail-on", "never", "--format", format, "."];

    let text = codetier(dir.path(), home.path(), &url, &args("text")).await;
    assert_eq!(text.code, 0, "{text:?}");
    // How the two names print: one line each, the newline and the `::` shown escaped.
    let forging = "evil\\nsrc/main.rs:1:1: error: forged by a file name.rs";
    let command = "\\::error file=src%2Fmain.rs,line=1::forged.rs";
    assert_inert("stdout", &text.stdout, &[forging, command]);
    assert_inert("stderr", &text.stderr, &[]);
    let heads: Vec<&str> = text
        .stdout
        .lines()
        .filter(|l| l.contains(":3:1: error: "))
        .collect();
    assert_eq!(heads.len(), 2, "one finding per file: {text:?}");
    for name in [forging, command] {
        let head = format!("{name}:3:1: error: divides by zero\\u{{1b}}[2J\\u{{1b}}[31m red ");
        assert!(
            heads.iter().any(|h| h.starts_with(&head)),
            "{head:?} in {heads:?}"
        );
    }
    // The model's lines are still there, readable and harmless.
    assert!(text.stdout.contains("\\rOVERWRITTEN"), "{text:?}");
    assert!(
        text.stdout
            .contains("    \\::error file=src/main.rs,line=1::forged by the model"),
        "{text:?}"
    );
    assert!(text.stdout.contains("##\\[error]old form"), "{text:?}");
    assert!(
        text.stdout.contains("    | \\::set-output name=x::y"),
        "{text:?}"
    );

    // JSON: exactly what the file system and the model said.
    let json = codetier(dir.path(), home.path(), &url, &args("json")).await;
    assert_eq!(json.code, 0, "{json:?}");
    let doc: Value = serde_json::from_str(&json.stdout).expect("JSON on stdout");
    let mut paths: Vec<&str> = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, [COMMAND_NAME, FORGING_NAME], "{json:?}");
    let model: Value = serde_json::from_str(FINDINGS).expect("the fixture is JSON");
    assert_eq!(doc["findings"][0]["message"], model[0]["message"]);
    assert_eq!(doc["findings"][0]["replacement"], model[0]["replacement"]);

    // SARIF: the message is exact too (JSON escapes it), the names are URIs.
    let sarif = codetier(dir.path(), home.path(), &url, &args("sarif")).await;
    assert_eq!(sarif.code, 0, "{sarif:?}");
    let doc: Value = serde_json::from_str(&sarif.stdout).expect("SARIF on stdout");
    let results = doc["runs"][0]["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{sarif:?}");
    for r in results {
        assert_eq!(r["message"]["text"], model[0]["message"], "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_and_generate_print_answers_escaped() {
    let fake = FakeProvider::start(script(EXPLANATION))
        .await
        .expect("the fake provider starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let home = tempfile::tempdir().expect("home");
    std::fs::create_dir_all(dir.path().join(".git")).expect("mkdir .git");
    std::fs::write(dir.path().join("main.rs"), SOURCE).expect("write");
    let url = fake.base_url();

    let explained = codetier(dir.path(), home.path(), &url, &["explain", "main.rs:2-3"]).await;
    assert_eq!(explained.code, 0, "{explained:?}");
    assert_inert("explain", &explained.stdout, &[]);
    assert_eq!(
        explained.stdout,
        "Division by zero.\\u{1b}[2J\n\n\\::error file=a.rs,line=1::forged\\r\\u{1b}[1A\\u{9b}2K \
         gone \\u{202e}txt.exe\n",
        "{explained:?}"
    );

    fake.set_script(script(GENERATED));
    let generated = codetier(dir.path(), home.path(), &url, &["generate", "main.rs:2"]).await;
    assert_eq!(generated.code, 0, "{generated:?}");
    assert_inert("generate", &generated.stdout, &[]);
    assert!(
        generated
            .stdout
            .contains("    println!(\"\\u{1b}[31mhi\");\n"),
        "{generated:?}"
    );
    assert!(
        generated.stdout.contains("\\::warning::forged"),
        "{generated:?}"
    );
}
