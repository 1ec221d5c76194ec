//! How the fake answers one chat request: JSON or an SSE stream, paced, with the scripted fault.

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::script::{Answer, Behavior, Fault, Trickle};
use super::DisconnectGuard;

pub(crate) struct Request {
    pub json: Value,
    pub model: String,
    pub index: usize,
    pub behavior: Behavior,
    /// The bearer token the request carried, for `Behavior::echo_key` only.
    pub key: Option<String>,
    /// A `/v1/completions` request: chunks carry `text`, and `Answer::Echo` repeats `prompt`.
    pub fim: bool,
}

type Item = Result<Bytes, std::io::Error>;

pub(crate) async fn answer(req: Request, mut guard: DisconnectGuard) -> Response {
    let b = &req.behavior;
    if b.reject_thinking && req.json.get("thinking").is_some() {
        guard.complete();
        return error_response(
            StatusCode::BAD_REQUEST,
            "Unknown field `thinking`: this model does not support the thinking parameter",
        );
    }
    if b.reject_stream_options && req.json.get("stream_options").is_some() {
        guard.complete();
        let detail = json!({ "detail": [{ "loc": ["body", "stream_options"],
            "msg": "Extra inputs are not permitted", "type": "extra_forbidden" }] });
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(detail)).into_response();
    }
    let ttft = b.ttft.sample(req.index as u64);
    match &b.fault {
        Some(Fault::Hang) => return std::future::pending().await,
        Some(Fault::Status {
            status,
            body,
            retry_after,
        }) => {
            tokio::time::sleep(ttft).await;
            guard.complete();
            return status_response(*status, body.as_deref(), retry_after.as_deref(), &req.model);
        }
        Some(Fault::Page {
            status,
            content_type,
            body,
        }) => {
            tokio::time::sleep(ttft).await;
            guard.complete();
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
            return Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, content_type.as_str())
                .body(Body::from(body.clone()))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        _ => {}
    }
    if req.json.get("stream").and_then(Value::as_bool) != Some(true) {
        tokio::time::sleep(ttft).await;
        return whole_answer(&req, guard);
    }
    let (tx, rx) = mpsc::channel::<Item>(16);
    tokio::spawn(produce(req, ttft, Out { tx, trickle: None }));
    let body = futures::stream::unfold((rx, guard), |(mut rx, mut guard)| async move {
        match rx.recv().await {
            Some(item) => {
                if item.is_err() {
                    guard.complete();
                }
                Some((item, (rx, guard)))
            }
            None => {
                guard.complete();
                None
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn error_response(status: StatusCode, message: &str) -> Response {
    let kind = if status == StatusCode::TOO_MANY_REQUESTS {
        "rate_limit_error"
    } else if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    let body = json!({ "error": { "message": message, "type": kind, "code": status.as_u16() } });
    (status, axum::Json(body)).into_response()
}

fn status_response(
    status: u16,
    body: Option<&str>,
    retry_after: Option<&str>,
    model: &str,
) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match body {
        Some(text) => (status, text.to_owned()).into_response(),
        None => {
            let message = match status.as_u16() {
                400 => "This model's maximum context length is 65536 tokens. However, you \
                        requested 70000 tokens. Please reduce the length of the messages."
                    .to_owned(),
                401 => "Authentication Fails, Your api key is invalid".to_owned(),
                402 => "Insufficient Balance".to_owned(),
                403 => "Forbidden".to_owned(),
                404 => format!("The model `{model}` does not exist"),
                429 => "Rate limit reached for requests".to_owned(),
                503 => "Server overloaded, please retry shortly".to_owned(),
                500..=599 => "Internal server error".to_owned(),
                _ => "fake error".to_owned(),
            };
            error_response(status, &message)
        }
    };
    if let Some(value) = retry_after.and_then(|v| header::HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn answer_text(req: &Request) -> String {
    echo_key(req, raw_answer_text(req))
}

fn reasoning_text(req: &Request) -> Option<String> {
    req.behavior.reasoning.clone().map(|r| echo_key(req, r))
}

/// With `echo_key`, puts the request's key where the text says `{key}`.
fn echo_key(req: &Request, text: String) -> String {
    match (&req.key, req.behavior.echo_key) {
        (Some(key), true) => text.replace("{key}", key),
        _ => text,
    }
}

fn raw_answer_text(req: &Request) -> String {
    match &req.behavior.answer {
        Answer::Continue { text, lines } => continuation(text, &before_cursor(req), *lines),
        Answer::Text(t) => t.clone(),
        Answer::Echo if req.fim => req
            .json
            .get("prompt")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        Answer::Echo => req
            .json
            .get("messages")
            .and_then(Value::as_array)
            .and_then(|list| {
                list.iter()
                    .rev()
                    .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            })
            .and_then(|m| m.get("content").and_then(Value::as_str))
            .unwrap_or("")
            .to_owned(),
    }
}

/// The request's text before the cursor: the `prompt` of a fill-in-the-middle request, or the
/// last user message up to `<CURSOR>` without its `File: … (…)` header line.
fn before_cursor(req: &Request) -> String {
    if req.fim {
        return req
            .json
            .get("prompt")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
    }
    let user = req
        .json
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|list| {
            list.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|m| m.get("content").and_then(Value::as_str))
        .unwrap_or("");
    let before = user.split("<CURSOR>").next().unwrap_or("");
    match before.split_once("\n\n") {
        Some((header, rest)) if header.starts_with("File: ") => rest.to_owned(),
        _ => before.to_owned(),
    }
}

/// What follows the first occurrence of `before` in `doc`, up to `lines` line breaks.
fn continuation(doc: &str, before: &str, lines: usize) -> String {
    let Some(at) = doc.find(before) else {
        return String::new();
    };
    let rest = &doc[at + before.len()..];
    let end = rest
        .match_indices('\n')
        .nth(lines)
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].to_owned()
}

/// Words with their trailing space (or pieces of `token_chars` characters): joined, they give
/// the text back.
fn tokenize(text: &str, b: &Behavior) -> Vec<String> {
    match b.token_chars {
        Some(n) => {
            let chars: Vec<char> = text.chars().collect();
            chars.chunks(n.max(1)).map(|c| c.iter().collect()).collect()
        }
        None => text.split_inclusive(' ').map(str::to_owned).collect(),
    }
}

fn usage(req: &Request, completion_tokens: usize) -> Value {
    let fim_chars: usize = ["prompt", "suffix"]
        .iter()
        .filter_map(|k| req.json.get(*k)?.as_str())
        .map(|t| t.chars().count())
        .sum();
    let chars: usize = fim_chars
        + req
            .json
            .get("messages")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|m| m.get("content")?.as_str())
                    .map(|c| c.chars().count())
                    .sum()
            })
            .unwrap_or(0);
    let prompt_tokens = chars.div_ceil(4);
    json!({ "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens })
}

fn whole_answer(req: &Request, mut guard: DisconnectGuard) -> Response {
    guard.complete();
    match req.behavior.fault {
        Some(Fault::MalformedJson { .. }) => {
            return (
                [(header::CONTENT_TYPE, "application/json")],
                "{\"choices\": [",
            )
                .into_response()
        }
        Some(Fault::Reset { .. }) => {
            let broken = futures::stream::once(async {
                Err::<Bytes, _>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "fake reset",
                ))
            });
            return Response::new(Body::from_stream(broken));
        }
        _ => {}
    }
    let text = answer_text(req);
    let reasoning = reasoning_text(req);
    let b = &req.behavior;
    let tokens =
        tokenize(&text, b).len() + reasoning.as_deref().map_or(0, |r| tokenize(r, b).len());
    let finish = b.finish_reason.as_deref().unwrap_or("stop");
    let mut body = if req.fim {
        json!({
            "id": format!("fake-{}", req.index), "object": "text_completion", "created": 0,
            "model": req.model,
            "choices": [{ "index": 0, "finish_reason": finish, "text": text }],
        })
    } else {
        json!({
        "id": format!("fake-{}", req.index), "object": "chat.completion", "created": 0,
        "model": req.model,
        "choices": [{ "index": 0, "finish_reason": b.finish_reason.as_deref().unwrap_or("stop"),
            "message": { "role": "assistant", "content": text, "reasoning_content": reasoning } }],
        })
    };
    if req.behavior.usage {
        body["usage"] = usage(req, tokens);
    }
    axum::Json(body).into_response()
}

/// The sending half of a streamed body; `Err` from `write` means the client went away.
struct Out {
    tx: mpsc::Sender<Item>,
    trickle: Option<Trickle>,
}

impl Out {
    async fn write(&self, bytes: Vec<u8>) -> Result<(), ()> {
        match self.trickle {
            None => self.tx.send(Ok(bytes.into())).await.map_err(drop),
            Some(t) => {
                for piece in bytes.chunks(t.bytes.max(1)) {
                    self.tx
                        .send(Ok(Bytes::copy_from_slice(piece)))
                        .await
                        .map_err(drop)?;
                    if t.interval_ms == 0 {
                        tokio::task::yield_now().await;
                    } else {
                        tokio::time::sleep(Duration::from_millis(t.interval_ms)).await;
                    }
                }
                Ok(())
            }
        }
    }
}

async fn produce(req: Request, ttft: Duration, mut out: Out) {
    out.trickle = req.behavior.trickle;
    let _ = stream(&req, ttft, &out).await;
}

async fn stream(req: &Request, ttft: Duration, out: &Out) -> Result<(), ()> {
    let b = &req.behavior;
    let nl = b.line_ending.as_str();
    let frame = |data: &Value| format!("data: {data}{nl}{nl}").into_bytes();
    let chunk = |delta: Value, finish: Option<&str>| {
        if req.fim {
            // A `/completions` chunk: the text itself, no delta (reasoning has no place here).
            let text = delta.get("content").cloned().unwrap_or(Value::from(""));
            return json!({ "id": format!("fake-{}", req.index), "object": "text_completion",
                    "created": 0, "model": req.model,
                    "choices": [{ "index": 0, "text": text, "finish_reason": finish }] });
        }
        json!({ "id": format!("fake-{}", req.index), "object": "chat.completion.chunk",
                "created": 0, "model": req.model,
                "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
    };

    let until = Instant::now() + ttft;
    match b.keep_alive_ms {
        Some(every) => loop {
            out.write(format!(": keep-alive{nl}{nl}").into_bytes())
                .await?;
            let now = Instant::now();
            if now >= until {
                break;
            }
            tokio::time::sleep((until - now).min(Duration::from_millis(every.max(1)))).await;
            if Instant::now() >= until {
                break;
            }
        },
        None => tokio::time::sleep(ttft).await,
    }

    let pause = b
        .tokens_per_second
        .map(|t| Duration::from_secs_f64(1.0 / t.max(0.001)));
    let pace = || async {
        if let Some(p) = pause {
            tokio::time::sleep(p).await;
        }
    };
    let reasoning = reasoning_text(req)
        .map(|r| tokenize(&r, b))
        .unwrap_or_default();
    for token in &reasoning {
        out.write(frame(&chunk(json!({ "reasoning_content": token }), None)))
            .await?;
        pace().await;
    }
    let content = tokenize(&answer_text(req), b);
    for i in 0..=content.len() {
        if let Some(fault) = &b.fault {
            if fault_fires(fault, i, content.len()) {
                return fault_bytes(fault, nl, out).await;
            }
        }
        let Some(token) = content.get(i) else { break };
        out.write(frame(&chunk(json!({ "content": token }), None)))
            .await?;
        pace().await;
    }
    let finish = b.finish_reason.as_deref().unwrap_or("stop");
    out.write(frame(&chunk(json!({}), Some(finish)))).await?;
    let asked_usage = req
        .json
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    if b.usage && asked_usage {
        let usage = usage(req, content.len() + reasoning.len());
        let last = json!({ "id": format!("fake-{}", req.index), "object": "chat.completion.chunk",
                           "created": 0, "model": req.model, "choices": [], "usage": usage });
        out.write(frame(&last)).await?;
    }
    if matches!(b.fault, Some(Fault::NoDone { after_tokens: None })) {
        return Ok(());
    }
    out.write(format!("data: [DONE]{nl}{nl}").into_bytes())
        .await
}

fn fault_fires(fault: &Fault, i: usize, len: usize) -> bool {
    let after = match fault {
        Fault::ErrorAfterOk { after_tokens, .. }
        | Fault::MalformedSse { after_tokens }
        | Fault::OversizedLine { after_tokens, .. }
        | Fault::MalformedJson { after_tokens }
        | Fault::Reset { after_tokens }
        | Fault::NoDone {
            after_tokens: Some(after_tokens),
        } => *after_tokens,
        Fault::NoDone { after_tokens: None }
        | Fault::Status { .. }
        | Fault::Hang
        | Fault::Page { .. } => return false,
    };
    after == i || (i == len && after > len)
}

async fn fault_bytes(fault: &Fault, nl: &str, out: &Out) -> Result<(), ()> {
    match fault {
        Fault::ErrorAfterOk { message, .. } => {
            let error = json!({ "error": { "message": message, "type": "server_error" } });
            out.write(format!("data: {error}{nl}{nl}").into_bytes())
                .await
        }
        Fault::MalformedSse { .. } => out.write(b"data: \xff\xfe\xfd\n\n".to_vec()).await,
        Fault::OversizedLine { bytes, .. } => {
            out.write(b"data: ".to_vec()).await?;
            let mut left = *bytes;
            while left > 0 {
                let n = left.min(64 * 1024);
                out.write(vec![b'x'; n]).await?;
                left -= n;
            }
            Ok(())
        }
        Fault::MalformedJson { .. } => {
            out.write(format!("data: {{\"choices\": [{{\"delta\": {nl}{nl}").into_bytes())
                .await
        }
        Fault::Reset { .. } => {
            // Let hyper flush what was sent so far: a body error drops unwritten buffers.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fake reset");
            out.tx.send(Err(reset)).await.map_err(drop)
        }
        Fault::NoDone { .. } | Fault::Status { .. } | Fault::Hang | Fault::Page { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::continuation;

    #[test]
    fn a_continuation_is_what_follows_the_text_before_the_cursor() {
        let doc = "fn a() {\n    one();\n    two();\n}\n";
        assert_eq!(continuation(doc, "fn a() {", 1), "\n    one();");
        assert_eq!(continuation(doc, "fn a() {\n    on", 0), "e();");
        assert_eq!(continuation(doc, "", 0), "fn a() {");
        assert_eq!(continuation(doc, "two();\n}\n", 3), "");
        assert_eq!(continuation(doc, "not there", 3), "");
    }
}
