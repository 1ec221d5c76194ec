//! The OpenAI chat-completions wire format: request bodies out, stream chunks and JSON answers in.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::json_error_message;
use super::{ChatRequest, TokenUsage};

/// Fields a provider rejected earlier for a model, left out of later requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Quirks {
    pub no_stream_options: bool,
    pub no_thinking: bool,
}

/// The endpoint below `base_url` a request goes to.
pub(crate) fn path(req: &ChatRequest) -> &'static str {
    match req.fim {
        Some(_) => "completions",
        None => "chat/completions",
    }
}

/// Builds the JSON body. `extra_body` wins over our defaults except for `model`, `messages`
/// and `stream`, which decide what the request is.
pub(crate) fn request_body(req: &ChatRequest, quirks: Quirks) -> Value {
    let mut body = Map::new();
    body.insert("max_tokens".into(), Value::from(req.max_tokens));
    if req.stream {
        body.insert(
            "stream_options".into(),
            serde_json::json!({ "include_usage": true }),
        );
    }
    for (k, v) in &req.extra_body {
        if !matches!(
            k.as_str(),
            "model" | "messages" | "stream" | "prompt" | "suffix"
        ) {
            body.insert(k.clone(), v.clone());
        }
    }
    if !req.stream || quirks.no_stream_options {
        body.remove("stream_options");
    }
    if quirks.no_thinking {
        body.remove("thinking");
    }
    body.insert("model".into(), Value::from(req.model.as_str()));
    match &req.fim {
        Some(fim) => {
            body.insert("prompt".into(), Value::from(fim.prompt.as_str()));
            body.insert("suffix".into(), Value::from(fim.suffix.as_str()));
        }
        None => {
            body.insert(
                "messages".into(),
                serde_json::to_value(&req.messages).unwrap_or(Value::Array(Vec::new())),
            );
        }
    }
    body.insert("stream".into(), Value::Bool(req.stream));
    Value::Object(body)
}

/// What one stream chunk (or a whole non-streaming answer) contributed.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Delta {
    pub content: Option<String>,
    pub reasoning: Option<String>,
    pub usage: Option<TokenUsage>,
    pub finish_reason: Option<String>,
    pub model: Option<String>,
    /// An `{"error": ...}` object sent instead of a chunk.
    pub error: Option<String>,
    /// It had `choices` or `usage`: the shape of a chat completion (or one of its chunks), not
    /// just any JSON object.
    pub shaped: bool,
}

#[derive(Deserialize)]
struct WireChunk {
    choices: Option<Vec<WireChoice>>,
    usage: Option<WireUsage>,
    model: Option<String>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WireChoice {
    /// Streaming chunks carry `delta`, whole answers `message`.
    delta: Option<WireText>,
    message: Option<WireText>,
    /// `/completions` (fill in the middle) answers carry the text itself.
    text: Option<String>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireText {
    content: Option<String>,
    /// DeepSeek and most servers; vLLM and OpenRouter also use `reasoning`.
    reasoning_content: Option<String>,
    reasoning: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// Parses one `data:` payload or a whole JSON answer.
pub(crate) fn parse(json: &str) -> Result<Delta, String> {
    let chunk: WireChunk = serde_json::from_str(json).map_err(|e| {
        let shown: String = json.chars().take(80).collect();
        format!("invalid JSON chunk ({e}): {shown}")
    })?;
    if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
        let message = json_error_message(&serde_json::json!({ "error": error }))
            .unwrap_or_else(|| "no details given".to_owned());
        return Ok(Delta {
            error: Some(message),
            ..Delta::default()
        });
    }
    let mut delta = Delta {
        shaped: chunk.choices.is_some() || chunk.usage.is_some(),
        usage: chunk.usage.map(|u| TokenUsage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            estimated: false,
        }),
        model: chunk.model,
        ..Delta::default()
    };
    if let Some(choice) = chunk.choices.into_iter().flatten().next() {
        delta.finish_reason = choice.finish_reason;
        if let Some(text) = choice.delta.or(choice.message) {
            delta.content = text.content.filter(|s| !s.is_empty());
            delta.reasoning = text
                .reasoning_content
                .or(text.reasoning)
                .filter(|s| !s.is_empty());
        }
        if delta.content.is_none() {
            delta.content = choice.text.filter(|s| !s.is_empty());
        }
    }
    Ok(delta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{Message, Role};

    fn req(stream: bool, extra: Value) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages: vec![Message {
                role: Role::User,
                content: "hi".into(),
            }],
            max_tokens: 64,
            extra_body: extra.as_object().cloned().unwrap_or_default(),
            stream,
            fim: None,
        }
    }

    #[test]
    fn fim_body_and_chunks() {
        let mut fim = req(
            true,
            serde_json::json!({ "prompt": "evil", "temperature": 0 }),
        );
        fim.fim = Some(crate::provider::FimPrompt {
            prompt: "fn a() {".into(),
            suffix: "}\n".into(),
        });
        assert_eq!(path(&fim), "completions");
        assert_eq!(path(&req(true, Value::Null)), "chat/completions");
        let body = request_body(&fim, Quirks::default());
        assert_eq!(body["prompt"], "fn a() {");
        assert_eq!(body["suffix"], "}\n");
        assert_eq!(body["temperature"], 0);
        assert!(body.get("messages").is_none());
        assert_eq!(fim.input_chars(), 10);
        let delta = parse(
            r#"{"object":"text_completion","choices":[{"index":0,"text":" x","finish_reason":null}]}"#,
        );
        assert_eq!(delta.map(|d| d.content), Ok(Some(" x".to_owned())));
    }

    #[test]
    fn body_merges_extra() {
        let extra = serde_json::json!({
            "thinking": {"type": "disabled"}, "max_tokens": 9, "model": "evil", "stream": false,
            "temperature": 0.2
        });
        let body = request_body(&req(true, extra.clone()), Quirks::default());
        assert_eq!(body["model"], "m");
        assert_eq!(body["stream"], true);
        assert_eq!(body["max_tokens"], 9);
        assert_eq!(body["temperature"], 0.2);
        assert_eq!(body["thinking"]["type"], "disabled");
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["messages"][0]["role"], "user");

        let quirks = Quirks {
            no_stream_options: true,
            no_thinking: true,
        };
        let body = request_body(&req(true, extra.clone()), quirks);
        assert!(body.get("stream_options").is_none() && body.get("thinking").is_none());
        let body = request_body(&req(false, extra), Quirks::default());
        assert!(body.get("stream_options").is_none());
        assert_eq!(body["stream"], false);
    }

    #[test]
    fn parses_chunks() {
        let check = |json: &str, want: Delta| assert_eq!(parse(json).as_ref(), Ok(&want), "{json}");
        check(
            r#"{"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
            Delta {
                content: Some("Hi".into()),
                model: Some("m".into()),
                shaped: true,
                ..Delta::default()
            },
        );
        check(
            r#"{"choices":[{"delta":{"content":null,"reasoning_content":"think"}}],"usage":null}"#,
            Delta {
                reasoning: Some("think".into()),
                shaped: true,
                ..Delta::default()
            },
        );
        check(
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#,
            Delta {
                usage: Some(TokenUsage {
                    input_tokens: 3,
                    output_tokens: 5,
                    estimated: false,
                }),
                shaped: true,
                ..Delta::default()
            },
        );
        check(
            r#"{"choices":[{"delta":{},"finish_reason":"length"}]}"#,
            Delta {
                finish_reason: Some("length".into()),
                shaped: true,
                ..Delta::default()
            },
        );
        check(
            r#"{"choices":[{"message":{"role":"assistant","content":"whole"},"finish_reason":"stop"}]}"#,
            Delta {
                content: Some("whole".into()),
                finish_reason: Some("stop".into()),
                shaped: true,
                ..Delta::default()
            },
        );
        check(
            r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
            Delta {
                error: Some("overloaded".into()),
                ..Delta::default()
            },
        );
        check(r#"{"status":"ok"}"#, Delta::default());
        assert!(parse(r#"{"choices":[{"delta":"#).is_err_and(|e| e.contains("invalid JSON")));
        assert!(parse("[1]").is_err());
    }
}
