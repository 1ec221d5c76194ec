//! Provider client: OpenAI-compatible chat completions over HTTP with SSE streaming, and its errors.

mod error;
mod http;
pub mod sse;
mod wire;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

pub use error::ProviderError;
use http::{ApiKey, KeyScrubber};
use wire::Quirks;

/// Who wrote a chat message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One chat message as sent to the provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

/// Tokens spent by one request, as the provider reported them (or as we counted them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// We counted them (see `TokenUsage::estimated`): the provider sent no usage, or the stream
    /// was cut off before it could. Absent in answers cached before this field existed.
    #[serde(default)]
    pub estimated: bool,
}

/// The rough size of a token, the one estimate used wherever characters become tokens (prompt
/// budgets, usage a provider did not report, progress counts).
pub const CHARS_PER_TOKEN: usize = 4;

/// Tokens of `chars` characters, by [`CHARS_PER_TOKEN`], rounded up.
pub fn estimate_tokens(chars: usize) -> u64 {
    chars.div_ceil(CHARS_PER_TOKEN) as u64
}

impl TokenUsage {
    /// A rough count for when the provider reports no usage: about four characters a token.
    /// The router uses it so that spend is never reported as zero. On servers whose tokenizer
    /// differs (llama.cpp with a small model) it can be several times off, hence the mark.
    pub fn estimated(input_chars: usize, output_chars: usize) -> TokenUsage {
        TokenUsage {
            input_tokens: estimate_tokens(input_chars),
            output_tokens: estimate_tokens(output_chars),
            estimated: true,
        }
    }

    /// Characters of the messages' contents, for `estimated`.
    pub fn input_chars(messages: &[Message]) -> usize {
        messages.iter().map(|m| m.content.chars().count()).sum()
    }
}

/// Where requests go and which environment variable holds the key (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub base_url: String,
    pub api_key_env: String,
}

/// One chat completion request, already shaped for a tier.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    pub max_tokens: u32,
    /// Merged into the body; wins over our defaults except `model`, `messages` and `stream`.
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// Stream with SSE (`true`), or ask for one JSON answer.
    pub stream: bool,
    /// Set for a fill-in-the-middle request: it goes to `/completions` with `prompt` and
    /// `suffix` instead of `messages` (which are then empty). The answer streams the same way.
    pub fim: Option<FimPrompt>,
}

/// A fill-in-the-middle prompt: the text before the cursor and the text after it, as the
/// `/completions` endpoints of DeepSeek (FIM beta), llama.cpp's server and Ollama take them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FimPrompt {
    pub prompt: String,
    pub suffix: String,
}

impl ChatRequest {
    /// Characters of what the request sends as its prompt, for `TokenUsage::estimated`.
    pub fn input_chars(&self) -> usize {
        match &self.fim {
            Some(fim) => fim.prompt.chars().count() + fim.suffix.chars().count(),
            None => TokenUsage::input_chars(&self.messages),
        }
    }
}

/// A piece of the answer as it arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    Content(String),
    /// Reasoning (`reasoning_content`) that models such as DeepSeek-R1 send before the answer.
    Reasoning(String),
}

/// An answer, the one type it has from the provider's stream to the protocol: the router
/// names its tier and prices it, the cache stores it (flattened into `cache::Entry`), and the
/// engine's `Outcome` carries it to the editor or the shell.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub text: String,
    pub reasoning: String,
    /// The tier that answered; empty until the router names it.
    pub tier: String,
    /// The model that answered (the fallback's, if the tier fell back): what prices and
    /// statistics are keyed by.
    pub model: String,
    /// As the provider reported it, or else counted (`TokenUsage::estimated`, marked so).
    pub usage: TokenUsage,
    /// Output tokens at the model's price; `None` until the router prices it, or when no price
    /// is known.
    pub cost_usd: Option<f64>,
    /// Why the provider stopped (`stop`, `length`, `content_filter`, …), as it said. Not stored:
    /// a cut-off answer is never cached.
    #[serde(skip)]
    pub finish_reason: Option<String>,
}

/// One request's answer, and how long it took.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub answer: Answer,
    /// Time from sending the request to the first content or reasoning token; keep-alive
    /// comments do not count.
    pub ttft: Option<Duration>,
    pub elapsed: Duration,
}

/// The seam the router calls; `Provider` implements it, tests substitute their own.
pub trait Upstream: Send + Sync + 'static {
    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest,
        events: Option<&'a UnboundedSender<StreamEvent>>,
    ) -> BoxFuture<'a, Result<Completion, ProviderError>>;

    /// Whether requests go to this machine (a local server, which typically runs one request
    /// at a time).
    fn is_loopback(&self) -> bool {
        false
    }
}

/// The client of one OpenAI-compatible endpoint. Cloning is cheap and shares the pooled
/// HTTP client and what was learnt about each model.
#[derive(Clone)]
pub struct Provider {
    inner: Arc<Inner>,
}

struct Inner {
    client: http::LazyClient,
    endpoint: Endpoint,
    /// `base_url` without its trailing slash.
    base: String,
    /// `base_url` names a loopback host.
    loopback: bool,
    /// Fields each model's server rejected, so later requests leave them out at once.
    quirks: Mutex<HashMap<String, Quirks>>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("endpoint", &self.inner.endpoint)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Checks the endpoint (plain http only to loopback) and starts building the pooled
    /// client (off this path; see `http::LazyClient`).
    /// The key is not read here but at each request, so setting it later works.
    pub fn new(endpoint: Endpoint) -> Result<Provider, ProviderError> {
        let base = http::check_base_url(&endpoint.base_url)?;
        let client = http::LazyClient::start();
        Ok(Provider {
            inner: Arc::new(Inner {
                client,
                endpoint,
                loopback: http::is_loopback_url(&base),
                base,
                quirks: Mutex::default(),
            }),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// Opens a connection (DNS, TCP, TLS, HTTP/2) so the first real request does not pay for
    /// it. The answer, even an error, does not matter.
    pub async fn warm_up(&self) {
        let started = Instant::now();
        let Ok(client) = self.inner.client.get() else {
            return;
        };
        let mut builder = client.get(format!("{}/models", self.inner.base));
        // Without a key the connection still warms up; the 401 that follows does not matter.
        if let Ok(key) = ApiKey::from_env(&self.inner.endpoint.api_key_env) {
            match http::authorized(builder, &key, &self.inner.endpoint.api_key_env) {
                Ok(b) => builder = b,
                Err(_) => return,
            }
        }
        let attempt = async {
            let resp = builder.send().await?;
            let status = resp.status();
            // Reading the body returns the connection to the pool.
            http::read_capped(resp).await?;
            Ok::<_, reqwest::Error>(status)
        };
        match tokio::time::timeout(Duration::from_secs(10), attempt).await {
            Ok(Ok(status)) => tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                status = status.as_u16(),
                "provider connection warmed up"
            ),
            Ok(Err(e)) => {
                tracing::debug!(error = %http::chain(&e.without_url()), "provider warm-up failed")
            }
            Err(_) => tracing::debug!("provider warm-up timed out"),
        }
    }

    /// The model ids the provider offers (`GET /models`), for `codetier doctor`.
    pub async fn list_models(&self) -> Result<Vec<String>, ProviderError> {
        let json = self.get_models().await?;
        let data = json.get("data").and_then(|d| d.as_array()).ok_or_else(|| {
            ProviderError::MalformedStream {
                detail: "the model list has no `data` array".into(),
            }
        })?;
        Ok(data
            .iter()
            .filter_map(|m| m.get("id")?.as_str().map(str::to_owned))
            .collect())
    }

    async fn get_models(&self) -> Result<serde_json::Value, ProviderError> {
        let key = ApiKey::from_env(&self.inner.endpoint.api_key_env)?;
        let builder = self
            .inner
            .client
            .get()?
            .get(format!("{}/models", self.inner.base));
        let resp = http::authorized(builder, &key, &self.inner.endpoint.api_key_env)?
            .send()
            .await
            .map_err(|e| http::transport_error(e, "the provider's model list"))?;
        let status = resp.status().as_u16();
        let body = http::read_capped(resp)
            .await
            .map_err(|_| ProviderError::StreamReset)?;
        let body = key.redact(body);
        if status == 404 {
            return Err(ProviderError::BadRequest {
                status,
                message: "this provider has no `/models` endpoint".into(),
            });
        }
        if !(200..300).contains(&status) {
            return Err(error::from_status(status, None, &body, &self.asked("")));
        }
        serde_json::from_str(&body).map_err(|e| ProviderError::MalformedStream {
            detail: format!("the model list is not JSON: {e}"),
        })
    }

    /// Sends one chat request and collects the answer, forwarding pieces to `events` as they
    /// arrive. Dropping the future drops the response and so closes the connection.
    ///
    /// A server that rejects `thinking` (400/422 naming it) or `stream_options` (422, or 400
    /// naming it) gets the request once more without that field, and the model is remembered.
    pub async fn chat(
        &self,
        req: &ChatRequest,
        events: Option<&UnboundedSender<StreamEvent>>,
    ) -> Result<Completion, ProviderError> {
        let key = ApiKey::from_env(&self.inner.endpoint.api_key_env)?;
        let mut quirks = self.quirks(&req.model);
        loop {
            let err = match self.attempt(req, &key, quirks, events).await {
                Err(ProviderError::BadRequest {
                    status: status @ (400 | 422),
                    message,
                }) => (status, message),
                other => return other,
            };
            let (status, message) = err;
            let lower = message.to_lowercase();
            let sent = wire::request_body(req, quirks);
            if sent.get("thinking").is_some() && lower.contains("thinking") {
                quirks.no_thinking = true;
            } else if sent.get("stream_options").is_some()
                && (status == 422 || lower.contains("stream_options"))
            {
                quirks.no_stream_options = true;
            } else {
                return Err(ProviderError::BadRequest { status, message });
            }
            tracing::info!(model = %req.model, status, ?quirks, "provider rejected a field; retrying without it");
            self.remember(&req.model, quirks);
        }
    }

    fn asked<'a>(&'a self, model: &'a str) -> error::Asked<'a> {
        error::Asked {
            model,
            key_env: &self.inner.endpoint.api_key_env,
            base_url: &self.inner.base,
        }
    }

    fn quirks(&self, model: &str) -> Quirks {
        let map = self.inner.quirks.lock().unwrap_or_else(|p| p.into_inner());
        map.get(model).copied().unwrap_or_default()
    }

    fn remember(&self, model: &str, quirks: Quirks) {
        let mut map = self.inner.quirks.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(model.to_owned(), quirks);
    }

    async fn attempt(
        &self,
        req: &ChatRequest,
        key: &ApiKey,
        quirks: Quirks,
        events: Option<&UnboundedSender<StreamEvent>>,
    ) -> Result<Completion, ProviderError> {
        let start = Instant::now();
        let body = wire::request_body(req, quirks);
        let builder = self
            .inner
            .client
            .get()?
            .post(format!("{}/{}", self.inner.base, wire::path(req)))
            .json(&body);
        let resp = http::authorized(builder, key, &self.inner.endpoint.api_key_env)?
            .send()
            .await
            .map_err(|e| http::transport_error(e, "the provider to answer"))?;
        let status = resp.status();
        if !status.is_success() {
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = key.redact(http::read_capped(resp).await.unwrap_or_default());
            return Err(error::from_status(
                status.as_u16(),
                retry_after.as_deref(),
                &body,
                &self.asked(&req.model),
            ));
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut acc = Accumulator::new(start, events, key);
        // A server may ignore `stream: true` and answer with one JSON object, or stream when
        // not asked to: the content type decides. Without one, a stream is expected when one
        // was asked for. Anything else (an HTML page, plain text) is read whole and looked at.
        let is_sse = content_type.starts_with("text/event-stream");
        let is_json = content_type.starts_with("application/json");
        let reply = Reply {
            status: status.as_u16(),
            content_type: &content_type,
            asked: self.asked(&req.model),
        };
        if is_sse || (req.stream && content_type.is_empty()) {
            read_stream(resp, &mut acc, &reply, is_sse).await?;
        } else {
            let body = http::read_capped(resp)
                .await
                .map_err(|_| ProviderError::StreamReset)?;
            if is_json {
                let delta = wire::parse(&body).map_err(|detail| acc.malformed(detail))?;
                if !delta.shaped && delta.error.is_none() {
                    return Err(acc.not_chat_completion(&reply, body.as_bytes()));
                }
                acc.apply(delta)?;
            } else {
                read_unlabelled(&body, &mut acc, &reply)?;
            }
        }
        acc.finish(req)
    }
}

impl Upstream for Provider {
    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest,
        events: Option<&'a UnboundedSender<StreamEvent>>,
    ) -> BoxFuture<'a, Result<Completion, ProviderError>> {
        Box::pin(Provider::chat(self, req, events))
    }

    fn is_loopback(&self) -> bool {
        self.inner.loopback
    }
}

/// A success status and its content type, for the errors that say what arrived instead.
struct Reply<'a> {
    status: u16,
    content_type: &'a str,
    asked: error::Asked<'a>,
}

/// How much of a body is kept to say what it was, when it turns out not to be an answer.
const SNIFF_BYTES: usize = 1024;

/// Reads an SSE body to its end into `acc`. `declared` says the server labelled it
/// `text/event-stream`; an unlabelled body that holds no event is reported for what it is.
async fn read_stream(
    resp: reqwest::Response,
    acc: &mut Accumulator<'_>,
    reply: &Reply<'_>,
    declared: bool,
) -> Result<(), ProviderError> {
    let mut body = resp.bytes_stream();
    let mut parser = sse::Parser::new(sse::Limits::default());
    let mut events = Vec::new();
    let mut sniffed: Vec<u8> = Vec::new();
    loop {
        match body.next().await {
            Some(Ok(bytes)) => {
                let room = SNIFF_BYTES.saturating_sub(sniffed.len());
                sniffed.extend_from_slice(&bytes[..bytes.len().min(room)]);
                let pushed = parser.push(&bytes, &mut events);
                acc.apply_events(&mut events)?;
                if pushed.is_err() && !declared && acc.data_events == 0 {
                    return Err(acc.not_chat_completion(reply, &sniffed));
                }
                pushed.map_err(|e| acc.malformed(e.to_string()))?;
                if parser.is_done() {
                    // Read the end of the body briefly so the connection can be pooled again.
                    let _ = tokio::time::timeout(Duration::from_millis(200), async {
                        while let Some(Ok(_)) = body.next().await {}
                    })
                    .await;
                    return Ok(());
                }
            }
            Some(Err(e)) => {
                tracing::debug!(error = %http::chain(&e.without_url()), "provider stream broke");
                return Err(acc.broken());
            }
            None => {
                let end = parser.finish(&mut events);
                acc.apply_events(&mut events)?;
                return match end {
                    Ok(()) => Ok(()),
                    // A finished choice is a whole answer even when `[DONE]` is missing, as
                    // with some compatible servers; without one the answer was cut off.
                    Err(sse::SseError::EndedWithoutDone) if acc.finish_reason.is_some() => Ok(()),
                    // The body ended cleanly without a single token: no events at all (or
                    // only keep-alives) is an empty stream, anything else was not SSE.
                    Err(sse::SseError::EndedWithoutDone) if acc.received_chars() == 0 => {
                        if acc.data_events == 0 && !only_comments(&sniffed) {
                            Err(acc.not_chat_completion(reply, &sniffed))
                        } else {
                            Err(ProviderError::EmptyStream)
                        }
                    }
                    Err(sse::SseError::EndedWithoutDone) => Err(acc.broken()),
                    Err(_) if !declared && acc.data_events == 0 => {
                        Err(acc.not_chat_completion(reply, &sniffed))
                    }
                    Err(e) => Err(acc.malformed(e.to_string())),
                };
            }
        }
    }
}

/// A whole body whose content type is neither SSE nor JSON (`text/plain`, `text/html`, ...):
/// some servers label JSON or a stream that way, so those are still read; anything else is
/// reported for what it is, and an empty body as an empty stream.
fn read_unlabelled(
    body: &str,
    acc: &mut Accumulator<'_>,
    reply: &Reply<'_>,
) -> Result<(), ProviderError> {
    let trimmed = body.trim_start();
    if trimmed.is_empty() {
        return Err(ProviderError::EmptyStream);
    }
    if trimmed.starts_with('{') {
        match wire::parse(trimmed) {
            Ok(delta) if delta.shaped || delta.error.is_some() => return acc.apply(delta),
            _ => {}
        }
    } else if body.lines().any(|l| l.starts_with("data:")) {
        let mut parser = sse::Parser::new(sse::Limits::default());
        let mut events = Vec::new();
        let pushed = parser.push(body.as_bytes(), &mut events);
        let end = pushed.and_then(|()| parser.finish(&mut events));
        acc.apply_events(&mut events)?;
        if acc.data_events > 0 {
            return match end {
                Ok(()) => Ok(()),
                Err(sse::SseError::EndedWithoutDone) if acc.finish_reason.is_some() => Ok(()),
                Err(sse::SseError::EndedWithoutDone) => Err(acc.broken()),
                Err(e) => Err(acc.malformed(e.to_string())),
            };
        }
    }
    Err(acc.not_chat_completion(reply, body.as_bytes()))
}

/// Whether an SSE body held nothing but blank lines and `:` comments (keep-alives).
fn only_comments(body: &[u8]) -> bool {
    String::from_utf8_lossy(body)
        .lines()
        .all(|l| l.trim().is_empty() || l.starts_with(':'))
}

/// The answer so far, and where its pieces are forwarded. The key is scrubbed from the answer
/// and the reasoning before they are kept or forwarded, so no answer shown, cached or logged
/// holds it, even when the provider splits it across deltas.
struct Accumulator<'a> {
    start: Instant,
    events: Option<&'a UnboundedSender<StreamEvent>>,
    key: &'a ApiKey,
    text_scrubber: KeyScrubber<'a>,
    reasoning_scrubber: KeyScrubber<'a>,
    text: String,
    reasoning: String,
    usage: Option<TokenUsage>,
    finish_reason: Option<String>,
    ttft: Option<Duration>,
    /// `data:` events seen, answer or not (a role-only first chunk counts).
    data_events: usize,
}

impl<'a> Accumulator<'a> {
    fn new(
        start: Instant,
        events: Option<&'a UnboundedSender<StreamEvent>>,
        key: &'a ApiKey,
    ) -> Self {
        Accumulator {
            start,
            events,
            key,
            text_scrubber: key.scrubber(),
            reasoning_scrubber: key.scrubber(),
            text: String::new(),
            reasoning: String::new(),
            usage: None,
            finish_reason: None,
            ttft: None,
            data_events: 0,
        }
    }

    fn received_chars(&self) -> usize {
        self.text.chars().count() + self.reasoning.chars().count()
    }

    fn apply_events(&mut self, events: &mut Vec<sse::Event>) -> Result<(), ProviderError> {
        for event in events.drain(..) {
            match event {
                sse::Event::Data { data, .. } => {
                    self.data_events += 1;
                    let delta = wire::parse(&data).map_err(|detail| self.malformed(detail))?;
                    self.apply(delta)?;
                }
                sse::Event::Comment(text) => {
                    tracing::trace!(comment = %text, "provider keep-alive")
                }
                sse::Event::Done => {}
            }
        }
        Ok(())
    }

    fn apply(&mut self, delta: wire::Delta) -> Result<(), ProviderError> {
        if let Some(message) = delta.error {
            return Err(ProviderError::StreamError {
                message: error::truncate(&self.key.redact(message)),
                after_content: self.received_chars() > 0,
            });
        }
        if let Some(reasoning) = delta.reasoning {
            self.ttft.get_or_insert_with(|| self.start.elapsed());
            let shown = self.reasoning_scrubber.push(&reasoning);
            self.add_reasoning(shown);
        }
        if let Some(content) = delta.content {
            self.ttft.get_or_insert_with(|| self.start.elapsed());
            let shown = self.text_scrubber.push(&content);
            self.add_text(shown);
        }
        if delta.usage.is_some() {
            self.usage = delta.usage;
        }
        if delta.finish_reason.is_some() {
            self.finish_reason = delta.finish_reason;
        }
        Ok(())
    }

    fn add_reasoning(&mut self, shown: String) {
        if !shown.is_empty() {
            self.send(StreamEvent::Reasoning(shown.clone()));
            self.reasoning.push_str(&shown);
        }
    }

    fn add_text(&mut self, shown: String) {
        if !shown.is_empty() {
            self.send(StreamEvent::Content(shown.clone()));
            self.text.push_str(&shown);
        }
    }

    fn send(&self, event: StreamEvent) {
        if let Some(tx) = self.events {
            // A listener that went away does not stop the answer from being collected.
            let _ = tx.send(event);
        }
    }

    /// The connection broke or the stream stopped short.
    fn broken(&self) -> ProviderError {
        match self.received_chars() {
            0 => ProviderError::StreamReset,
            received_chars => ProviderError::EndedEarly { received_chars },
        }
    }

    fn not_chat_completion(&self, reply: &Reply<'_>, body: &[u8]) -> ProviderError {
        let text = self.key.redact(String::from_utf8_lossy(body).into_owned());
        error::not_chat_completion(reply.status, reply.content_type, &text, &reply.asked)
    }

    fn malformed(&self, detail: String) -> ProviderError {
        ProviderError::MalformedStream {
            detail: error::truncate(&self.key.redact(detail)),
        }
    }

    /// The answer for `req`: its usage as reported, or else counted (`TokenUsage::estimated`),
    /// so that spend is never reported as zero.
    fn finish(mut self, req: &ChatRequest) -> Result<Completion, ProviderError> {
        // What was held back in case it began the key is not the key: the answer is whole.
        let reasoning = self.reasoning_scrubber.flush();
        self.add_reasoning(reasoning);
        let text = self.text_scrubber.flush();
        self.add_text(text);
        if self.text.trim().is_empty() {
            return Err(ProviderError::EmptyAnswer);
        }
        let usage = self.usage.unwrap_or_else(|| {
            TokenUsage::estimated(
                req.input_chars(),
                self.text.chars().count() + self.reasoning.chars().count(),
            )
        });
        Ok(Completion {
            answer: Answer {
                text: self.text,
                reasoning: self.reasoning,
                tier: String::new(),
                model: req.model.clone(),
                usage,
                cost_usd: None,
                finish_reason: self.finish_reason,
            },
            ttft: self.ttft,
            elapsed: self.start.elapsed(),
        })
    }
}
