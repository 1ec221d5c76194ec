//! Provider client: OpenAI-compatible chat completions over HTTP with SSE streaming, and its errors.

use serde::{Deserialize, Serialize};

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
}

// ---- placeholder until the provider branch lands ----
// The router branch needs these declarations (exactly as in plan/API.md) to compile; the provider
// branch owns the real ones. At merge, resolve this block in favour of the provider branch.

/// One chat completion request, after the router resolved the tier.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    pub max_tokens: u32,
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    pub stream: bool,
}

/// A streamed delta, forwarded as it arrives.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    Content(String),
    Reasoning(String),
}

/// A finished answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub text: String,
    pub reasoning: String,
    pub usage: Option<TokenUsage>,
    pub finish_reason: Option<String>,
    pub model: String,
    pub ttft: Option<std::time::Duration>,
    pub elapsed: std::time::Duration,
}

/// Everything that can go wrong talking to the provider.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("no API key: set the environment variable {env}")]
    MissingKey { env: String },
    #[error("the provider rejected the API key (HTTP {status})")]
    KeyRejected { status: u16 },
    #[error("the provider account balance is exhausted (HTTP 402): top up the account")]
    PaymentRequired,
    #[error("the provider does not know the model `{model}`")]
    UnknownModel { model: String },
    #[error("the provider refused the request (HTTP {status}): {message}")]
    BadRequest { status: u16, message: String },
    #[error("rate limited by the provider{}", match retry_after { Some(d) => format!(": retry in {} s", d.as_secs_f64().ceil()), None => String::new() })]
    RateLimited {
        retry_after: Option<std::time::Duration>,
    },
    #[error("provider error (HTTP {status}): {message}")]
    Server { status: u16, message: String },
    #[error("timed out waiting for {what}")]
    Timeout { what: String },
    #[error("cannot connect to the provider: {message}")]
    Connect { message: String },
    #[error("the connection was reset mid-stream")]
    StreamReset,
    #[error("malformed stream from the provider: {detail}")]
    MalformedStream { detail: String },
    #[error("the provider returned an empty answer")]
    EmptyAnswer,
    #[error("refusing plain http to a non-loopback host: {url}")]
    InsecureUrl { url: String },
}

impl ProviderError {
    /// Worth another try (rate limits, server errors, timeouts, broken connections).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. }
                | ProviderError::Server { .. }
                | ProviderError::Timeout { .. }
                | ProviderError::Connect { .. }
                | ProviderError::StreamReset
        )
    }

    /// How long the provider asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            ProviderError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// The router's seam; `Provider` implements it.
pub trait Upstream: Send + Sync + 'static {
    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest,
        events: Option<&'a tokio::sync::mpsc::UnboundedSender<StreamEvent>>,
    ) -> futures::future::BoxFuture<'a, Result<Completion, ProviderError>>;
}

/// Placeholder for the HTTP client built on the provider branch.
#[derive(Clone, Debug)]
pub struct Provider;

impl Upstream for Provider {
    fn chat<'a>(
        &'a self,
        _req: &'a ChatRequest,
        _events: Option<&'a tokio::sync::mpsc::UnboundedSender<StreamEvent>>,
    ) -> futures::future::BoxFuture<'a, Result<Completion, ProviderError>> {
        Box::pin(async {
            Err(ProviderError::Connect {
                message: "provider client not built yet".into(),
            })
        })
    }
}
// ---- end of placeholder ----
