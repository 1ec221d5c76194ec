//! Progress beside the work, over stdio: a command without a `workDoneToken` is answered while
//! the editor has not yet answered `window/workDoneProgress/create`, and no `$/progress` goes
//! out for a token before its creation was answered, or ever for a token the editor refused.

use std::time::Duration;

use codetier_tests::bench::Bench;
use codetier_tests::client::{CreatePolicy, TestServer};
use codetier_tests::fake::{Answer, Behavior, Script};
use serde_json::{json, Value};

const KEY: &str = "sk-progress-beside-test-77c1-SECRET";
const URI: &str = "file:///tmp/codetier-progress/src/lib.rs";
const WAIT: Duration = Duration::from_secs(20);
const CREATE: &str = "window/workDoneProgress/create";

const LIB: &str = "fn average(values: &[i32]) -> i32 {\n    let mut sum = 0;\n    for i in 0..=values.len() {\n        sum += values[i];\n    }\n    sum / values.len() as i32\n}\n";

const EXPLANATION: &str = "The loop reads one element past the end of the slice.\n\n\
`0..=values.len()` includes `values.len()`, so the last iteration indexes out of bounds.\n";

fn start() -> Bench {
    let script = Script {
        default: Behavior {
            answer: Answer::Text(EXPLANATION.to_owned()),
            ..Behavior::default()
        },
        ..Script::default()
    };
    Bench::start(script, KEY, |b| b.progress(true))
}

/// Runs explain on lines 2..=3 as our editors do: no `workDoneToken`, and reads the message
/// that shows its answer.
fn explain_without_token(server: &mut TestServer) -> Value {
    let id = server.send(
        "workspace/executeCommand",
        json!({
            "command": "codetier.explain",
            "arguments": [{ "uri": URI, "range": {
                "start": { "line": 2, "character": 0 }, "end": { "line": 3, "character": 25 } } }],
        }),
    );
    let answer = server
        .response(id, WAIT)
        .unwrap_or_else(|e| panic!("explain failed: {e}"));
    // Explain also shows its answer.
    server.told("codetier: The loop reads one element past the end", &[]);
    answer
}

/// The token of the one `create` request sent since the last call. It goes out beside the
/// work, so it may be read after the command's reply: waited for.
fn created_token(server: &TestServer) -> Value {
    assert!(
        server.wait_until(WAIT, |s| !s.server_requests(CREATE).is_empty()),
        "no {CREATE} was sent"
    );
    let creates = server.take_server_requests(CREATE);
    assert_eq!(creates.len(), 1, "one create per command: {creates:?}");
    creates[0]["params"]["token"].clone()
}

fn progress_for(server: &TestServer, token: &Value) -> Vec<Value> {
    server
        .take_notifications("$/progress")
        .into_iter()
        .filter(|p| &p["token"] == token)
        .collect()
}

/// Waits for the `end` of `token`, returning every kind seen for it in order.
fn kinds_until_end(server: &TestServer, token: &Value) -> Vec<String> {
    let mut kinds = Vec::new();
    loop {
        let p = server.wait_notification("$/progress", WAIT, |p| &p["token"] == token);
        let kind = p["value"]["kind"].as_str().unwrap_or_default().to_owned();
        kinds.push(kind.clone());
        if kind == "end" {
            return kinds;
        }
    }
}

#[test]
fn a_cached_action_is_answered_while_create_is_unanswered() {
    let mut b = start();
    b.server.open(URI, "rust", LIB);
    let first = explain_without_token(&mut b.server);
    assert_eq!(first["cached"], false, "{first}");
    let token = created_token(&b.server);
    let kinds = kinds_until_end(&b.server, &token);
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("begin"),
        "{kinds:?}"
    );

    // The editor is slow to answer `create`: the cached answer must not wait for it.
    b.server.set_create_policy(CreatePolicy::Hold);
    let second = explain_without_token(&mut b.server);
    assert_eq!(second["cached"], true, "{second}");
    assert_eq!(second["text"], first["text"]);
    // The editor holds every create until told: whenever it was sent, it is unanswered.
    let token = created_token(&b.server);
    assert!(
        progress_for(&b.server, &token).is_empty(),
        "no progress before the editor answered create"
    );
    // Once the editor answers, the progress it was promised follows, begin first.
    assert_eq!(b.server.answer_held_creates(), 1);
    let kinds = kinds_until_end(&b.server, &token);
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("begin"),
        "{kinds:?}"
    );
    assert_eq!(kinds.last().map(String::as_str), Some("end"), "{kinds:?}");
    assert_eq!(b.fake.requests().len(), 1, "the second ask was a cache hit");
}

#[test]
fn a_refused_token_gets_no_progress_and_the_answer_still_comes() {
    let mut b = start();
    b.server.open(URI, "rust", LIB);
    b.server.set_create_policy(CreatePolicy::Refuse);
    let refused = explain_without_token(&mut b.server);
    assert!(refused["text"].as_str().is_some(), "{refused}");
    let refused_token = created_token(&b.server);

    // A later command with progress: once its end arrived, the refused token's task (which
    // stopped at the refusal) has had every chance to send something.
    b.server.set_create_policy(CreatePolicy::Answer);
    let later = explain_without_token(&mut b.server);
    assert_eq!(later["cached"], true, "{later}");
    let token = created_token(&b.server);
    assert_ne!(token, refused_token, "a new token per command");
    let kinds = kinds_until_end(&b.server, &token);
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("begin"),
        "{kinds:?}"
    );
    assert!(
        progress_for(&b.server, &refused_token).is_empty(),
        "nothing was sent for the refused token"
    );
}
