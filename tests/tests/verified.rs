//! Syntax-aware actions end to end (issue 20): widening by syntax in each language, the
//! definitions a selection uses in the prompt, answers checked before they are shown, and the
//! automatic escalation of a broken Flash answer to the premium tier — the real `codetier`
//! binary over stdio and from the shell, against the fake provider over real HTTP.

use std::process::Stdio;
use std::time::Duration;

use codetier_tests::client::{codetier_bin, TestServer};
use codetier_tests::fake::{Answer, Behavior, FakeProvider, RecordedRequest, Rule, Script};
use serde_json::{json, Value};

const KEY: &str = "sk-verified-test-91b2-SECRET";
const WAIT: Duration = Duration::from_secs(20);
const FLASH: &str = "deepseek-v4-flash";
const PRO: &str = "deepseek-v4-pro";
const R1: &str = "deepseek-r1";

const URI: &str = "file:///tmp/codetier-verified/src/lib.rs";
/// Lines (0-based): 0..=2 `average`, 4..=6 `largest` (a stub on line 5).
const LIB: &str = "fn average(values: &[i32]) -> i32 {\n    values.iter().sum::<i32>() / values.len() as i32\n}\n\nfn largest(values: &[i32]) -> i32 {\n    todo!()\n}\n";

/// Flash's broken answer: line 2 of the code does not parse.
const BROKEN: &str = "```rust\nfn largest(values: &[i32]) -> i32 {\n    let best = values.iter().max(;\n    *best.unwrap()\n}\n```";
/// Another broken one, worse: it does not define `largest` either.
const BROKEN_PRO: &str =
    "```rust\nfn biggest(values: &[i32]) -> i32 {\n    values.iter().max(\n}\n```";
const CORRECT: &str = "```rust\nfn largest(values: &[i32]) -> i32 {\n    values.iter().copied().max().unwrap_or(i32::MIN)\n}\n```";

struct Bench {
    fake: FakeProvider,
    server: TestServer,
    _rt: tokio::runtime::Runtime,
}

fn start(script: Script, init: Value) -> Bench {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = rt
        .block_on(FakeProvider::start(script))
        .expect("the fake provider starts");
    let server = TestServer::builder()
        .env("CODETIER_BASE_URL", &fake.base_url())
        .env("GLOBAL_API_KEY", KEY)
        .init_options(init)
        .start();
    Bench {
        fake,
        server,
        _rt: rt,
    }
}

fn text(answer: &str) -> Behavior {
    Behavior {
        answer: Answer::Text(answer.to_owned()),
        ..Behavior::default()
    }
}

/// Flash answers `flash`, the premium tiers `pro` (and R1 `r1`).
fn tiers(flash: &str, pro: &str, r1: &str) -> Script {
    let rule = |model: &str, answer: &str| Rule {
        model: Some(model.to_owned()),
        requests: None,
        behavior: text(answer),
    };
    Script {
        default: text("unused"),
        rules: vec![rule(FLASH, flash), rule(PRO, pro), rule(R1, r1)],
        ..Script::default()
    }
}

fn range(sl: u32, sc: u32, el: u32, ec: u32) -> Value {
    json!({ "start": { "line": sl, "character": sc }, "end": { "line": el, "character": ec } })
}

fn code_actions(server: &mut TestServer, uri: &str, range: Value) -> Vec<Value> {
    server
        .request(
            "textDocument/codeAction",
            json!({ "textDocument": { "uri": uri }, "range": range, "context": { "diagnostics": [] } }),
        )
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn titles(actions: &[Value]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| a["title"].as_str().map(str::to_owned))
        .collect()
}

fn find_action(actions: &[Value], title: &str) -> Value {
    actions
        .iter()
        .find(|a| a["title"] == title)
        .unwrap_or_else(|| panic!("no action {title:?} in {:?}", titles(actions)))["command"]
        .clone()
}

fn run_command(server: &mut TestServer, command: &Value, token: &str) -> Value {
    let id = server.send(
        "workspace/executeCommand",
        json!({ "command": command["command"], "arguments": command["arguments"], "workDoneToken": token }),
    );
    server.response(id, WAIT).expect("the command succeeds")
}

/// The `$/progress` report and end messages for `token`, in order.
fn progress_messages(server: &TestServer, token: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let p = server.wait_notification("$/progress", WAIT, |p| p["token"] == token);
        if let Some(m) = p["value"]["message"].as_str() {
            seen.push(m.to_owned());
        }
        if p["value"]["kind"] == "end" {
            return seen;
        }
    }
}

fn requests_for(fake: &FakeProvider, model: &str) -> Vec<RecordedRequest> {
    fake.requests()
        .into_iter()
        .filter(|r| r.model == model)
        .collect()
}

fn prompt_of(request: &RecordedRequest) -> String {
    request
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

// ---- automatic escalation ---------------------------------------------------------------------

#[test]
fn broken_flash_code_is_escalated_once_to_the_premium_tier_and_both_costs_count() {
    let mut b = start(tiers(BROKEN, CORRECT, CORRECT), json!({}));
    b.server.open(URI, "rust", LIB);
    // A cursor in the stub: widened by syntax to the function `largest`.
    let list = code_actions(&mut b.server, URI, range(5, 6, 5, 6));
    let generate = find_action(&list, "Generate function (Flash)");
    assert_eq!(generate["arguments"][0]["range"], range(4, 0, 6, 1));
    let result = run_command(&mut b.server, &generate, "gen-1");

    assert_eq!(result["verified"], true, "{result}");
    assert_eq!(result["tier"], "pro");
    assert_eq!(result["model"], PRO);
    assert_eq!(result["applied"], true, "{result}");
    assert_eq!(result["widened_to"], "function `largest` (lines 5–7)");
    let escalation = &result["escalation"];
    assert_eq!(escalation["from_tier"], "flash");
    assert_eq!(escalation["to_tier"], "pro");
    assert_eq!(
        escalation["message"],
        "Flash's code did not parse: line 2 (unexpected `(`) — asked DeepSeek V4 Pro"
    );
    // Both answers are paid for: the total is more than the first alone.
    let first = escalation["first_cost_usd"].as_f64().unwrap_or_default();
    let total = result["cost_usd"].as_f64().unwrap_or_default();
    assert!(first > 0.0 && total > first, "{result}");
    let progress = progress_messages(&b.server, "gen-1");
    assert!(
        progress
            .iter()
            .any(|m| m == escalation["message"].as_str().unwrap_or("?")),
        "the progress says why: {progress:?}"
    );

    // One request per tier, the same prompt on both, and the premium code is what landed.
    let (flash, pro) = (requests_for(&b.fake, FLASH), requests_for(&b.fake, PRO));
    assert_eq!((flash.len(), pro.len()), (1, 1));
    assert_eq!(
        flash[0].messages, pro[0].messages,
        "the same job is asked again"
    );
    let (_, now) = b.server.text(URI);
    assert!(now.contains("copied().max().unwrap_or(i32::MIN)"), "{now}");
    assert!(!now.contains("max(;"), "{now}");
    assert_eq!(now.matches("fn largest").count(), 1, "{now}");
    // The session's usage counts both tiers.
    let usage = b.server.request(
        "workspace/executeCommand",
        json!({ "command": "codetier.usage" }),
    );
    let usage = usage.to_string();
    assert!(usage.contains("flash") && usage.contains("pro"), "{usage}");
    b.server
        .told("codetier usage this session: 2 requests", &[]);
}

#[test]
fn without_auto_escalation_an_unverified_answer_is_marked_and_its_escalations_come_first() {
    let init = json!({ "actions": { "generate": { "auto_escalate": false } } });
    let mut b = start(tiers(BROKEN, CORRECT, CORRECT), init);
    b.server.open(URI, "rust", LIB);
    let list = code_actions(&mut b.server, URI, range(5, 6, 5, 6));
    let result = run_command(
        &mut b.server,
        &find_action(&list, "Generate function (Flash)"),
        "gen-1",
    );
    assert_eq!(result["verified"], false, "{result}");
    assert_eq!(result["tier"], "flash");
    assert!(result["escalation"].is_null(), "{result}");
    assert_eq!(
        result["unverified_reason"],
        "the code did not parse: line 2 (unexpected `(`)"
    );
    assert_eq!(
        requests_for(&b.fake, PRO).len(),
        0,
        "nothing escalated by itself"
    );
    let warning = b.server.wait_notification("window/showMessage", WAIT, |m| {
        m["message"]
            .as_str()
            .is_some_and(|s| s.contains("unverified"))
    });
    assert!(
        warning["message"]
            .as_str()
            .is_some_and(|m| m.contains("try “Generate function with DeepSeek V4 Pro”")),
        "{warning}"
    );

    // On the generated code, the escalations are the first entries of the menu.
    let list = code_actions(&mut b.server, URI, range(5, 6, 5, 6));
    let names = titles(&list);
    assert_eq!(
        names[..2],
        [
            "Generate function with DeepSeek V4 Pro".to_owned(),
            "Generate function with DeepSeek-R1".to_owned()
        ],
        "{names:?}"
    );
    let escalated = run_command(&mut b.server, &find_action(&list, &names[0]), "gen-2");
    assert_eq!(
        (escalated["tier"].clone(), escalated["verified"].clone()),
        (json!("pro"), json!(true)),
        "{escalated}"
    );
    // A verified answer lists its escalations after the actions again.
    let names = titles(&code_actions(&mut b.server, URI, range(5, 6, 5, 6)));
    assert!(names[0].starts_with("Explain bug"), "{names:?}");
}

#[test]
fn when_both_tiers_fail_the_better_answer_is_delivered_marked_unverified() {
    let mut b = start(tiers(BROKEN, BROKEN_PRO, CORRECT), json!({}));
    b.server.open(URI, "rust", LIB);
    let list = code_actions(&mut b.server, URI, range(5, 0, 5, 0));
    let result = run_command(
        &mut b.server,
        &find_action(&list, "Generate function (Flash)"),
        "gen-1",
    );
    // Flash's code defines `largest` and has one error; Pro's defines `biggest`: Flash's wins.
    assert_eq!(result["verified"], false, "{result}");
    assert_eq!(result["tier"], "flash");
    assert_eq!(result["escalation"]["kept_first"], true);
    let why = result["unverified_reason"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("the code did not parse: line 2") && why.contains("DeepSeek V4 Pro's code"),
        "{why}"
    );
    assert_eq!(
        requests_for(&b.fake, R1).len(),
        0,
        "escalated once, not twice"
    );
    let total = result["cost_usd"].as_f64().unwrap_or_default();
    let first = result["escalation"]["first_cost_usd"]
        .as_f64()
        .unwrap_or_default();
    assert!(total > first && first > 0.0, "{result}");
    let (_, now) = b.server.text(URI);
    assert!(now.contains("max(;"), "the better answer is applied: {now}");
    b.server.told(
        "DeepSeek V4 Pro's code did not parse",
        &["Flash's answer is unverified: the code did not parse"],
    );
}

// ---- review and explain fixes ---------------------------------------------------------------

#[test]
fn a_review_fix_that_does_not_parse_is_dropped_and_its_finding_kept() {
    let findings = r#"[
      {"line": 2, "severity": "error", "message": "divides by zero when empty", "replacement": "    if values.is_empty() { return 0; \n    values.iter().sum::<i32>() / values.len() as i32"},
      {"line": 2, "severity": "hint", "message": "use a wider sum", "replacement": "    values.iter().map(|v| *v as i64).sum::<i64>() as i32 / values.len() as i32"}
    ]"#;
    let mut b = start(tiers(findings, findings, findings), json!({}));
    b.server.open(URI, "rust", LIB);
    let result = run_command(
        &mut b.server,
        &json!({ "command": "codetier.review", "arguments": [{ "uri": URI, "range": range(0, 0, 2, 1) }] }),
        "rev-1",
    );
    assert_eq!(result["verified"], false, "{result}");
    assert_eq!(result["widened_to"], "function `average` (lines 1–3)");
    let found = result["findings"].as_array().cloned().unwrap_or_default();
    assert_eq!(found.len(), 2, "{result}");
    assert_eq!(
        (
            found[0]["verified"].clone(),
            found[0]["replacement"].clone()
        ),
        (json!(false), Value::Null)
    );
    assert_eq!(found[1]["verified"], true);
    assert!(found[1]["replacement"].is_string());
    // Both are diagnostics; only the second has a quick fix.
    let diags = b.server.wait_diagnostics(URI, WAIT, |d| d.len() == 2);
    let fixes = b.server.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": URI }, "range": range(1, 0, 1, 10),
                "context": { "diagnostics": diags, "only": ["quickfix"] } }),
    );
    let fixes = fixes.as_array().cloned().unwrap_or_default();
    assert_eq!(fixes.len(), 1, "{fixes:?}");
    assert!(fixes[0]["title"]
        .as_str()
        .is_some_and(|t| t.contains("wider sum")));
    b.server.told(
        "try “Review selection with Qwen3-Coder-30B”",
        &["the fix for line 2 did not parse"],
    );
}

// ---- widening by syntax, per language ---------------------------------------------------------

#[test]
fn a_cursor_widens_to_the_enclosing_definition_in_each_language() {
    // (uri, language id, text, cursor, the range it widens to, what the result names)
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        (u32, u32),
        Value,
        &'static str,
    );
    let cases: [Case; 5] = [
        (
            "file:///tmp/codetier-verified/stats.py",
            "python",
            "class Stats:\n    def average(self, xs):\n        total = sum(xs)\n        return total / len(xs)\n\n    def median(self):\n        pass\n",
            (3, 12),
            range(1, 0, 3, 30),
            "method `average` (lines 2–4)",
        ),
        (
            "file:///tmp/codetier-verified/cart.js",
            "javascript",
            "const TAX = 0.2;\n\nfunction total(items) {\n  return items.reduce((a, b) => a + b.price, 0) * (1 + TAX);\n}\n",
            (3, 10),
            range(2, 0, 4, 1),
            "function `total` (lines 3–5)",
        ),
        (
            "file:///tmp/codetier-verified/badge.tsx",
            "typescriptreact",
            "export const Badge = ({ count }: { count: number }) => {\n  return <span>{count}</span>;\n};\n",
            (1, 12),
            range(0, 0, 2, 2),
            "function `Badge` (lines 1–3)",
        ),
        (
            "file:///tmp/codetier-verified/main.go",
            "go",
            "package main\n\nfunc (s *Stats) Average() float64 {\n\treturn s.sum / float64(s.n)\n}\n",
            (3, 4),
            range(2, 0, 4, 1),
            "method `Average` (lines 3–5)",
        ),
        (
            "file:///tmp/codetier-verified/src/stats.rs",
            "rust",
            "impl Stats {\n    #[inline]\n    pub fn average(&self) -> u32 {\n        if self.n > 0 {\n            self.sum / self.n\n        } else {\n            0\n        }\n    }\n}\n",
            (4, 14),
            range(1, 0, 8, 5),
            "method `average` (lines 2–9)",
        ),
    ];
    let mut b = start(Script::always(text("An explanation.")), json!({}));
    for (uri, language, source, (line, col), widened, described) in cases {
        b.server.open(uri, language, source);
        let list = code_actions(&mut b.server, uri, range(line, col, line, col));
        let explain = find_action(&list, "Explain bug (Flash)");
        assert_eq!(explain["arguments"][0]["range"], widened, "{language}");
        let result = run_command(&mut b.server, &explain, &format!("ex-{language}"));
        assert_eq!(result["widened_to"], described, "{language}: {result}");
        assert!(result["block"]["name"].is_string(), "{result}");
        // An explanation without a fix has nothing that can fail.
        assert_eq!(result["verified"], true, "{language}: {result}");
    }
    // A language without a grammar keeps the heuristics, and claims nothing.
    let uri = "file:///tmp/codetier-verified/a.c";
    b.server.open(uri, "c", "int f(void) {\n  return 1;\n}\n");
    let list = code_actions(&mut b.server, uri, range(1, 3, 1, 3));
    let explain = find_action(&list, "Explain bug (Flash)");
    assert_eq!(explain["arguments"][0]["range"], range(0, 0, 2, 1));
    let result = run_command(&mut b.server, &explain, "ex-c");
    assert!(
        result["verified"].is_null() && result["widened_to"].is_null(),
        "{result}"
    );
    b.server.told("codetier: An explanation.", &[]);
}

// ---- definitions context ------------------------------------------------------------------------

#[test]
fn the_prompt_quotes_definitions_from_the_file_and_other_open_documents() {
    let mut b = start(Script::always(text("Looks fine.")), json!({}));
    let util = "file:///tmp/codetier-verified/pkg/util.py";
    let secrets = "file:///tmp/codetier-verified/secrets/keys.py";
    let main = "file:///tmp/codetier-verified/pkg/main.py";
    b.server.open(
        util,
        "python",
        "def normalize(xs):\n    \"\"\"Scales xs to sum 1.\"\"\"\n    total = sum(xs)\n    return [x / total for x in xs]\n",
    );
    b.server.open(
        secrets,
        "python",
        "def api_key():\n    return \"hunter2-not-for-prompts\"\n",
    );
    b.server.open(
        "file:///tmp/codetier-verified/other.js",
        "javascript",
        "function normalize() {}\n",
    );
    b.server.open(
        main,
        "python",
        "LIMIT = 10\n\n\ndef report(xs):\n    top = normalize(xs)[:LIMIT]\n    print(api_key(), top)\n",
    );
    let list = code_actions(&mut b.server, main, range(4, 6, 4, 6));
    let result = run_command(
        &mut b.server,
        &find_action(&list, "Explain bug (Flash)"),
        "ex-1",
    );
    let sent = prompt_of(&b.fake.requests()[0]);
    assert!(
        sent.contains("function `normalize`, from /tmp/codetier-verified/pkg/util.py, line 1:")
            && sent.contains("def normalize(xs):\n    \"\"\"Scales xs to sum 1.\"\"\""),
        "{sent}"
    );
    assert!(
        sent.contains(
            "constant `LIMIT`, from this file, /tmp/codetier-verified/pkg/main.py, line 1:"
        ),
        "{sent}"
    );
    // Privacy rules apply to the other documents: an excluded one is never quoted.
    assert!(
        !sent.contains("hunter2") && !sent.contains("def api_key"),
        "{sent}"
    );
    // Nor does a JavaScript document lend a definition to Python.
    assert!(!sent.contains("function normalize() {}"), "{sent}");
    assert_eq!(
        result["definitions"],
        json!([
            "function `normalize` (/tmp/codetier-verified/pkg/util.py:1)",
            "constant `LIMIT` (/tmp/codetier-verified/pkg/main.py:1)"
        ]),
        "{result}"
    );
    b.server.told("codetier: Looks fine.", &[]);
}

// ---- the command line ----------------------------------------------------------------------------

struct Cli {
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Cli {
    fn new(files: &[(&str, &str)]) -> Cli {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = tempfile::tempdir().expect("home");
        std::fs::create_dir_all(dir.path().join(".git")).expect("mkdir .git");
        for (path, text) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(full, text).expect("write");
        }
        Cli { dir, home }
    }

    async fn run(&self, base_url: &str, args: &[&str]) -> (i32, String, String) {
        let out = tokio::process::Command::new(codetier_bin())
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .env_remove("CODETIER_LOG")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("XDG_CACHE_HOME", self.home.path().join("cache"))
            .env("GLOBAL_API_KEY", KEY)
            .env("CODETIER_BASE_URL", base_url)
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(60), out)
            .await
            .expect("codetier finished within 60 s")
            .expect("run codetier");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

#[tokio::test]
async fn the_cli_escalates_broken_code_and_no_verify_skips_the_check() {
    let fake = FakeProvider::start(tiers(BROKEN, CORRECT, CORRECT))
        .await
        .expect("fake");
    let p = Cli::new(&[("src/lib.rs", LIB)]);
    let (code, stdout, stderr) = p.run(&fake.base_url(), &["generate", "src/lib.rs:6"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "fn largest(values: &[i32]) -> i32 {\n    values.iter().copied().max().unwrap_or(i32::MIN)\n}\n"
    );
    assert!(
        stderr.contains(
            "codetier: Flash's code did not parse: line 2 (unexpected `(`) — asked DeepSeek V4 Pro"
        ) && stderr.contains("generate of function `largest` (lines 5–7)")
            && stderr.contains(", verified"),
        "{stderr}"
    );
    assert_eq!(fake.requests().len(), 2);

    fake.clear();
    let (code, stdout, stderr) = p
        .run(
            &fake.base_url(),
            &["generate", "--no-verify", "--fresh", "src/lib.rs:6"],
        )
        .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("max(;"),
        "unchecked, Flash's answer as is: {stdout}"
    );
    assert!(
        !stderr.contains("verified") && !stderr.contains("asked"),
        "{stderr}"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn cli_review_results_carry_verified_in_json_and_sarif() {
    let findings = r#"[
      {"line": 2, "severity": "error", "message": "broken fix", "replacement": "    values.iter().sum::<i32>( / values.len() as i32"},
      {"line": 2, "severity": "warning", "message": "good fix", "replacement": "    values.iter().sum::<i32>() / (values.len() as i32).max(1)"},
      {"line": 6, "severity": "warning", "message": "no fix"}
    ]"#;
    let fake = FakeProvider::start(Script::always(text(findings)))
        .await
        .expect("fake");
    let p = Cli::new(&[("src/lib.rs", LIB)]);
    let (code, stdout, stderr) = p
        .run(
            &fake.base_url(),
            &[
                "review",
                "--format",
                "sarif",
                "--fail-on",
                "never",
                "src/lib.rs",
            ],
        )
        .await;
    assert_eq!(code, 0, "{stderr}");
    let sarif: Value = serde_json::from_str(&stdout).expect("SARIF is JSON");
    let results = sarif["runs"][0]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let verified: Vec<(String, Value, bool)> = results
        .iter()
        .map(|r| {
            (
                r["message"]["text"].as_str().unwrap_or_default().to_owned(),
                r["properties"]["verified"].clone(),
                r.get("fixes").is_some(),
            )
        })
        .collect();
    assert_eq!(
        verified,
        [
            ("broken fix".to_owned(), json!(false), false),
            ("good fix".to_owned(), json!(true), true),
            ("no fix".to_owned(), json!(true), false),
        ]
    );
    assert!(
        stderr.contains("src/lib.rs: the fix for line 2 did not parse"),
        "{stderr}"
    );

    let (_, stdout, _) = p
        .run(
            &fake.base_url(),
            &[
                "review",
                "--format",
                "json",
                "--fail-on",
                "never",
                "--no-verify",
                "src/lib.rs",
            ],
        )
        .await;
    assert!(
        stdout.contains("\"verified\": null"),
        "not checked: {stdout}"
    );
}
