//! The three AI actions end to end: the real `codetier` binary over stdio, the fake provider
//! over real HTTP. For each action: the action list, the command and its progress, where the
//! answer lands (edit, diagnostics, hover, message), escalation, cancellation, a provider
//! fault, and an edit made while the request was in flight.

use std::time::{Duration, Instant};

use codetier_tests::bench::Bench;
use codetier_tests::client::{EditPolicy, TestServer};
use codetier_tests::fake::{
    Answer, Behavior, FakeProvider, Fault, Latency, RecordedRequest, Rule, Script,
};
use serde_json::{json, Value};

const KEY: &str = "sk-lsp-actions-test-5e1f-SECRET";
const URI: &str = "file:///tmp/codetier-actions/src/lib.rs";
const WAIT: Duration = Duration::from_secs(20);

/// Lines (0-based): 0 doc comment, 1..=7 `average`, 9..=11 `largest` with a `todo!()` on 10.
const LIB: &str = r#"// averages
fn average(values: &[i32]) -> i32 {
    let mut sum = 0;
    for i in 0..=values.len() {
        sum += values[i];
    }
    sum / values.len() as i32
}

fn largest(values: &[i32]) -> i32 {
    todo!()
}
"#;

const FLASH: &str = "deepseek-v4-flash";
const PRO: &str = "deepseek-v4-pro";
const R1: &str = "deepseek-r1";
const CODER: &str = "qwen3-coder-30b";

fn start(script: Script) -> Bench {
    start_with(script, |b| b)
}

fn start_with(
    script: Script,
    configure: impl FnOnce(codetier_tests::client::Builder) -> codetier_tests::client::Builder,
) -> Bench {
    Bench::start(script, KEY, configure)
}

fn text(answer: &str) -> Behavior {
    Behavior {
        answer: Answer::Text(answer.to_owned()),
        ..Behavior::default()
    }
}

fn slow(ms: u64, answer: &str) -> Behavior {
    Behavior {
        ttft: Latency::Fixed { ms },
        ..text(answer)
    }
}

fn for_model(model: &str, behavior: Behavior) -> Rule {
    Rule {
        model: Some(model.to_owned()),
        requests: None,
        behavior,
    }
}

fn script(default: Behavior, rules: Vec<Rule>) -> Script {
    Script {
        default,
        rules,
        ..Script::default()
    }
}

fn range(sl: u32, sc: u32, el: u32, ec: u32) -> Value {
    json!({ "start": { "line": sl, "character": sc }, "end": { "line": el, "character": ec } })
}

fn code_actions(server: &mut TestServer, range: Value, only: Option<&[&str]>) -> Vec<Value> {
    let mut context = json!({ "diagnostics": [] });
    if let Some(only) = only {
        context["only"] = json!(only);
    }
    server
        .request(
            "textDocument/codeAction",
            json!({ "textDocument": { "uri": URI }, "range": range, "context": context }),
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

fn find_action<'a>(actions: &'a [Value], title: &str) -> &'a Value {
    actions
        .iter()
        .find(|a| a["title"] == title)
        .unwrap_or_else(|| panic!("no action titled {title:?} in {:?}", titles(actions)))
}

/// Runs a code action's command (as an editor does) with a progress token; returns the id.
fn send_command(server: &mut TestServer, command: &Value, token: &str) -> i64 {
    server.send(
        "workspace/executeCommand",
        json!({
            "command": command["command"],
            "arguments": command["arguments"],
            "workDoneToken": token,
        }),
    )
}

fn run_action(server: &mut TestServer, command: &Value, token: &str) -> Result<Value, Value> {
    let id = send_command(server, command, token);
    server.response(id, WAIT)
}

fn command(action: &str, range: Value, tier: Option<&str>) -> Value {
    json!({
        "command": format!("codetier.{action}"),
        "arguments": [{ "uri": URI, "range": range, "tier": tier }],
    })
}

/// The `$/progress` values sent for `token`, in order, until (and including) `end`.
fn progress(server: &TestServer, token: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let p = server.wait_notification("$/progress", WAIT, |p| p["token"] == token);
        let kind = p["value"]["kind"].as_str().unwrap_or_default().to_owned();
        seen.push(p["value"].clone());
        if kind == "end" {
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

fn user_prompt(request: &RecordedRequest) -> String {
    request
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn wait_for_message(server: &TestServer, needle: &str) -> Value {
    server.wait_notification("window/showMessage", WAIT, |m| {
        m["message"].as_str().is_some_and(|s| s.contains(needle))
    })
}

fn codetier_diagnostics(diags: &[Value]) -> Vec<Value> {
    diags
        .iter()
        .filter(|d| d["source"] == "codetier")
        .cloned()
        .collect()
}

fn no_key_anywhere(bench: &Bench) {
    let log = bench.server.stderr();
    assert!(!log.contains(KEY), "the key leaked into the server log");
}

// ---- the action list ------------------------------------------------------------------------

#[test]
fn code_actions_come_from_memory_for_any_range_and_filter_by_kind() {
    let mut b = start(script(text("unused"), vec![]));
    b.server.open(URI, "rust", LIB);

    // A cursor (empty range) inside `todo!()`: widened to the enclosing block, all three
    // actions, titles naming the tier, no escalations yet.
    let actions = code_actions(&mut b.server, range(10, 4, 10, 4), None);
    let names = titles(&actions);
    for t in [
        "Explain bug (Flash)",
        "Generate function (Flash)",
        "Review selection (Flash)",
    ] {
        assert!(names.contains(&t.to_owned()), "{t} missing from {names:?}");
    }
    assert!(
        !names.iter().any(|t| t.contains(" with ")),
        "no escalation before an answer: {names:?}"
    );
    let generate = find_action(&actions, "Generate function (Flash)");
    assert_eq!(generate["kind"], "refactor.codetier.generate");
    let widened = &generate["command"]["arguments"][0]["range"];
    assert!(
        widened["start"]["line"].as_u64() < Some(10) || widened["end"]["line"].as_u64() > Some(10),
        "a cursor widens to the enclosing block: {widened}"
    );

    // A selection, with `only` filtering.
    let only = code_actions(
        &mut b.server,
        range(2, 0, 5, 5),
        Some(&["refactor.codetier.review"]),
    );
    assert_eq!(titles(&only), vec!["Review selection (Flash)".to_owned()]);
    let refactor = code_actions(&mut b.server, range(2, 0, 5, 5), Some(&["refactor"]));
    assert_eq!(refactor.len(), 3, "{:?}", titles(&refactor));
    let quickfix = code_actions(&mut b.server, range(2, 0, 5, 5), Some(&["quickfix"]));
    assert!(quickfix.is_empty(), "{:?}", titles(&quickfix));

    // Ranges past the end are clamped, not refused.
    let far = code_actions(&mut b.server, range(500, 3, 900, 0), None);
    assert_eq!(far.len(), 3);

    // Listing never called the model.
    assert!(
        b.fake.requests().is_empty(),
        "codeAction must not call the model"
    );
}

// ---- explain ---------------------------------------------------------------------------------

const EXPLANATION: &str = "The loop reads one element past the end of the slice.\n\n\
`0..=values.len()` includes `values.len()`, so the last iteration indexes out of bounds and panics.\n\n\
Fix: make the range exclusive.\n\n\
```rust\n    for i in 0..values.len() {\n```\n";

#[test]
fn explain_shows_a_diagnostic_a_hover_and_a_message_and_escalates() {
    let mut b = start(script(
        text(EXPLANATION),
        vec![for_model(
            R1,
            text("Deeper: the range is inclusive.\n\nUse `0..values.len()`."),
        )],
    ));
    b.server.open(URI, "rust", LIB);
    let list = code_actions(&mut b.server, range(3, 0, 4, 25), None);
    let explain = find_action(&list, "Explain bug (Flash)")["command"].clone();
    let id = send_command(&mut b.server, &explain, "explain-1");

    // Progress: begin naming the action and tier, then an end with latency, tier and cost.
    let steps = progress(&b.server, "explain-1");
    assert_eq!(steps[0]["kind"], "begin");
    assert!(
        steps[0]["title"]
            .as_str()
            .is_some_and(|t| t.contains("Explain bug") && t.contains("Flash")),
        "{steps:?}"
    );
    assert_eq!(steps[0]["cancellable"], true, "{steps:?}");
    let end = steps.last().expect("end");
    let end_message = end["message"].as_str().unwrap_or_default();
    assert!(
        end_message.contains("Flash") && end_message.contains("ms") && end_message.contains('$'),
        "end names tier, latency and cost: {end_message}"
    );

    let result = b.server.response(id, WAIT).expect("explain succeeds");
    assert_eq!(result["action"], "explain");
    assert_eq!(result["tier"], "flash");
    assert_eq!(result["model"], FLASH);
    assert_eq!(result["cached"], false);
    assert!(result["latency_ms"].is_u64());
    assert!(result["usage"]["output_tokens"].as_u64() > Some(0));
    assert!(result["cost_usd"].as_f64() > Some(0.0));
    assert_eq!(result["text"], EXPLANATION);
    assert!(result["findings"].is_array());

    // The prompt carried the selection, the file name and the language.
    let sent = user_prompt(&requests_for(&b.fake, FLASH)[0]);
    assert!(sent.contains("for i in 0..=values.len()"), "{sent}");
    assert!(sent.contains("lib.rs"), "{sent}");

    // An Information diagnostic with the headline, on the range.
    let diags = b
        .server
        .wait_diagnostics(URI, WAIT, |d| !codetier_diagnostics(d).is_empty());
    let ours = codetier_diagnostics(&diags);
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0]["severity"], 3, "Information");
    assert_eq!(
        ours[0]["message"],
        "The loop reads one element past the end of the slice."
    );
    assert_eq!(ours[0]["range"]["start"]["line"], 3);

    // The headline as a message, the full markdown on hover.
    wait_for_message(&b.server, "one element past the end");
    let hover = b.server.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": URI }, "position": { "line": 3, "character": 8 } }),
    );
    let markdown = hover["contents"]["value"].as_str().unwrap_or_default();
    assert!(
        markdown.contains("indexes out of bounds"),
        "hover shows the full explanation: {hover}"
    );
    let away = b.server.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": URI }, "position": { "line": 10, "character": 4 } }),
    );
    assert!(away.is_null(), "no hover outside the range: {away}");

    // The proposed fix is a quick fix on that diagnostic.
    let fixes = b.server.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": URI }, "range": ours[0]["range"],
                "context": { "diagnostics": ours, "only": ["quickfix"] } }),
    );
    let fixes = fixes.as_array().cloned().unwrap_or_default();
    assert_eq!(fixes.len(), 1, "{fixes:?}");
    let edit = &fixes[0]["edit"]["documentChanges"][0]["edits"][0];
    assert!(
        edit["newText"]
            .as_str()
            .is_some_and(|t| t.contains("0..values.len()")),
        "{edit}"
    );

    // Now an escalation is offered; it asks the same prompt on DeepSeek-R1 and replaces the
    // earlier explanation.
    let list = code_actions(&mut b.server, range(3, 0, 4, 25), None);
    let escalate = find_action(&list, "Explain bug with DeepSeek-R1")["command"].clone();
    let result = run_action(&mut b.server, &escalate, "explain-2").expect("escalation succeeds");
    assert_eq!(result["tier"], "reasoning");
    assert_eq!(result["model"], R1);
    assert!(result["cost_usd"].as_f64() > Some(0.0));
    let flash_prompt = requests_for(&b.fake, FLASH)[0].messages.clone();
    let r1_prompt = requests_for(&b.fake, R1)[0].messages.clone();
    assert_eq!(
        flash_prompt, r1_prompt,
        "an escalation asks the same prompt"
    );
    let diags = b.server.wait_diagnostics(URI, WAIT, |d| {
        codetier_diagnostics(d)
            .iter()
            .any(|x| x["message"] == "Deeper: the range is inclusive.")
    });
    assert_eq!(codetier_diagnostics(&diags).len(), 1, "replaced, not added");
    no_key_anywhere(&b);
    b.server
        .told("codetier: Deeper: the range is inclusive.", &[]);
}

// ---- generate --------------------------------------------------------------------------------

const GENERATED: &str = "Here it is:\n\n```rust\nfn largest(values: &[i32]) -> i32 {\n    *values.iter().max().unwrap()\n}\n```\n";
const GENERATED_PRO: &str = "```rust\nfn largest(values: &[i32]) -> i32 {\n    values.iter().copied().max().unwrap_or(i32::MIN)\n}\n```";

fn assert_in_sync(server: &mut TestServer) {
    let (client_version, client_text) = server.text(URI);
    let (server_version, server_text) = server.server_text(URI);
    assert_eq!(server_text, client_text);
    assert_eq!(server_version, client_version);
}

#[test]
fn generate_applies_a_versioned_edit_and_escalation_replaces_it() {
    let mut b = start(script(
        text(GENERATED),
        vec![for_model(PRO, text(GENERATED_PRO))],
    ));
    b.server.open(URI, "rust", LIB);
    let list = code_actions(&mut b.server, range(10, 4, 10, 4), None);
    let generate = find_action(&list, "Generate function (Flash)")["command"].clone();
    let result = run_action(&mut b.server, &generate, "gen-1").expect("generate succeeds");
    assert_eq!(result["applied"], true, "{result}");
    assert_eq!(result["tier"], "flash");

    // One versioned edit, for the version the document had.
    let edits = b.server.server_requests("workspace/applyEdit");
    assert_eq!(edits.len(), 1);
    let change = &edits[0]["params"]["edit"]["documentChanges"][0];
    assert_eq!(change["textDocument"]["version"], 1);
    let (_, now) = b.server.text(URI);
    assert!(
        now.contains("fn largest(values: &[i32]) -> i32 {\n    *values.iter().max().unwrap()\n}\n"),
        "{now}"
    );
    assert!(!now.contains("todo!()"), "{now}");
    assert!(
        now.starts_with("// averages\nfn average"),
        "the rest is untouched: {now}"
    );
    assert_eq!(now.matches("fn largest").count(), 1, "{now}");
    assert_in_sync(&mut b.server);

    // Escalations appear on the generated code; the pro one replaces it.
    let list = code_actions(&mut b.server, range(10, 6, 10, 6), None);
    let names = titles(&list);
    assert!(
        names.contains(&"Generate function with DeepSeek V4 Pro".to_owned())
            && names.contains(&"Generate function with DeepSeek-R1".to_owned()),
        "{names:?}"
    );
    let escalate = find_action(&list, "Generate function with DeepSeek V4 Pro")["command"].clone();
    let id = send_command(&mut b.server, &escalate, "gen-2");
    let steps = progress(&b.server, "gen-2");
    assert!(
        steps[0]["title"]
            .as_str()
            .is_some_and(|t| t.contains("DeepSeek V4 Pro")),
        "{steps:?}"
    );
    let result = b.server.response(id, WAIT).expect("escalation succeeds");
    assert_eq!(result["applied"], true, "{result}");
    assert_eq!(result["tier"], "pro");
    assert_eq!(result["model"], PRO);
    assert!(result["cost_usd"].as_f64() > Some(0.0));
    let (_, now) = b.server.text(URI);
    assert!(
        now.contains("values.iter().copied().max().unwrap_or(i32::MIN)"),
        "{now}"
    );
    assert_eq!(
        now.matches("fn largest").count(),
        1,
        "replaced, not added: {now}"
    );
    assert!(
        now.ends_with("}\n") && now.starts_with("// averages\n"),
        "{now}"
    );
    assert_in_sync(&mut b.server);
    assert_eq!(
        requests_for(&b.fake, FLASH)[0].messages,
        requests_for(&b.fake, PRO)[0].messages,
        "the escalation asks the same prompt"
    );
    no_key_anywhere(&b);
}

#[test]
fn generate_is_reanchored_after_typing_elsewhere_and_refused_after_editing_the_target() {
    let mut b = start(script(slow(600, GENERATED), vec![]));
    b.server.open(URI, "rust", LIB);

    // Typing above the target while the model answers: the code still lands on `largest`.
    let id = b.server.send(
        "workspace/executeCommand",
        command("generate", range(10, 4, 10, 4), None),
    );
    std::thread::sleep(Duration::from_millis(150));
    b.server.edit(URI, (0, 0), (0, 0), "// a new first line\n");
    b.server.edit(URI, (2, 0), (2, 0), "    \n");
    let result = b.server.response(id, WAIT).expect("generate succeeds");
    assert_eq!(result["applied"], true, "{result}");
    let edit = &b.server.server_requests("workspace/applyEdit")[0]["params"]["edit"];
    assert_eq!(edit["documentChanges"][0]["textDocument"]["version"], 3);
    let (_, now) = b.server.text(URI);
    assert!(
        now.starts_with("// a new first line\n// averages\n"),
        "{now}"
    );
    assert!(
        now.contains("    *values.iter().max().unwrap()\n}\n"),
        "{now}"
    );
    assert!(!now.contains("todo!()"), "{now}");
    assert!(now.contains("sum / values.len() as i32"), "{now}");
    assert_in_sync(&mut b.server);

    // Editing the target itself while the model answers: nothing is applied, the user is told.
    b.server.edit(
        URI,
        (12, 0),
        (12, 0),
        "fn smallest(values: &[i32]) -> i32 {\n    todo!()\n}\n\n",
    );
    let (_, before) = b.server.text(URI);
    let target_line = before
        .lines()
        .position(|l| l == "    todo!()")
        .expect("todo line") as u32;
    let id = b.server.send(
        "workspace/executeCommand",
        command("generate", range(target_line, 4, target_line, 4), None),
    );
    std::thread::sleep(Duration::from_millis(150));
    b.server
        .edit(URI, (target_line, 4), (target_line, 11), "unimplemented!()");
    let result = b.server.response(id, WAIT).expect("the command answers");
    assert_eq!(result["applied"], false, "{result}");
    assert!(
        result["message"]
            .as_str()
            .is_some_and(|m| m.contains("edited while")),
        "{result}"
    );
    wait_for_message(&b.server, "edited while");
    assert_eq!(
        b.server.server_requests("workspace/applyEdit").len(),
        1,
        "no second edit was sent"
    );
    let (_, after) = b.server.text(URI);
    assert!(after.contains("unimplemented!()"));
    assert_in_sync(&mut b.server);
    b.server.told(
        "answer is unverified: the code does not define `smallest`",
        &[],
    );
}

#[test]
fn review_and_explain_follow_typing_elsewhere_and_are_dropped_when_their_code_changes() {
    let mut b = start(script(
        slow(500, FINDINGS),
        vec![for_model(FLASH, slow(500, FINDINGS))],
    ));
    b.server.open(URI, "rust", LIB);

    // Typing above while the review runs: the findings land on the moved lines.
    let id = b.server.send(
        "workspace/executeCommand",
        command("review", range(1, 0, 7, 1), None),
    );
    std::thread::sleep(Duration::from_millis(150));
    b.server.edit(URI, (0, 0), (0, 0), "// one\n// two\n");
    b.server.response(id, WAIT).expect("review succeeds");
    let diags = b
        .server
        .wait_diagnostics(URI, WAIT, |d| codetier_diagnostics(d).len() == 2);
    let lines: Vec<u64> = codetier_diagnostics(&diags)
        .iter()
        .filter_map(|d| d["range"]["start"]["line"].as_u64())
        .collect();
    assert!(
        lines.contains(&5) && lines.contains(&8),
        "shifted by two: {lines:?}"
    );

    // Editing the reviewed code while an explanation runs: nothing is attached, the user is told.
    let id = b.server.send(
        "workspace/executeCommand",
        command("explain", range(11, 0, 11, 20), None),
    );
    std::thread::sleep(Duration::from_millis(150));
    b.server.edit(URI, (11, 3), (11, 4), "L");
    let result = b.server.response(id, WAIT).expect("the command answers");
    assert!(
        result["message"]
            .as_str()
            .is_some_and(|m| m.contains("edited while")),
        "{result}"
    );
    wait_for_message(&b.server, "explanation was not attached");
    let diags = b.server.wait_diagnostics(URI, WAIT, |_| true);
    assert!(
        codetier_diagnostics(&diags)
            .iter()
            .all(|d| d["severity"] != 3),
        "no explanation attached: {diags:?}"
    );
    assert_in_sync(&mut b.server);
}

#[test]
fn an_edit_the_editor_refuses_is_reported_and_nothing_changes() {
    let mut b = start_with(script(text(GENERATED), vec![]), |builder| {
        builder.edits(EditPolicy::Refuse)
    });
    b.server.open(URI, "rust", LIB);
    let result = b.server.request(
        "workspace/executeCommand",
        command("generate", range(10, 4, 10, 4), None),
    );
    assert_eq!(result["applied"], false, "{result}");
    wait_for_message(&b.server, "did not apply");
    assert_eq!(b.server.text(URI).1, LIB);
    assert_in_sync(&mut b.server);
}

// ---- review ----------------------------------------------------------------------------------

/// File lines are 1-based in the model's answer: line 4 is `for i in 0..=values.len() {`.
const FINDINGS: &str = r#"```json
[
  {"line": 4, "severity": "error", "message": "index out of bounds on the last iteration", "replacement": "    for i in 0..values.len() {"},
  {"line": 7, "severity": "warning", "message": "divides by zero when the slice is empty"}
]
```"#;
const FINDINGS_CODER: &str =
    r#"{"line": 7, "severity": "warning", "message": "coder: empty slice divides by zero"}"#;

#[test]
fn review_publishes_findings_with_fixes_that_follow_edits_and_escalation_replaces_them() {
    let mut b = start(script(
        text(FINDINGS),
        vec![for_model(CODER, text(FINDINGS_CODER))],
    ));
    b.server.open(URI, "rust", LIB);
    let list = code_actions(&mut b.server, range(1, 0, 7, 1), None);
    let review = find_action(&list, "Review selection (Flash)")["command"].clone();
    let result = run_action(&mut b.server, &review, "review-1").expect("review succeeds");
    assert_eq!(
        result["findings"].as_array().map(Vec::len),
        Some(2),
        "{result}"
    );

    let diags = b
        .server
        .wait_diagnostics(URI, WAIT, |d| codetier_diagnostics(d).len() == 2);
    let ours = codetier_diagnostics(&diags);
    let error = ours.iter().find(|d| d["severity"] == 1).expect("an error");
    let warning = ours.iter().find(|d| d["severity"] == 2).expect("a warning");
    assert_eq!(error["range"]["start"]["line"], 3, "{error}");
    assert_eq!(warning["range"]["start"]["line"], 6, "{warning}");
    assert!(error["message"]
        .as_str()
        .is_some_and(|m| m.contains("index out of bounds")));

    // The replacement is a quick fix.
    let fixes = b.server.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": URI }, "range": error["range"],
                "context": { "diagnostics": [error], "only": ["quickfix"] } }),
    );
    let fixes = fixes.as_array().cloned().unwrap_or_default();
    assert_eq!(fixes.len(), 1, "{fixes:?}");
    // Applied, the fix turns the line into the proposed one.
    let fix = &fixes[0]["edit"]["documentChanges"][0]["edits"][0];
    let mut fixed = LIB.to_owned();
    codetier_tests::client::naive::apply(
        &mut fixed,
        &fix["range"],
        fix["newText"].as_str().unwrap_or_default(),
        false,
    );
    assert_eq!(
        fixed.lines().nth(3),
        Some("    for i in 0..values.len() {"),
        "{fix}"
    );

    // Typing above moves the findings.
    b.server.edit(URI, (0, 0), (0, 0), "// moved\n");
    let diags = b.server.wait_diagnostics(URI, WAIT, |d| {
        codetier_diagnostics(d)
            .iter()
            .any(|x| x["severity"] == 1 && x["range"]["start"]["line"] == 4)
    });
    assert_eq!(codetier_diagnostics(&diags).len(), 2);

    // Escalation to the coder tier asks the same prompt again and replaces the findings.
    let list = code_actions(&mut b.server, range(2, 0, 8, 1), None);
    let escalate = find_action(&list, "Review selection with Qwen3-Coder-30B")["command"].clone();
    let result = run_action(&mut b.server, &escalate, "review-2").expect("escalation succeeds");
    assert_eq!(result["tier"], "coder");
    assert_eq!(result["model"], CODER);
    let diags = b.server.wait_diagnostics(URI, WAIT, |d| {
        codetier_diagnostics(d).iter().any(|x| {
            x["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("coder:"))
        })
    });
    let ours = codetier_diagnostics(&diags);
    assert_eq!(
        ours.len(),
        1,
        "the new review replaced the old findings: {ours:?}"
    );
    assert_eq!(ours[0]["range"]["start"]["line"], 7, "{ours:?}");
    assert_eq!(
        requests_for(&b.fake, FLASH)[0].messages,
        requests_for(&b.fake, CODER)[0].messages,
        "the escalation asks the same prompt"
    );

    // Editing the finding's range removes it; the answer no longer matches the code, so no
    // escalation is offered for it.
    b.server.edit(URI, (7, 4), (7, 7), "total");
    b.server
        .wait_diagnostics(URI, WAIT, |d| codetier_diagnostics(d).is_empty());
    let list = code_actions(&mut b.server, range(2, 0, 8, 1), None);
    assert!(
        !titles(&list).iter().any(|t| t.contains(" with ")),
        "{:?}",
        titles(&list)
    );
}

#[test]
fn an_unparseable_review_becomes_one_finding_carrying_the_text() {
    let mut b = start(script(
        text("Looks mostly fine, but the loop bound is off by one."),
        vec![],
    ));
    b.server.open(URI, "rust", LIB);
    let result = b.server.request(
        "workspace/executeCommand",
        command("review", range(1, 0, 7, 1), None),
    );
    let findings = result["findings"].as_array().cloned().unwrap_or_default();
    assert_eq!(findings.len(), 1, "{result}");
    assert!(findings[0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("off by one")));
    let diags = b
        .server
        .wait_diagnostics(URI, WAIT, |d| !codetier_diagnostics(d).is_empty());
    assert_eq!(codetier_diagnostics(&diags).len(), 1);
}

// ---- cancellation ----------------------------------------------------------------------------

#[test]
fn cancel_request_and_progress_button_abort_the_upstream_call() {
    for (action, by_button) in [("explain", false), ("review", true), ("generate", false)] {
        let mut b = start(script(slow(10_000, GENERATED), vec![]));
        b.server.open(URI, "rust", LIB);
        let token = format!("{action}-cancel");
        let id = send_command(
            &mut b.server,
            &command(action, range(3, 0, 4, 25), None),
            &token,
        );
        let begun = b
            .server
            .wait_notification("$/progress", WAIT, |p| p["token"] == token.as_str());
        assert_eq!(begun["value"]["kind"], "begin");
        // Cancel once the upstream request is in flight.
        let deadline = Instant::now() + WAIT;
        while b.fake.requests().is_empty() {
            assert!(
                Instant::now() < deadline,
                "{action}: nothing reached the provider"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let cancelled_at = Instant::now();
        if by_button {
            b.server
                .notify("window/workDoneProgress/cancel", json!({ "token": token }));
        } else {
            b.server.cancel(id);
        }
        let err = b.server.response(id, WAIT).expect_err("cancelled");
        assert_eq!(err["code"], -32800, "RequestCancelled: {err}");
        // The fake sees the connection close promptly (generous bound for a busy machine).
        let deadline = Instant::now() + Duration::from_secs(5);
        let closed = loop {
            let requests = b.fake.requests();
            if let Some(at) = requests.first().and_then(|r| r.disconnected_at) {
                break Some(at);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let closed =
            closed.unwrap_or_else(|| panic!("{action}: the upstream request was not aborted"));
        assert!(
            closed.saturating_duration_since(cancelled_at) < Duration::from_secs(2),
            "{action}: upstream closed {:?} after the cancel",
            closed.saturating_duration_since(cancelled_at)
        );
        let end = progress(&b.server, &token);
        assert_eq!(end.last().expect("end")["kind"], "end");
        assert!(b.server.server_requests("workspace/applyEdit").is_empty());
        assert_eq!(b.server.text(URI).1, LIB);
    }
}

// ---- provider faults -------------------------------------------------------------------------

#[test]
fn provider_faults_give_clear_messages_and_apply_nothing() {
    let cases: Vec<(Behavior, &str)> = vec![
        (
            Behavior {
                fault: Some(Fault::Status {
                    status: 401,
                    body: None,
                    retry_after: None,
                }),
                ..Behavior::default()
            },
            "GLOBAL_API_KEY",
        ),
        (
            Behavior {
                fault: Some(Fault::Reset { after_tokens: 2 }),
                ..text(GENERATED)
            },
            "",
        ),
        (
            Behavior {
                fault: Some(Fault::MalformedJson { after_tokens: 1 }),
                ..text(GENERATED)
            },
            "",
        ),
    ];
    for (behavior, must_name) in cases {
        let label = format!("{:?}", behavior.fault);
        let mut b = start(script(behavior, vec![]));
        b.server.open(URI, "rust", LIB);
        for action in ["generate", "review", "explain"] {
            let err = b
                .server
                .try_request(
                    "workspace/executeCommand",
                    command(action, range(10, 4, 10, 4), None),
                )
                .expect_err(&format!("{label}: {action} fails"));
            let message = err["message"].as_str().unwrap_or_default();
            assert!(message.starts_with("codetier: "), "{label}: {message}");
            assert!(message.contains(must_name), "{label}: {message}");
            assert!(!message.contains(KEY), "{label}: the key leaked: {message}");
        }
        assert!(
            b.server.server_requests("workspace/applyEdit").is_empty(),
            "{label}"
        );
        let diags = b
            .server
            .take_notifications("textDocument/publishDiagnostics");
        assert!(
            diags.iter().all(|d| codetier_diagnostics(
                d["diagnostics"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
            )
            .is_empty()),
            "{label}: nothing attached"
        );
        assert_eq!(b.server.text(URI).1, LIB);
        assert_in_sync(&mut b.server);
        no_key_anywhere(&b);
    }
}

// ---- pending replies, concurrency -------------------------------------------------------------

#[test]
fn a_slow_answer_replies_pending_and_is_delivered_later() {
    let mut b = start_with(script(slow(1_500, GENERATED), vec![]), |builder| {
        builder.init_options(json!({ "command_reply_ms": 200 }))
    });
    b.server.open(URI, "rust", LIB);
    let started = Instant::now();
    let result = b.server.request(
        "workspace/executeCommand",
        command("generate", range(10, 4, 10, 4), None),
    );
    assert_eq!(result["pending"], true, "{result}");
    assert!(
        started.elapsed() < Duration::from_millis(1_400),
        "replied before the answer"
    );
    // The edit arrives later through applyEdit.
    let deadline = Instant::now() + WAIT;
    while b.server.server_requests("workspace/applyEdit").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the pending answer was never applied"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(b
        .server
        .text(URI)
        .1
        .contains("*values.iter().max().unwrap()"));
    assert_in_sync(&mut b.server);
}

#[test]
fn slow_commands_never_starve_code_actions_or_typing() {
    let mut b = start(script(slow(4_000, "Slow answer."), vec![]));
    b.server.open(URI, "rust", LIB);
    // Twelve slow commands in flight, more than the framework's default concurrency of 4.
    let ids: Vec<i64> = (0..12)
        .map(|i| {
            let mut args = command("explain", range(i % 8, 0, i % 8, 5), None);
            args["arguments"][0]["fresh"] = json!(true);
            b.server.send("workspace/executeCommand", args)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // codeAction still answers at once, and a flood of edits is applied in order.
    let started = Instant::now();
    let actions = code_actions(&mut b.server, range(10, 4, 10, 4), None);
    assert_eq!(actions.len(), 3);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "codeAction waited behind slow commands: {:?}",
        started.elapsed()
    );
    for i in 0..300 {
        b.server.edit(URI, (12, 0), (12, 0), &format!("// {i}\n"));
    }
    let (server_version, server_text) = b.server.server_text(URI);
    let (client_version, client_text) = b.server.text(URI);
    assert_eq!(server_version, client_version);
    assert_eq!(server_text, client_text);
    assert!(b.fake.requests().len() >= 8, "commands were in flight");
    for id in ids {
        b.server.cancel(id);
        let reply = b.server.response(id, WAIT);
        assert_eq!(
            reply.as_ref().err().map(|e| e["code"].clone()),
            Some(json!(-32800)),
            "a cancelled command is answered RequestCancelled: {reply:?}"
        );
    }
}

// ---- privacy ---------------------------------------------------------------------------------

#[test]
fn excluded_files_are_refused_and_secrets_are_redacted_before_sending() {
    let mut b = start(script(text("Fine."), vec![]));
    let env_uri = "file:///tmp/codetier-actions/.env";
    b.server
        .open(env_uri, "plaintext", "DATABASE_PASSWORD=hunter2\n");
    let err = b
        .server
        .try_request(
            "workspace/executeCommand",
            json!({ "command": "codetier.explain",
                    "arguments": [{ "uri": env_uri, "range": range(0, 0, 0, 10) }] }),
        )
        .expect_err("excluded");
    let message = err["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(".env") || message.contains("exclude"),
        "{message}"
    );
    assert!(b.fake.requests().is_empty(), "nothing was sent");

    let secret = "AKIAIOSFODNN7EXAMPLE";
    let source = format!(
        "fn connect() {{\n    let aws = \"{secret}\";\n    let password = \"hunter2\";\n    call(aws, password);\n}}\n"
    );
    b.server.open(URI, "rust", &source);
    b.server.request(
        "workspace/executeCommand",
        command("explain", range(0, 0, 4, 1), None),
    );
    let sent = user_prompt(&b.fake.requests()[0]);
    assert!(sent.contains("fn connect"), "{sent}");
    assert!(!sent.contains(secret), "the AWS key was sent: {sent}");
    assert!(!sent.contains("hunter2"), "the password was sent: {sent}");
    b.server.told("codetier: Fine.", &[]);
}

// ---- the cache -------------------------------------------------------------------------------

#[test]
fn a_second_ask_is_a_cache_hit_and_regenerate_asks_again() {
    let mut b = start(script(text(EXPLANATION), vec![]));
    b.server.open(URI, "rust", LIB);
    let explain = command("explain", range(3, 0, 4, 25), None);
    let first = run_action(&mut b.server, &explain, "c-1").expect("first");
    progress(&b.server, "c-1");
    assert_eq!(first["cached"], false);
    let second = run_action(&mut b.server, &explain, "c-2").expect("second");
    assert_eq!(second["cached"], true, "{second}");
    assert_eq!(second["text"], first["text"]);
    assert_eq!(second["cost_usd"], 0.0, "a hit costs nothing: {second}");
    let end = progress(&b.server, "c-2");
    assert!(
        end.last().expect("end")["message"]
            .as_str()
            .is_some_and(|m| m.contains("cached")),
        "{end:?}"
    );
    assert_eq!(
        b.fake.requests().len(),
        1,
        "the hit never reached the provider"
    );

    // Regenerate (offered next to the escalations) skips the read and asks again.
    let list = code_actions(&mut b.server, range(3, 0, 4, 25), None);
    let regenerate = find_action(&list, "Regenerate: Explain bug (Flash)")["command"].clone();
    let third = run_action(&mut b.server, &regenerate, "c-3").expect("regenerate");
    assert_eq!(third["cached"], false, "{third}");
    assert_eq!(b.fake.requests().len(), 2);

    // The session report counts the hit as saved money.
    let usage = b.server.request(
        "workspace/executeCommand",
        json!({ "command": "codetier.usage", "arguments": [] }),
    );
    let flash = usage["per_tier"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["tier"] == "flash"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(flash["requests"], 2, "{usage}");
    assert_eq!(flash["cache_hits"], 1, "{usage}");
    assert!(flash["saved_usd"].as_f64() > Some(0.0), "{usage}");
    b.server.told(
        "codetier usage this session: 2 requests, 1 cache hit",
        &["The loop reads one element past the end"],
    );
}

#[test]
fn an_unusable_cache_directory_is_reported_once_and_answers_still_come() {
    let home = tempfile::tempdir().expect("tempdir");
    let not_a_dir = home.path().join("cache-is-a-file");
    std::fs::write(&not_a_dir, "not a directory").expect("write");
    let mut b = start_with(script(text(EXPLANATION), vec![]), |builder| {
        builder.env("XDG_CACHE_HOME", not_a_dir.to_str().expect("utf-8 path"))
    });
    b.server.open(URI, "rust", LIB);
    let explain = command("explain", range(3, 0, 4, 25), None);
    let first = run_action(&mut b.server, &explain, "d-1").expect("answers without a disk cache");
    assert_eq!(first["cached"], false);
    let second = run_action(&mut b.server, &explain, "d-2").expect("second");
    assert_eq!(second["cached"], true, "memory still caches: {second}");
    let warnings: Vec<Value> = b
        .server
        .take_notifications("window/showMessage")
        .into_iter()
        .filter(|m| {
            m["message"]
                .as_str()
                .is_some_and(|s| s.contains("disk cache"))
        })
        .collect();
    assert_eq!(warnings.len(), 1, "said once: {warnings:?}");
    assert_eq!(warnings[0]["type"], 2, "a warning");
}
