//! The provider client against the fake provider over real HTTP: answers, faults, fallbacks, cancellation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codetier::provider::{
    ChatRequest, Endpoint, Message, Provider, ProviderError, Role, StreamEvent, TokenUsage,
    Upstream,
};
use codetier_tests::fake::{
    Answer, Behavior, FakeProvider, Fault, Latency, LineEnding, Rule, Script, Trickle,
};

const KEY: &str = "sk-test-SECRET-7f3a9c41";
const ANSWER: &str = "Hello from the fake provider.";
const WAIT: Duration = Duration::from_secs(5);

/// A fresh environment variable per test, so parallel tests never race on the key.
fn key_env(value: Option<&str>) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "CODETIER_TEST_KEY_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    if let Some(v) = value {
        std::env::set_var(&name, v);
    }
    name
}

async fn setup(mut script: Script) -> (FakeProvider, Provider) {
    script.expected_key = Some(KEY.to_owned());
    let fake = FakeProvider::start(script)
        .await
        .expect("fake provider starts");
    let provider = Provider::new(Endpoint {
        base_url: fake.base_url(),
        api_key_env: key_env(Some(KEY)),
    })
    .expect("loopback http is allowed");
    (fake, provider)
}

fn request(stream: bool) -> ChatRequest {
    ChatRequest {
        model: "fake-model".into(),
        messages: vec![
            Message {
                role: Role::System,
                content: "You are terse.".into(),
            },
            Message {
                role: Role::User,
                content: "Say hello.".into(),
            },
        ],
        max_tokens: 128,
        extra_body: serde_json::Map::new(),
        stream,
        fim: None,
    }
}

fn thinking_disabled() -> serde_json::Map<String, serde_json::Value> {
    serde_json::json!({ "thinking": { "type": "disabled" } })
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// Runs one chat, collecting what was streamed.
async fn chat(
    provider: &Provider,
    req: &ChatRequest,
) -> (
    Result<codetier::provider::Completion, ProviderError>,
    Vec<StreamEvent>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let result = provider.chat(req, Some(&tx)).await;
    drop(tx);
    let mut events = Vec::new();
    while let Some(e) = rx.recv().await {
        events.push(e);
    }
    (result, events)
}

#[tokio::test]
async fn streams_an_answer_with_usage() {
    let (fake, provider) = setup(Script::default()).await;
    let (result, events) = chat(&provider, &request(true)).await;
    let done = result.expect("answer");
    assert_eq!(done.answer.text, ANSWER);
    assert_eq!(done.answer.reasoning, "");
    assert_eq!(done.answer.finish_reason.as_deref(), Some("stop"));
    assert_eq!(done.answer.model, "fake-model");
    assert_eq!(
        done.answer.usage,
        TokenUsage {
            input_tokens: 6,
            output_tokens: 5,
            estimated: false,
        }
    );
    assert!(done.ttft.is_some_and(|t| t <= done.elapsed));
    let streamed: String = events
        .iter()
        .map(|e| match e {
            StreamEvent::Content(c) => c.as_str(),
            StreamEvent::Reasoning(_) => panic!("no reasoning expected"),
        })
        .collect();
    assert_eq!(streamed, ANSWER);
    assert!(events.len() > 1, "streamed in pieces: {events:?}");

    let sent = fake.requests();
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert_eq!(r.model, "fake-model");
    assert_eq!(r.messages[1].content, "Say hello.");
    assert_eq!(r.body["stream"], true);
    assert_eq!(r.body["stream_options"]["include_usage"], true);
    assert_eq!(r.body["max_tokens"], 128);
    assert!(r.authorization && r.key_matched == Some(true));
    assert!(r.header("authorization").is_none());
    assert!(!r.closed_early());
}

#[tokio::test]
async fn reasoning_is_kept_apart_from_the_answer() {
    let behavior = Behavior {
        reasoning: Some("First, think it over.".into()),
        ..Behavior::default()
    };
    let (_fake, provider) = setup(Script::always(behavior)).await;
    let (result, events) = chat(&provider, &request(true)).await;
    let done = result.expect("answer");
    assert_eq!(done.answer.text, ANSWER);
    assert_eq!(done.answer.reasoning, "First, think it over.");
    assert!(matches!(events.first(), Some(StreamEvent::Reasoning(_))));
    assert!(matches!(events.last(), Some(StreamEvent::Content(_))));
}

#[tokio::test]
async fn keep_alive_comments_are_not_the_first_token() {
    let behavior = Behavior {
        ttft: Latency::Fixed { ms: 80 },
        keep_alive_ms: Some(10),
        ..Behavior::default()
    };
    let (_fake, provider) = setup(Script::always(behavior)).await;
    let done = chat(&provider, &request(true)).await.0.expect("answer");
    assert_eq!(done.answer.text, ANSWER);
    // The comments arrive from the start; the first token only after the scripted delay.
    assert!(
        done.ttft.is_some_and(|t| t >= Duration::from_millis(80)),
        "{:?}",
        done.ttft
    );
}

#[tokio::test]
async fn line_endings_and_trickled_bytes_decode_the_same() {
    for line_ending in [LineEnding::Crlf, LineEnding::Cr, LineEnding::Lf] {
        let behavior = Behavior {
            line_ending,
            trickle: Some(Trickle {
                bytes: 3,
                interval_ms: 0,
            }),
            reasoning: Some("hm ".into()),
            ..Behavior::default()
        };
        let (_fake, provider) = setup(Script::always(behavior)).await;
        let done = chat(&provider, &request(true)).await.0.expect("answer");
        assert_eq!(
            (done.answer.text.as_str(), done.answer.reasoning.as_str()),
            (ANSWER, "hm "),
            "{line_ending:?}"
        );
        assert!(!done.answer.usage.estimated);
    }
}

#[tokio::test]
async fn non_streaming_answer() {
    let (fake, provider) = setup(Script::always(Behavior {
        answer: Answer::Echo,
        ..Behavior::default()
    }))
    .await;
    let (result, events) = chat(&provider, &request(false)).await;
    let done = result.expect("answer");
    assert_eq!(done.answer.text, "Say hello.");
    assert_eq!(
        done.answer.usage,
        TokenUsage {
            input_tokens: 6,
            output_tokens: 2,
            estimated: false,
        }
    );
    assert_eq!(events, vec![StreamEvent::Content("Say hello.".into())]);
    let body = &fake.requests()[0].body;
    assert_eq!(body["stream"], false);
    assert!(body.get("stream_options").is_none());
}

#[tokio::test]
async fn extra_body_is_merged_but_cannot_change_the_model() {
    let (fake, provider) = setup(Script::default()).await;
    let mut req = request(true);
    req.extra_body = thinking_disabled();
    req.extra_body.insert("model".into(), "other".into());
    req.extra_body
        .insert("temperature".into(), serde_json::json!(0.1));
    chat(&provider, &req).await.0.expect("answer");
    let body = &fake.requests()[0].body;
    assert_eq!(body["thinking"]["type"], "disabled");
    assert_eq!(body["model"], "fake-model");
    assert_eq!(body["temperature"], 0.1);
}

#[tokio::test]
async fn each_fault_is_a_typed_error_with_a_clear_message() {
    type Check = fn(&ProviderError) -> bool;
    let cases: Vec<(&str, Behavior, bool, Check, &str)> = vec![
        (
            "401",
            Behavior::status(401, None),
            true,
            |e| matches!(e, ProviderError::KeyRejected { status: 401, .. }),
            "rejected the API key",
        ),
        (
            "403",
            Behavior::status(403, None),
            true,
            |e| matches!(e, ProviderError::KeyRejected { status: 403, .. }),
            "api_key_env",
        ),
        (
            "402",
            Behavior::status(402, None),
            true,
            |e| *e == ProviderError::PaymentRequired,
            "balance is exhausted",
        ),
        (
            "404",
            Behavior::status(404, None),
            true,
            |e| {
                *e == ProviderError::UnknownModel {
                    model: "fake-model".into(),
                }
            },
            "`fake-model`",
        ),
        (
            "400",
            Behavior::status(400, None),
            true,
            |e| matches!(e, ProviderError::BadRequest { status: 400, .. }),
            "maximum context length",
        ),
        (
            "429 seconds",
            Behavior::status(429, Some("3")),
            true,
            |e| e.retry_after() == Some(Duration::from_secs(3)),
            "retry after 3 s",
        ),
        (
            "429 date",
            Behavior::status(429, Some("Thu, 01 Jan 1970 00:00:00 GMT")),
            true,
            |e| e.retry_after() == Some(Duration::ZERO),
            "rate limited",
        ),
        (
            "429 bare",
            Behavior::status(429, None),
            true,
            |e| *e == ProviderError::RateLimited { retry_after: None },
            "rate limited",
        ),
        (
            "500",
            Behavior::status(500, None),
            true,
            |e| matches!(e, ProviderError::Server { status: 500, .. }),
            "Internal server error",
        ),
        (
            "503",
            Behavior::status(503, None),
            false,
            |e| matches!(e, ProviderError::Server { status: 503, .. }),
            "overloaded",
        ),
        (
            "error after content",
            Behavior::failing(Fault::ErrorAfterOk {
                after_tokens: 2,
                message: "upstream overloaded".into(),
            }),
            true,
            |e| {
                matches!(
                    e,
                    ProviderError::StreamError {
                        after_content: true,
                        ..
                    }
                )
            },
            "upstream overloaded",
        ),
        (
            "error before content",
            Behavior::failing(Fault::ErrorAfterOk {
                after_tokens: 0,
                message: "busy".into(),
            }),
            true,
            |e| {
                matches!(
                    e,
                    ProviderError::StreamError {
                        after_content: false,
                        ..
                    }
                )
            },
            "busy",
        ),
        (
            "malformed sse",
            Behavior::failing(Fault::MalformedSse { after_tokens: 1 }),
            true,
            |e| matches!(e, ProviderError::MalformedStream { .. }),
            "UTF-8",
        ),
        (
            "oversized line",
            Behavior::failing(Fault::OversizedLine {
                after_tokens: 1,
                bytes: 2 << 20,
            }),
            true,
            |e| matches!(e, ProviderError::MalformedStream { .. }),
            "longer than",
        ),
        (
            "malformed json",
            Behavior::failing(Fault::MalformedJson { after_tokens: 1 }),
            true,
            |e| matches!(e, ProviderError::MalformedStream { .. }),
            "invalid JSON",
        ),
        (
            "malformed whole json",
            Behavior::failing(Fault::MalformedJson { after_tokens: 0 }),
            false,
            |e| matches!(e, ProviderError::MalformedStream { .. }),
            "invalid JSON",
        ),
        (
            "reset mid-stream",
            Behavior::failing(Fault::Reset { after_tokens: 2 }),
            true,
            |e| *e == ProviderError::EndedEarly { received_chars: 11 },
            "broke off after 11 characters",
        ),
        (
            "reset before content",
            Behavior::failing(Fault::Reset { after_tokens: 0 }),
            true,
            |e| *e == ProviderError::StreamReset,
            "reset",
        ),
        (
            "no [DONE] mid-answer",
            Behavior::failing(Fault::NoDone {
                after_tokens: Some(1),
            }),
            true,
            |e| *e == ProviderError::EndedEarly { received_chars: 6 },
            "incomplete",
        ),
        (
            "empty answer",
            Behavior {
                answer: Answer::Text(String::new()),
                ..Behavior::default()
            },
            true,
            |e| *e == ProviderError::EmptyAnswer,
            "empty answer",
        ),
        (
            "HTML page with 200",
            Behavior::failing(Fault::page(
                200,
                "text/html; charset=utf-8",
                "<!doctype html><html><head><title>Sign in - Proxy</title></head><body></body></html>",
            )),
            true,
            |e| matches!(e, ProviderError::NotChatCompletion { status: 200, what, .. } if what == "an HTML page"),
            "HTTP 200 with an HTML page (`text/html; charset=utf-8`) instead of a chat completion (titled “Sign in - Proxy”)",
        ),
        (
            "HTML page with 200, not streaming",
            Behavior::failing(Fault::page(200, "text/html", "<html><body>Welcome</body></html>")),
            false,
            |e| matches!(e, ProviderError::NotChatCompletion { .. }),
            "`base_url`",
        ),
        (
            "plain text with 200",
            Behavior::failing(Fault::page(200, "text/plain", "Ollama is running")),
            true,
            |e| matches!(e, ProviderError::NotChatCompletion { what, .. } if what == "plain text"),
            "plain text (`text/plain`) instead of a chat completion (Ollama is running)",
        ),
        (
            "JSON that is no completion",
            Behavior::failing(Fault::page(200, "application/json", r#"{"status":"ok"}"#)),
            false,
            |e| matches!(e, ProviderError::NotChatCompletion { .. }),
            "JSON that is not a chat completion",
        ),
        (
            "empty 200 stream",
            Behavior::failing(Fault::page(200, "text/event-stream", "")),
            true,
            |e| *e == ProviderError::EmptyStream,
            "context size",
        ),
        (
            "a stream of keep-alives only",
            Behavior::failing(Fault::page(200, "text/event-stream", ": ping\n\n: ping\n\n")),
            true,
            |e| *e == ProviderError::EmptyStream,
            "without a single token",
        ),
        (
            "empty 200 body",
            Behavior::failing(Fault::page(200, "text/plain", "")),
            false,
            |e| *e == ProviderError::EmptyStream,
            "llama.cpp",
        ),
        (
            "404 for the path",
            Behavior::failing(Fault::page(404, "text/plain", "404 page not found")),
            true,
            |e| {
                matches!(e, ProviderError::UnknownPath { path, missing_v1: false } if path == "/v1/chat/completions")
            },
            "no `/v1/chat/completions` (HTTP 404)",
        ),
        (
            "empty non-streaming answer",
            Behavior {
                answer: Answer::Text(" ".into()),
                ..Behavior::default()
            },
            false,
            |e| *e == ProviderError::EmptyAnswer,
            "empty answer",
        ),
    ];
    let (fake, provider) = setup(Script::default()).await;
    for (name, behavior, stream, check, says) in cases {
        fake.set_script(Script {
            expected_key: Some(KEY.into()),
            ..Script::always(behavior)
        });
        let (result, _) = chat(&provider, &request(stream)).await;
        let err = result.expect_err(name);
        assert!(check(&err), "{name}: got {err:?}");
        let text = err.to_string();
        assert!(
            text.contains(says),
            "{name}: message {text:?} should say {says:?}"
        );
        assert!(
            !text.contains(KEY) && !format!("{err:?}").contains(KEY),
            "{name} leaks the key"
        );
        let retryable = matches!(
            err,
            ProviderError::RateLimited { .. }
                | ProviderError::Server { .. }
                | ProviderError::StreamReset
                | ProviderError::NotChatCompletion { .. }
                | ProviderError::EmptyStream
                | ProviderError::StreamError {
                    after_content: false,
                    ..
                }
        );
        assert_eq!(err.is_retryable(), retryable, "{name}");
        let once = matches!(
            err,
            ProviderError::NotChatCompletion { .. } | ProviderError::EmptyStream
        );
        assert_eq!(err.retry_once(), once, "{name}");
    }
}

#[tokio::test]
async fn a_finished_answer_without_done_is_accepted() {
    let (_fake, provider) = setup(Script::always(Behavior::failing(Fault::NoDone {
        after_tokens: None,
    })))
    .await;
    let done = chat(&provider, &request(true))
        .await
        .0
        .expect("finish_reason makes it whole");
    assert_eq!(done.answer.text, ANSWER);
}

#[tokio::test]
async fn wrong_key_is_rejected_and_never_shown() {
    let fake = FakeProvider::start(Script {
        expected_key: Some("sk-other".into()),
        ..Script::default()
    })
    .await
    .expect("fake starts");
    let provider = Provider::new(Endpoint {
        base_url: fake.base_url(),
        api_key_env: key_env(Some(KEY)),
    })
    .expect("provider");
    let err = chat(&provider, &request(true)).await.0.expect_err("401");
    assert!(
        matches!(err, ProviderError::KeyRejected { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(fake.requests()[0].key_matched, Some(false));
    assert!(!format!("{provider:?}{err:?}{err}").contains(KEY));
}

#[tokio::test]
async fn a_key_echoed_by_the_provider_is_redacted() {
    let body = format!(r#"{{"error":{{"message":"key {KEY} has no access to this model"}}}}"#);
    let behavior = Behavior::failing(Fault::Status {
        status: 400,
        body: Some(body),
        retry_after: None,
    });
    let (_fake, provider) = setup(Script::always(behavior)).await;
    let err = chat(&provider, &request(true)).await.0.expect_err("400");
    let text = err.to_string();
    assert!(text.contains("key *** has no access"), "{text}");
    assert!(!text.contains(KEY) && !format!("{err:?}").contains(KEY));
}

#[tokio::test]
async fn a_key_echoed_in_the_answer_is_scrubbed_even_split_across_deltas() {
    // The fake puts the request's key in the answer and the reasoning, streamed three
    // characters a delta, so the key arrives in pieces; then as one JSON answer.
    let behavior = Behavior {
        answer: Answer::Text("Your key is {key}; keep it safe.".into()),
        reasoning: Some("The header said {key}.".into()),
        echo_key: true,
        token_chars: Some(3),
        ..Behavior::default()
    };
    let (fake, provider) = setup(Script::always(behavior)).await;
    for stream in [true, false] {
        let (result, events) = chat(&provider, &request(stream)).await;
        let done = result.expect("answer");
        assert_eq!(
            done.answer.text, "Your key is ***; keep it safe.",
            "stream {stream}"
        );
        assert_eq!(
            done.answer.reasoning, "The header said ***.",
            "stream {stream}"
        );
        let (mut text, mut reasoning) = (String::new(), String::new());
        for e in &events {
            let (StreamEvent::Content(piece) | StreamEvent::Reasoning(piece)) = e;
            assert!(!piece.contains(KEY), "an event held the key: {events:?}");
            match e {
                StreamEvent::Content(c) => text.push_str(c),
                StreamEvent::Reasoning(r) => reasoning.push_str(r),
            }
        }
        // What was forwarded is what was kept, piece for piece.
        assert_eq!(
            (text, reasoning),
            (done.answer.text.clone(), done.answer.reasoning.clone())
        );
        assert!(!format!("{done:?}").contains(KEY));
        if stream {
            assert!(events.len() > 4, "streamed in pieces: {events:?}");
        }
    }
    assert_eq!(fake.requests().len(), 2);
    assert!(fake.requests().iter().all(|r| r.key_matched == Some(true)));
}

#[tokio::test]
async fn a_base_url_without_v1_is_named_as_the_cause_of_a_404_or_a_web_page() {
    let (fake, _) = setup(Script::default()).await;
    // The fake serves the API under `/v1`: without it, its web server answers 404 itself.
    let provider = Provider::new(Endpoint {
        base_url: format!("http://{}", fake.addr()),
        api_key_env: key_env(Some(KEY)),
    })
    .expect("loopback http is allowed");
    let err = chat(&provider, &request(true)).await.0.expect_err("404");
    assert_eq!(
        err,
        ProviderError::UnknownPath {
            path: "/chat/completions".into(),
            missing_v1: true
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("no `/chat/completions` (HTTP 404)") && text.contains("ends in `/v1`"),
        "{text}"
    );
    assert!(!text.contains("model"), "not the model's fault: {text}");
    assert!(!err.is_retryable());
    assert!(fake.requests().is_empty(), "the fake's API never saw it");

    // A 404 naming the model stays an unknown model, with `/v1` or without.
    fake.set_script(Script {
        expected_key: Some(KEY.into()),
        ..Script::always(Behavior::status(404, None))
    });
    let (result, _) = chat(&provider_for(&fake), &request(true)).await;
    assert!(
        matches!(result, Err(ProviderError::UnknownModel { ref model }) if model == "fake-model"),
        "{result:?}"
    );

    // An HTML page on a base URL without `/v1` says so too.
    fake.set_script(Script {
        expected_key: Some(KEY.into()),
        ..Script::always(Behavior::failing(Fault::page(
            200,
            "text/html",
            "<html><title>Open WebUI</title></html>",
        )))
    });
    let bare = Provider::new(Endpoint {
        base_url: format!("http://{}/v1/", fake.addr()),
        api_key_env: key_env(Some(KEY)),
    })
    .expect("provider");
    let err = chat(&bare, &request(true)).await.0.expect_err("html");
    assert!(!err.to_string().contains("ends in `/v1`"), "{err}");
}

fn provider_for(fake: &FakeProvider) -> Provider {
    Provider::new(Endpoint {
        base_url: fake.base_url(),
        api_key_env: key_env(Some(KEY)),
    })
    .expect("loopback http is allowed")
}

#[tokio::test]
async fn missing_key_names_the_variable_and_sends_nothing() {
    let fake = FakeProvider::start(Script::default())
        .await
        .expect("fake starts");
    let env = key_env(None);
    let provider = Provider::new(Endpoint {
        base_url: fake.base_url(),
        api_key_env: env.clone(),
    })
    .expect("provider");
    let err = chat(&provider, &request(true)).await.0.expect_err("no key");
    assert_eq!(err, ProviderError::MissingKey { env: env.clone() });
    assert!(err.to_string().contains(&format!("export {env}=")), "{err}");
    assert!(!err.is_retryable());
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn plain_http_is_refused_unless_loopback() {
    let endpoint = |url: &str| Endpoint {
        base_url: url.into(),
        api_key_env: "UNUSED".into(),
    };
    let err = Provider::new(endpoint("http://example.com/v1")).expect_err("refused");
    assert!(matches!(err, ProviderError::InsecureUrl { .. }));
    assert!(err.to_string().contains("https"), "{err}");
    assert!(Provider::new(endpoint("https://example.com/v1")).is_ok());
    assert!(Provider::new(endpoint("http://localhost:11434/v1")).is_ok());
}

#[tokio::test]
async fn unreachable_provider_is_a_retryable_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let provider = Provider::new(Endpoint {
        base_url: format!("http://127.0.0.1:{port}/v1"),
        api_key_env: key_env(Some(KEY)),
    })
    .expect("provider");
    let err = chat(&provider, &request(true))
        .await
        .0
        .expect_err("refused");
    assert!(matches!(err, ProviderError::Connect { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(!err.to_string().contains(KEY));
}

#[tokio::test]
async fn stream_options_rejection_falls_back_and_is_remembered() {
    let behavior = Behavior {
        reject_stream_options: true,
        ..Behavior::default()
    };
    let (fake, provider) = setup(Script::always(behavior)).await;
    let done = chat(&provider, &request(true))
        .await
        .0
        .expect("answer after fallback");
    assert_eq!(done.answer.text, ANSWER);
    assert_eq!(
        done.answer.usage,
        TokenUsage::estimated(request(true).input_chars(), ANSWER.chars().count()),
        "without stream_options the server sends no usage: it is counted, and marked so"
    );
    let sent = fake.requests();
    assert_eq!(sent.len(), 2);
    assert!(sent[0].body.get("stream_options").is_some());
    assert!(sent[1].body.get("stream_options").is_none());
    assert_eq!(sent[1].body["stream"], true);

    chat(&provider, &request(true))
        .await
        .0
        .expect("second answer");
    let sent = fake.requests();
    assert_eq!(sent.len(), 3, "remembered: no second rejection");
    assert!(sent[2].body.get("stream_options").is_none());
}

#[tokio::test]
async fn thinking_rejection_falls_back_per_model() {
    let behavior = Behavior {
        reject_thinking: true,
        ..Behavior::default()
    };
    let (fake, provider) = setup(Script::always(behavior)).await;
    let mut req = request(true);
    req.extra_body = thinking_disabled();
    chat(&provider, &req)
        .await
        .0
        .expect("answer after fallback");
    chat(&provider, &req).await.0.expect("answer");
    let sent = fake.requests();
    let had_thinking: Vec<bool> = sent
        .iter()
        .map(|r| r.body.get("thinking").is_some())
        .collect();
    assert_eq!(had_thinking, [true, false, false]);
    assert!(sent.iter().all(|r| r.body.get("stream_options").is_some()));

    // Another model learns for itself.
    fake.clear();
    req.model = "other-model".into();
    chat(&provider, &req)
        .await
        .0
        .expect("answer after fallback");
    let had_thinking: Vec<bool> = fake
        .requests()
        .iter()
        .map(|r| r.body.get("thinking").is_some())
        .collect();
    assert_eq!(had_thinking, [true, false]);
}

#[tokio::test]
async fn a_400_that_names_no_field_is_not_retried() {
    let (fake, provider) = setup(Script::always(Behavior::status(400, None))).await;
    let mut req = request(true);
    req.extra_body = thinking_disabled();
    chat(&provider, &req).await.0.expect_err("400");
    assert_eq!(fake.requests().len(), 1);
}

/// Drops a chat future once the fake has the request (and, optionally, some tokens were
/// streamed), and returns how long after the drop the fake saw the connection close.
async fn disconnect_delay(behavior: Behavior, after_events: usize) -> Duration {
    let (fake, provider) = setup(Script::always(behavior)).await;
    let req = request(true);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut call = Box::pin(provider.chat(&req, Some(&tx)));
    let started = async {
        fake.wait_for_requests(1, WAIT)
            .await
            .expect("request arrives");
        for _ in 0..after_events {
            rx.recv().await;
        }
    };
    tokio::select! {
        result = &mut call => panic!("the answer should still be pending: {result:?}"),
        () = started => {}
    }
    drop(call);
    let dropped = Instant::now();
    let seen = fake
        .wait_for_disconnect(0, WAIT)
        .await
        .expect("the fake sees the client go away");
    assert!(fake.requests()[0].completed_at.is_none());
    let delay = seen.saturating_duration_since(dropped);
    eprintln!("disconnect seen {delay:?} after the drop");
    delay
}

#[tokio::test]
async fn dropping_the_call_while_waiting_for_the_first_token_closes_the_connection() {
    let delay = disconnect_delay(
        Behavior {
            ttft: Latency::Fixed { ms: 30_000 },
            ..Behavior::default()
        },
        0,
    )
    .await;
    // Behaviour, not a benchmark: the close must be prompt, far below the scripted wait.
    assert!(
        delay < Duration::from_secs(1),
        "disconnect seen after {delay:?}"
    );
}

#[tokio::test]
async fn dropping_the_call_mid_stream_closes_the_connection() {
    let behavior = Behavior {
        tokens_per_second: Some(2.0),
        answer: Answer::Text("one two three four five six seven eight nine ten".into()),
        ..Behavior::default()
    };
    let delay = disconnect_delay(behavior, 1).await;
    assert!(
        delay < Duration::from_secs(1),
        "disconnect seen after {delay:?}"
    );
}

#[tokio::test]
async fn models_are_listed_and_warm_up_never_fails() {
    let script = Script {
        models: vec!["deepseek-v4-flash".into(), "deepseek-r1".into()],
        ..Script::default()
    };
    let (_fake, provider) = setup(script).await;
    provider.warm_up().await;
    assert_eq!(
        provider.list_models().await.expect("models"),
        ["deepseek-v4-flash", "deepseek-r1"]
    );

    let broken = Provider::new(Endpoint {
        base_url: "http://127.0.0.1:9/v1".into(),
        api_key_env: key_env(None),
    })
    .expect("provider");
    broken.warm_up().await;
}

#[tokio::test]
async fn rules_script_first_requests_and_the_upstream_trait_works() {
    let script = Script {
        rules: vec![Rule {
            model: Some("fake-model".into()),
            requests: Some(codetier_tests::fake::Requests::First(2)),
            behavior: Behavior::status(503, None),
        }],
        ..Script::default()
    };
    let (fake, provider) = setup(script).await;
    let upstream: Arc<dyn Upstream> = Arc::new(provider);
    let req = request(true);
    for _ in 0..2 {
        let err = upstream.chat(&req, None).await.expect_err("503");
        assert!(matches!(err, ProviderError::Server { status: 503, .. }));
    }
    assert_eq!(
        upstream
            .chat(&req, None)
            .await
            .expect("third succeeds")
            .answer
            .text,
        ANSWER
    );
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn warm_up_opens_the_connection_the_first_request_reuses() {
    let (fake, provider) = setup(Script::default()).await;
    provider.warm_up().await;
    chat(&provider, &request(true)).await.0.expect("answer");
    chat(&provider, &request(false)).await.0.expect("answer");
    let warm = fake.model_list_peers();
    let sent = fake.requests();
    assert_eq!(warm.len(), 1);
    assert_eq!(
        sent[0].peer, warm[0],
        "the first request rides the warmed-up connection"
    );
    assert_eq!(sent[1].peer, warm[0], "and the pool keeps it alive");
}
