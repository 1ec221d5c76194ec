//! Inline completions over stdio against the fake provider: the capability, both prompt modes,
//! the stream dropped once the suggestion is complete, staleness (an edit, a newer request,
//! `$/cancelRequest`), typeahead and the cache without upstream requests, the budget, the menu
//! item, privacy, and typing that never waits on completions in flight.

use std::time::Duration;

use codetier_tests::bench::Bench;
use codetier_tests::client::TestServer;
use codetier_tests::fake::{Answer, Behavior, Fault, Script};
use serde_json::{json, Value};

const KEY: &str = "sk-completion-test-77ab";
const WAIT: Duration = Duration::from_secs(30);
const URI: &str = "file:///work/src/main.rs";
const DOC: &str = "fn main() {\n    let x = \n}\n";
/// The cursor after `let x = `.
const CURSOR: (u32, u32) = (1, 12);

fn answering(text: &str) -> Script {
    Script::always(Behavior {
        answer: Answer::Text(text.to_owned()),
        ..Behavior::default()
    })
}

fn hanging() -> Script {
    Script::always(Behavior::failing(Fault::Hang))
}

fn start(script: Script, completion: Value) -> Bench {
    Bench::start(script, KEY, |b| {
        b.init_options(json!({ "completion": completion }))
    })
}

/// Waits until `n` requests reached the fake (polled: the fake runs on the bench's runtime).
fn arrived(b: &Bench, n: usize, what: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    while b.fake.requests().len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: {} of {n} requests",
            b.fake.requests().len()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether the client of request `index` went away before its answer was complete.
fn closed(b: &Bench, index: usize) -> bool {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if b.fake
            .requests()
            .get(index)
            .is_some_and(|r| r.closed_early())
        {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `textDocument/inlineCompletion` at `at` of `uri`; the request id.
fn ask(server: &mut TestServer, uri: &str, at: (u32, u32)) -> i64 {
    server.send(
        "textDocument/inlineCompletion",
        json!({
            "textDocument": { "uri": uri },
            "position": { "line": at.0, "character": at.1 },
            "context": { "triggerKind": 2 }
        }),
    )
}

/// The items of an inline completion reply.
fn items(reply: Result<Value, Value>) -> Vec<Value> {
    let reply = reply.expect("an inline completion list");
    reply["items"].as_array().cloned().expect("items")
}

/// The one suggestion's text at `at`, or `None` for an empty list.
fn suggestion(server: &mut TestServer, uri: &str, at: (u32, u32)) -> Option<String> {
    let id = ask(server, uri, at);
    let items = items(server.response(id, WAIT));
    assert!(items.len() <= 1, "{items:?}");
    items.first().map(|i| {
        let pos = json!({ "line": at.0, "character": at.1 });
        assert_eq!(i["range"], json!({ "start": pos, "end": pos }), "{i}");
        i["insertText"].as_str().unwrap_or_default().to_owned()
    })
}

/// The `complete` row of the usage report (its message read).
fn complete_usage(server: &mut TestServer) -> Value {
    let report = server.request(
        "workspace/executeCommand",
        json!({ "command": "codetier.usage", "arguments": [] }),
    );
    let told = server.told("codetier usage this session", &[]);
    assert!(told.iter().all(|m| m.contains("complete:")), "{told:?}");
    report["per_action"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["action"] == "complete").cloned())
        .unwrap_or(Value::Null)
}

#[test]
fn the_capability_follows_the_client_and_the_configuration() {
    let b = start(answering("1"), json!({}));
    let caps = &b.server.initialize_result()["capabilities"];
    assert_eq!(caps["inlineCompletionProvider"], true, "{caps}");
    assert!(caps.get("completionProvider").is_none(), "{caps}");
    drop(b);
    let bare = Bench::start(answering("1"), KEY, |b| {
        b.capabilities(json!({ "workspace": { "applyEdit": true } }))
    });
    let caps = &bare.server.initialize_result()["capabilities"];
    assert!(caps.get("inlineCompletionProvider").is_none(), "{caps}");
    drop(bare);
    let menu = start(answering("1"), json!({ "menu": true }));
    let caps = &menu.server.initialize_result()["capabilities"];
    assert!(caps["completionProvider"].is_object(), "{caps}");
    drop(menu);
    let off = start(answering("1"), json!({ "enabled": false, "menu": true }));
    let caps = &off.server.initialize_result()["capabilities"];
    assert!(caps.get("inlineCompletionProvider").is_none(), "{caps}");
    assert!(caps.get("completionProvider").is_none(), "{caps}");
}

#[test]
fn chat_mode_asks_for_the_missing_text_and_answers_a_list() {
    let mut b = start(answering("compute(1, 2);"), json!({}));
    b.server.open(URI, "rust", DOC);
    assert_eq!(
        suggestion(&mut b.server, URI, CURSOR).as_deref(),
        Some("compute(1, 2);")
    );
    let requests = b.fake.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert!(!sent.fim);
    assert_eq!(sent.model, "deepseek-v4-flash");
    assert!(
        sent.body["max_tokens"].as_u64() <= Some(96),
        "{}",
        sent.body
    );
    let user = &sent.messages.last().expect("a user message").content;
    assert!(
        user.contains("fn main() {\n    let x = <CURSOR>\n}\n"),
        "{user}"
    );
    let usage = complete_usage(&mut b.server);
    assert_eq!(
        (usage["asked"].as_u64(), usage["requests"].as_u64()),
        (Some(1), Some(1)),
        "{usage}"
    );
}

#[test]
fn fim_mode_posts_prompt_and_suffix_to_completions() {
    let mut b = start(answering("compute(1, 2);"), json!({ "mode": "fim" }));
    b.server.open(URI, "rust", DOC);
    assert_eq!(
        suggestion(&mut b.server, URI, CURSOR).as_deref(),
        Some("compute(1, 2);")
    );
    let sent = &b.fake.requests()[0];
    assert!(sent.fim, "{}", sent.body);
    assert_eq!(sent.body["prompt"], "fn main() {\n    let x = ");
    assert_eq!(sent.body["suffix"], "\n}\n");
    assert_eq!(sent.body["stream"], true);
    assert!(sent.body.get("messages").is_none());
}

#[test]
fn the_stream_is_dropped_once_the_line_is_complete() {
    let script = Script::always(Behavior {
        answer: Answer::Text(
            "a, b)\nand then many more words that nobody will ever read here".into(),
        ),
        tokens_per_second: Some(5.0),
        ..Behavior::default()
    });
    let mut b = start(script, json!({ "budget_ms": 60000 }));
    b.server.open(URI, "rust", "fn main() {\n    call();\n}\n");
    assert_eq!(
        suggestion(&mut b.server, URI, (1, 9)).as_deref(),
        Some("a, b"),
        "the `)` after the cursor is not doubled"
    );
    assert!(closed(&b, 0), "the upstream request was not closed");
    assert!(b.fake.requests()[0].completed_at.is_none());
}

#[test]
fn an_edit_cancels_the_upstream_request_at_once() {
    let mut b = start(hanging(), json!({ "budget_ms": 60000 }));
    b.server.open(URI, "rust", DOC);
    let id = ask(&mut b.server, URI, CURSOR);
    arrived(&b, 1, "the completion was sent");
    b.server.edit(URI, CURSOR, CURSOR, "c");
    assert!(items(b.server.response(id, WAIT)).is_empty());
    assert!(closed(&b, 0));
    let usage = complete_usage(&mut b.server);
    assert_eq!(usage["cancelled_stale"], 1, "{usage}");
    assert_eq!(usage["stale_share"], 1.0, "{usage}");
}

#[test]
fn a_newer_request_cancels_the_older_and_cancel_request_works() {
    let mut b = start(hanging(), json!({ "budget_ms": 60000 }));
    b.server.open(URI, "rust", DOC);
    let first = ask(&mut b.server, URI, CURSOR);
    arrived(&b, 1, "the first was sent");
    let second = ask(&mut b.server, URI, (1, 4));
    assert!(items(b.server.response(first, WAIT)).is_empty());
    assert!(closed(&b, 0));
    arrived(&b, 2, "the second was sent");
    b.server.cancel(second);
    let err = b.server.response(second, WAIT).expect_err("cancelled");
    assert_eq!(err["code"], -32800, "{err}");
    assert!(closed(&b, 1));
}

#[test]
fn typing_what_was_suggested_and_asking_again_send_nothing() {
    let mut b = start(answering("compute(1, 2);"), json!({}));
    b.server.open(URI, "rust", DOC);
    assert_eq!(
        suggestion(&mut b.server, URI, CURSOR).as_deref(),
        Some("compute(1, 2);")
    );
    // Typeahead: the user types the first letters of the suggestion.
    b.server.edit(URI, CURSOR, CURSOR, "comp");
    assert_eq!(
        suggestion(&mut b.server, URI, (1, 16)).as_deref(),
        Some("ute(1, 2);")
    );
    assert_eq!(b.fake.requests().len(), 1);
    // Another document, then back: the cache answers the same place and context.
    let other = "file:///work/src/other.rs";
    b.server
        .open(other, "rust", "fn other() {\n    let y = \n}\n");
    b.fake.set_script(answering("other(3);"));
    assert_eq!(
        suggestion(&mut b.server, other, (1, 12)).as_deref(),
        Some("other(3);")
    );
    b.server.edit(URI, CURSOR, (1, 16), "");
    assert_eq!(
        suggestion(&mut b.server, URI, CURSOR).as_deref(),
        Some("compute(1, 2);")
    );
    assert_eq!(b.fake.requests().len(), 2);
    let usage = complete_usage(&mut b.server);
    assert_eq!(
        (usage["asked"].as_u64(), usage["hits"].as_u64()),
        (Some(4), Some(2)),
        "{usage}"
    );
    assert_eq!(usage["hit_rate"], 0.5, "{usage}");
}

#[test]
fn a_late_suggestion_is_dropped_silently() {
    let script = Script::always(Behavior::ttft_ms(10_000));
    let mut b = start(script, json!({ "budget_ms": 300 }));
    b.server.open(URI, "rust", DOC);
    assert_eq!(suggestion(&mut b.server, URI, CURSOR), None);
    assert!(closed(&b, 0));
    assert!(
        b.server.take_messages().is_empty(),
        "no popup for a late one"
    );
    let usage = complete_usage(&mut b.server);
    assert_eq!(usage["dropped_late"], 1, "{usage}");
}

#[test]
fn the_menu_offers_one_item_named_after_codetier_and_its_tier() {
    let mut b = start(answering("ute(1, 2);"), json!({ "menu": true }));
    b.server
        .open(URI, "rust", "fn main() {\n    let x = comp\n}\n");
    let list = b.server.request(
        "textDocument/completion",
        json!({ "textDocument": { "uri": URI }, "position": { "line": 1, "character": 16 } }),
    );
    let items = list.as_array().expect("an item list");
    assert_eq!(items.len(), 1, "{list}");
    let item = &items[0];
    assert!(
        item["label"]
            .as_str()
            .unwrap_or("")
            .contains("codetier (Flash)"),
        "{item}"
    );
    assert_eq!(item["textEdit"]["newText"], "compute(1, 2);");
    assert_eq!(
        item["textEdit"]["range"]["start"],
        json!({ "line": 1, "character": 12 })
    );
    assert_eq!(item["filterText"], "compute(1, 2);");
}

#[test]
fn secrets_before_the_cursor_never_reach_the_provider_and_excluded_files_are_not_sent() {
    const TOKEN: &str = "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8";
    for mode in ["chat", "fim"] {
        let mut b = start(answering("1"), json!({ "mode": mode }));
        let text = format!("fn main() {{\n    let token = \"{TOKEN}\";\n    let x = \n}}\n");
        b.server.open(URI, "rust", &text);
        let _ = suggestion(&mut b.server, URI, (2, 12));
        let sent = b.fake.requests()[0].body.to_string();
        assert!(!sent.contains("a1B2c3D4"), "{mode}: {sent}");
        assert!(sent.contains("[REDACTED"), "{mode}: {sent}");
        let env = "file:///work/.env";
        b.server.open(env, "dotenv", "API_KEY=\n");
        assert_eq!(suggestion(&mut b.server, env, (0, 8)), None);
        assert_eq!(
            b.fake.requests().len(),
            1,
            "{mode}: the excluded file was sent"
        );
    }
}

#[test]
fn typing_never_waits_on_completions_in_flight() {
    let mut b = start(hanging(), json!({ "budget_ms": 60000 }));
    let uris: Vec<String> = (0..20)
        .map(|i| format!("file:///work/src/f{i}.rs"))
        .collect();
    let mut ids = Vec::new();
    for uri in &uris {
        b.server.open(uri, "rust", DOC);
        ids.push(ask(&mut b.server, uri, CURSOR));
    }
    arrived(&b, 20, "all twenty hang upstream");
    // Typing, another document's completion and code actions are answered meanwhile.
    let typed = "file:///work/src/typed.rs";
    b.server.open(typed, "rust", DOC);
    for (i, ch) in "hello".chars().enumerate() {
        b.server.edit(
            typed,
            (1, 12 + i as u32),
            (1, 12 + i as u32),
            &ch.to_string(),
        );
    }
    let (_, text) = b.server.server_text(typed);
    assert!(text.contains("let x = hello"), "{text}");
    b.server.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": typed }, "range": { "start": { "line": 1, "character": 4 }, "end": { "line": 1, "character": 4 } }, "context": { "diagnostics": [] } }),
    );
    for id in &ids {
        assert!(
            b.server.poll_response(*id).is_none(),
            "a hanging completion answered"
        );
    }
    // Typing in each document drops its completion and the upstream request.
    for uri in &uris {
        b.server.edit(uri, CURSOR, CURSOR, "x");
    }
    for id in ids {
        assert!(items(b.server.response(id, WAIT)).is_empty());
    }
    for i in 0..20 {
        assert!(closed(&b, i), "request {i} still open");
    }
}

#[test]
fn nothing_is_sent_before_the_debounce_and_a_quicker_request_replaces_it() {
    let mut b = start(
        answering("compute(1, 2);"),
        json!({ "debounce_ms": 2000, "budget_ms": 60000 }),
    );
    b.server.open(URI, "rust", DOC);
    // Two requests well inside the debounce: the first is stale before anything was sent.
    let first = ask(&mut b.server, URI, (1, 4));
    let second = ask(&mut b.server, URI, CURSOR);
    assert!(items(b.server.response(first, WAIT)).is_empty());
    assert_eq!(items(b.server.response(second, WAIT)).len(), 1);
    assert_eq!(b.fake.requests().len(), 1, "the stale request was sent");
    let usage = complete_usage(&mut b.server);
    assert_eq!(
        (usage["asked"].as_u64(), usage["cancelled_stale"].as_u64()),
        (Some(2), Some(1)),
        "{usage}"
    );
}

#[test]
fn the_menu_and_inline_requests_do_not_cancel_each_other() {
    let mut b = start(hanging(), json!({ "menu": true, "budget_ms": 60000 }));
    b.server.open(URI, "rust", DOC);
    let inline = ask(&mut b.server, URI, CURSOR);
    arrived(&b, 1, "the inline completion was sent");
    let menu = b.server.send(
        "textDocument/completion",
        json!({ "textDocument": { "uri": URI }, "position": { "line": 1, "character": 12 } }),
    );
    arrived(&b, 2, "the menu completion was sent");
    assert!(
        b.server.poll_response(inline).is_none(),
        "the menu request cancelled the inline one"
    );
    b.server.edit(URI, CURSOR, CURSOR, "x");
    assert!(items(b.server.response(inline, WAIT)).is_empty());
    assert_eq!(b.server.response(menu, WAIT), Ok(Value::Null));
    assert!(closed(&b, 0) && closed(&b, 1));
}

#[test]
fn a_fim_stream_is_dropped_once_the_block_ends() {
    let script = Script::always(Behavior {
        answer: Answer::Text(
            "let x = 1;\n    x + 1\n}\nfn other() { and many more words nobody will read }".into(),
        ),
        tokens_per_second: Some(5.0),
        ..Behavior::default()
    });
    let mut b = start(script, json!({ "mode": "fim", "budget_ms": 60000 }));
    b.server.open(URI, "rust", "fn main() {\n    \n}\n");
    assert_eq!(
        suggestion(&mut b.server, URI, (1, 4)).as_deref(),
        Some("let x = 1;\n    x + 1")
    );
    assert!(b.fake.requests()[0].fim);
    assert!(closed(&b, 0), "the upstream request was not closed");
}

#[test]
fn a_failing_provider_is_told_once_per_kind_until_a_completion_succeeds() {
    use codetier_tests::fake::{Requests, Rule};
    let rule = |requests: Requests, behavior: Behavior| Rule {
        model: None,
        requests: Some(requests),
        behavior,
    };
    let script = Script {
        rules: vec![
            rule(Requests::First(2), Behavior::status(401, None)),
            rule(Requests::Index(vec![3]), Behavior::status(401, None)),
        ],
        ..answering("compute(1, 2);")
    };
    let mut b = start(script, json!({}));
    b.server.open(URI, "rust", DOC);
    // Waits for the warning to arrive (it may trail the reply), then takes every message.
    let warnings = |b: &Bench, wait: bool| -> Vec<String> {
        let mut told = Vec::new();
        b.server
            .wait_until(if wait { WAIT } else { Duration::ZERO }, |s| {
                told.extend(s.take_notifications("window/showMessage"));
                !told.is_empty()
            });
        for m in &told {
            assert_eq!(m["type"], 2, "a warning: {m}");
        }
        told.iter()
            .map(|m| m["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    // Two keystrokes' completions fail alike: one warning, before the second reply.
    assert_eq!(suggestion(&mut b.server, URI, CURSOR), None);
    assert_eq!(suggestion(&mut b.server, URI, CURSOR), None);
    assert_eq!(b.fake.requests().len(), 2);
    let told = warnings(&b, true);
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("inline completions fail"), "{told:?}");
    assert!(told[0].contains("rejected the API key"), "{told:?}");
    assert!(!told[0].contains(KEY), "{told:?}");
    // A completion succeeds (after an edit, so neither typeahead nor the cache answers); the
    // next failure is told again.
    b.server.edit(URI, (0, 3), (0, 7), "start");
    let cursor = (CURSOR.0, CURSOR.1);
    assert_eq!(
        suggestion(&mut b.server, URI, cursor).as_deref(),
        Some("compute(1, 2);")
    );
    assert!(warnings(&b, false).is_empty());
    b.server.edit(URI, (0, 3), (0, 8), "begin");
    assert_eq!(suggestion(&mut b.server, URI, cursor), None);
    assert_eq!(b.fake.requests().len(), 4);
    let told = warnings(&b, true);
    assert_eq!(told.len(), 1, "{told:?}");
}

#[test]
fn a_stale_or_late_completion_tells_nothing() {
    use codetier_tests::fake::{Latency, Requests, Rule};
    // The first two would be refused (401), but only after 5 s: an edit makes the first stale,
    // the 300 ms budget drops the second, and neither failure is ever read.
    let slow_401 = Behavior {
        ttft: Latency::Fixed { ms: 5000 },
        ..Behavior::status(401, None)
    };
    let script = Script {
        rules: vec![Rule {
            model: None,
            requests: Some(Requests::First(2)),
            behavior: slow_401,
        }],
        ..answering("compute(1, 2);")
    };
    let mut b = start(script, json!({ "budget_ms": 300 }));
    b.server.open(URI, "rust", DOC);
    let id = ask(&mut b.server, URI, CURSOR);
    arrived(&b, 1, "the completion was sent");
    b.server.edit(URI, CURSOR, CURSOR, "c");
    assert!(items(b.server.response(id, WAIT)).is_empty());
    assert!(closed(&b, 0));
    let after = (CURSOR.0, CURSOR.1 + 1);
    assert_eq!(suggestion(&mut b.server, URI, after), None);
    assert!(closed(&b, 1));
    // The server still answers (after an edit above, so nothing is reused), and said nothing.
    b.server.edit(URI, (0, 3), (0, 7), "start");
    assert_eq!(
        suggestion(&mut b.server, URI, after).as_deref(),
        Some("compute(1, 2);")
    );
    assert!(b.server.take_messages().is_empty());
}
