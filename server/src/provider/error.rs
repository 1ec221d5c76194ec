//! Provider errors: one typed variant per failure a user can act on, and the mapping from HTTP answers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest provider message we carry into an error (the rest is cut with an ellipsis).
const MAX_MESSAGE_CHARS: usize = 400;

/// Everything that can go wrong between us and the provider.
///
/// Display is the message shown to the user; none of them ever holds the API key.
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
pub enum ProviderError {
    #[error(
        "no API key: the environment variable `{env}` is not set. Set it where your editor \
         starts (e.g. `export {env}=...` in your shell profile), or name another variable \
         with `api_key_env`"
    )]
    MissingKey { env: String },
    #[error(
        "the API key in `{env}` cannot be sent in an HTTP header (it holds control or \
         non-ASCII characters); copy the key again"
    )]
    InvalidKey { env: String },
    #[error(
        "the provider rejected the API key (HTTP {status}): check the key in `{env}` (the \
         variable `api_key_env` names), and that it is valid for `base_url`"
    )]
    KeyRejected { status: u16, env: String },
    #[error(
        "the provider account's balance is exhausted (HTTP 402 Payment Required): top up the \
         account, or point `base_url` at another provider"
    )]
    PaymentRequired,
    #[error(
        "the provider does not know the model `{model}` (HTTP 404): check the tier's `model` \
         in your configuration (`codetier doctor` lists the provider's models), or `base_url` \
         if every model fails"
    )]
    UnknownModel { model: String },
    #[error(
        "the provider has no `{path}` (HTTP 404), so `base_url` does not point at its \
         OpenAI-compatible API{}",
        v1_hint(*.missing_v1)
    )]
    UnknownPath { path: String, missing_v1: bool },
    #[error("the provider refused the request (HTTP {status}): {message}")]
    BadRequest { status: u16, message: String },
    #[error("rate limited by the provider (HTTP 429){}", retry_after_text(.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    #[error("the provider failed (HTTP {status}): {message}")]
    Server { status: u16, message: String },
    #[error("the provider reported an error in the middle of its answer: {message}")]
    StreamError {
        message: String,
        after_content: bool,
    },
    #[error("timed out waiting for {what}")]
    Timeout { what: String },
    #[error("cannot reach the provider: {message}")]
    Connect { message: String },
    #[error("the connection to the provider was reset before any answer arrived")]
    StreamReset,
    #[error(
        "the provider's answer broke off after {received_chars} characters (connection \
         reset or stream ended without `[DONE]`); the answer is incomplete"
    )]
    EndedEarly { received_chars: usize },
    #[error("the provider sent a malformed answer: {detail}")]
    MalformedStream { detail: String },
    #[error(
        "the provider answered HTTP {status} with {what} (`{content_type}`) instead of a chat \
         completion{}: check that `base_url` is the address of its OpenAI-compatible API{}",
        excerpt_text(.excerpt),
        v1_hint(*.missing_v1)
    )]
    NotChatCompletion {
        status: u16,
        /// "an HTML page", "plain text", ...
        what: String,
        content_type: String,
        /// The start of what arrived (the page title for HTML), already cut and scrubbed.
        excerpt: String,
        missing_v1: bool,
    },
    #[error(
        "the provider accepted the request (HTTP 200) but its answer stream ended without a \
         single token. Local servers such as llama.cpp do this when the prompt does not fit the \
         model's context: check the context size the model was loaded with (llama.cpp \
         `--ctx-size`, Ollama `num_ctx`), or select less code"
    )]
    EmptyStream,
    #[error("the model returned an empty answer")]
    EmptyAnswer,
    #[error(
        "refusing to send the API key over plain http to `{url}`: use https, or a loopback \
         address (127.0.0.1, ::1, localhost) for a local server"
    )]
    InsecureUrl { url: String },
    #[error("`base_url` is not a usable URL (`{url}`): {message}")]
    BadUrl { url: String, message: String },
}

impl ProviderError {
    /// Whether trying the same request again may succeed: rate limits, server faults, timeouts,
    /// connection failures and resets before any content. Never a request the provider refused.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::RateLimited { .. }
            | ProviderError::Server { .. }
            | ProviderError::Timeout { .. }
            | ProviderError::Connect { .. }
            | ProviderError::StreamReset
            | ProviderError::NotChatCompletion { .. }
            | ProviderError::EmptyStream => true,
            ProviderError::StreamError { after_content, .. } => !after_content,
            ProviderError::MissingKey { .. }
            | ProviderError::InvalidKey { .. }
            | ProviderError::KeyRejected { .. }
            | ProviderError::PaymentRequired
            | ProviderError::UnknownModel { .. }
            | ProviderError::UnknownPath { .. }
            | ProviderError::BadRequest { .. }
            | ProviderError::EndedEarly { .. }
            | ProviderError::MalformedStream { .. }
            | ProviderError::EmptyAnswer
            | ProviderError::InsecureUrl { .. }
            | ProviderError::BadUrl { .. } => false,
        }
    }

    /// Retryable, but once at most: answers that are not chat completions (a wrong `base_url`,
    /// a proxy's error page) or an empty 200 stream (a prompt too long for a local server's
    /// context) rarely change on a second try, and never on a sixth.
    pub fn retry_once(&self) -> bool {
        matches!(
            self,
            ProviderError::NotChatCompletion { .. } | ProviderError::EmptyStream
        )
    }

    /// Whether the failure says the model is unhealthy, so its circuit breaker should count it:
    /// every retryable failure except those that describe the request or the configuration
    /// (`retry_once`).
    pub fn counts_against_model(&self) -> bool {
        self.is_retryable() && !self.retry_once()
    }

    /// How long the provider asked us to wait before trying again, when it said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

fn v1_hint(missing_v1: bool) -> &'static str {
    if missing_v1 {
        " (it usually ends in `/v1`, e.g. `http://localhost:8080/v1`)"
    } else {
        ""
    }
}

fn excerpt_text(excerpt: &str) -> String {
    if excerpt.is_empty() {
        String::new()
    } else {
        format!(" ({excerpt})")
    }
}

/// What a request was, for the errors that name it.
pub(crate) struct Asked<'a> {
    /// The requested model.
    pub model: &'a str,
    /// The environment variable holding the key.
    pub key_env: &'a str,
    /// `base_url` without its trailing slash.
    pub base_url: &'a str,
}

impl Asked<'_> {
    /// The path of `base_url` followed by `endpoint` (e.g. `/v1/chat/completions`).
    pub(crate) fn path(&self, endpoint: &str) -> String {
        let base_path = reqwest::Url::parse(self.base_url)
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        format!("{base_path}{endpoint}")
    }

    /// `base_url`'s path does not end in a version segment (`/v1`, `/v1beta`, `/api/v3`):
    /// the most common mistake behind a 404 or a web page.
    pub(crate) fn missing_v1(&self) -> bool {
        let last = reqwest::Url::parse(self.base_url)
            .ok()
            .and_then(|u| {
                u.path_segments()
                    .and_then(|mut s| s.rfind(|seg| !seg.is_empty()).map(str::to_owned))
            })
            .unwrap_or_default();
        let mut chars = last.chars();
        !(chars.next() == Some('v') && chars.next().is_some_and(|c| c.is_ascii_digit()))
    }
}

/// An answer with a success status that is neither SSE nor a JSON chat completion: says what
/// it was. `body` is the start of it, already scrubbed of the key.
pub(crate) fn not_chat_completion(
    status: u16,
    content_type: &str,
    body: &str,
    asked: &Asked<'_>,
) -> ProviderError {
    let trimmed = body.trim_start();
    let lower: String = trimmed.chars().take(512).collect::<String>().to_lowercase();
    let html = content_type.contains("html")
        || lower.starts_with("<!doctype html")
        || lower.starts_with("<html");
    let (what, excerpt) = if html {
        let title = html_title(trimmed).map(|t| format!("titled “{t}”"));
        ("an HTML page", title.unwrap_or_default())
    } else if content_type.contains("xml") || lower.starts_with("<?xml") {
        ("an XML document", one_line(trimmed))
    } else if content_type.contains("json") || lower.starts_with('{') || lower.starts_with('[') {
        ("JSON that is not a chat completion", one_line(trimmed))
    } else {
        ("plain text", one_line(trimmed))
    };
    ProviderError::NotChatCompletion {
        status,
        what: what.to_owned(),
        content_type: if content_type.is_empty() {
            "no content type".to_owned()
        } else {
            content_type.to_owned()
        },
        excerpt,
        missing_v1: asked.missing_v1(),
    }
}

/// The text of an HTML page's `<title>`, whitespace collapsed and cut.
fn html_title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let open = lower.find("<title")?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title")?;
    let title = one_line(html.get(start..end)?);
    (!title.is_empty()).then_some(title)
}

/// The first 120 characters, on one line, control characters dropped.
fn one_line(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let joined: String = words
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    match joined.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &joined[..i]),
        None => joined,
    }
}

fn retry_after_text(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) if d.as_millis() < 1000 => format!("; retry after {} ms", d.as_millis()),
        Some(d) => format!("; retry after {} s", d.as_secs_f64().ceil() as u64),
        None => "; wait a moment and try again".to_owned(),
    }
}

/// Turns a non-success HTTP answer to a chat request into the error the user should see.
///
/// `body` is the (already size-capped and scrubbed) response body. A 404 whose body speaks of
/// a model is an unknown model; any other 404 (a framework's "Not Found", a web server's page)
/// means the path is unknown, which is `base_url`'s fault.
pub(crate) fn from_status(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    asked: &Asked<'_>,
) -> ProviderError {
    let message = || body_message(body, status);
    match status {
        401 | 403 => ProviderError::KeyRejected {
            status,
            env: asked.key_env.to_owned(),
        },
        402 => ProviderError::PaymentRequired,
        404 if body.to_lowercase().contains("model") => ProviderError::UnknownModel {
            model: asked.model.to_owned(),
        },
        404 => ProviderError::UnknownPath {
            path: asked.path("/chat/completions"),
            missing_v1: asked.missing_v1(),
        },
        408 => ProviderError::Timeout {
            what: "the provider (HTTP 408 Request Timeout)".to_owned(),
        },
        429 => ProviderError::RateLimited {
            retry_after: retry_after.and_then(|v| parse_retry_after(v, SystemTime::now())),
        },
        500..=599 => ProviderError::Server {
            status,
            message: message(),
        },
        300..=399 => ProviderError::Connect {
            message: format!(
                "the provider answered with a redirect (HTTP {status}); set `base_url` to the \
                 final address"
            ),
        },
        _ => ProviderError::BadRequest {
            status,
            message: message(),
        },
    }
}

/// The human part of an error body: `error.message`, `message`, `detail`, or the raw text.
pub(crate) fn body_message(body: &str, status: u16) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => json_error_message(&v).unwrap_or_else(|| body.trim().to_owned()),
        Err(_) => body.trim().to_owned(),
    };
    if text.is_empty() {
        return format!("no details given (HTTP {status})");
    }
    truncate(&text)
}

/// Finds the message in the error JSON shapes that OpenAI-compatible servers use.
pub(crate) fn json_error_message(v: &serde_json::Value) -> Option<String> {
    let pick = |v: &serde_json::Value| -> Option<String> {
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            serde_json::Value::Object(o) => o
                .get("message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
                .or_else(|| Some(v.to_string())),
            other => Some(other.to_string()),
        }
    };
    v.get("error")
        .and_then(pick)
        .or_else(|| v.get("message").and_then(pick))
        .or_else(|| v.get("detail").and_then(pick))
}

/// Cuts long provider text so an error stays readable.
pub(crate) fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// Parses `Retry-After`: delay-seconds (possibly fractional) or an IMF-fixdate HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = parse_http_date(value)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Parses an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT` into seconds since the epoch.
fn parse_http_date(value: &str) -> Option<u64> {
    let rest = value.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let day: i64 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *s > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + m * 60 + s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_770); // Sun, 06 Nov 1994 08:49:30 GMT
        let check = |v: &str, want: Option<u64>| {
            assert_eq!(parse_retry_after(v, now).map(|d| d.as_secs()), want, "{v}");
        };
        check("3", Some(3));
        check(" 120 ", Some(120));
        check("Sun, 06 Nov 1994 08:49:37 GMT", Some(7));
        check("Sun, 06 Nov 1994 08:49:00 GMT", Some(0));
        check("Thu, 01 Jan 1970 00:00:00 GMT", Some(0));
        check("-1", None);
        check("soon", None);
        check("Sun, 06 Nov 1994 08:49:37 UTC", None);
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
    }

    const ASKED: Asked<'static> = Asked {
        model: "m",
        key_env: "KEY",
        base_url: "https://api.example.test/v1",
    };

    #[test]
    fn status_mapping() {
        let from_status = |status, retry_after, body: &str, model: &str, key_env: &str| {
            let asked = Asked {
                model,
                key_env,
                ..ASKED
            };
            from_status(status, retry_after, body, &asked)
        };
        let e = from_status(
            400,
            None,
            r#"{"error":{"message":"context too long"}}"#,
            "m",
            "KEY",
        );
        assert_eq!(
            e,
            ProviderError::BadRequest {
                status: 400,
                message: "context too long".into()
            }
        );
        assert_eq!(
            from_status(402, None, "", "m", "KEY"),
            ProviderError::PaymentRequired
        );
        assert_eq!(
            from_status(
                404,
                None,
                r#"{"error":{"message":"The model `m` does not exist"}}"#,
                "m",
                "KEY"
            ),
            ProviderError::UnknownModel { model: "m".into() }
        );
        let e = from_status(
            422,
            None,
            r#"{"detail":[{"msg":"extra field"}]}"#,
            "m",
            "KEY",
        );
        assert!(e.to_string().contains("extra field"), "{e}");
        assert!(from_status(503, None, "busy", "m", "KEY").is_retryable());
        assert!(!from_status(400, None, "", "m", "KEY").is_retryable());
        let e = from_status(429, Some("2"), "", "m", "KEY");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert!(e.to_string().contains("retry after 2 s"), "{e}");
        assert!(from_status(401, None, "", "m", "MY_KEY")
            .to_string()
            .contains("`MY_KEY`"));
        assert!(from_status(500, None, "", "m", "KEY")
            .to_string()
            .contains("no details"));
    }

    #[test]
    fn a_404_says_whether_the_model_or_the_path_is_unknown() {
        let check = |base_url: &str, body: &str, want: ProviderError, says: &str| {
            let asked = Asked { base_url, ..ASKED };
            let e = from_status(404, None, body, &asked);
            assert_eq!(e, want, "{base_url} {body}");
            assert!(e.to_string().contains(says), "{e}");
            assert!(!e.is_retryable());
        };
        let model = || ProviderError::UnknownModel { model: "m".into() };
        // OpenAI, vLLM and Ollama name the model.
        check(
            "https://api.example.test/v1",
            r#"{"error":{"message":"The model `m` does not exist or you do not have access to it."}}"#,
            model(),
            "does not know the model `m`",
        );
        check(
            "http://localhost:8000/v1",
            r#"{"object":"error","message":"The model `m` does not exist.","type":"NotFoundError"}"#,
            model(),
            "`m`",
        );
        check(
            "http://localhost:11434/v1",
            r#"{"error":"model \"m\" not found, try pulling it first"}"#,
            model(),
            "`m`",
        );
        // A framework's or a web server's "not found" is the path.
        check(
            "http://127.0.0.1:8080",
            r#"{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}"#,
            ProviderError::UnknownPath {
                path: "/chat/completions".into(),
                missing_v1: true,
            },
            "it usually ends in `/v1`",
        );
        check(
            "https://proxy.example.test/openai/v1/",
            "404 page not found",
            ProviderError::UnknownPath {
                path: "/openai/v1/chat/completions".into(),
                missing_v1: false,
            },
            "no `/openai/v1/chat/completions`",
        );
        let e = from_status(404, None, "{\"detail\":\"Not Found\"}", &ASKED);
        assert!(!e.to_string().contains("usually ends"), "{e}");
    }

    #[test]
    fn answers_that_are_not_chat_completions_say_what_arrived() {
        let html = "<!DOCTYPE html>\n<html><head><TITLE>\n  Open WebUI\n</TITLE></head><body>app</body></html>";
        let bare = Asked {
            base_url: "http://localhost:3000",
            ..ASKED
        };
        let e = not_chat_completion(200, "text/html; charset=utf-8", html, &bare);
        let text = e.to_string();
        assert!(
            text.contains("HTTP 200 with an HTML page (`text/html; charset=utf-8`)"),
            "{text}"
        );
        assert!(text.contains("titled “Open WebUI”"), "{text}");
        assert!(text.contains("ends in `/v1`"), "{text}");
        assert!(e.is_retryable() && e.retry_once() && !e.counts_against_model());

        let e = not_chat_completion(200, "text/plain", "Hello\n\u{1b}[31mworld  ", &ASKED);
        let text = e.to_string();
        assert!(text.contains("with plain text (`text/plain`)"), "{text}");
        assert!(text.contains("(Hello [31mworld)"), "{text}");
        assert!(!text.contains("usually ends"), "{text}");
        let long = "x".repeat(500);
        let e = not_chat_completion(200, "", &long, &ASKED);
        assert!(e.to_string().contains("no content type"), "{e}");
        assert!(e.to_string().chars().count() < 400, "{e}");
        let e = not_chat_completion(200, "application/json", r#"{"status":"ok"}"#, &ASKED);
        assert!(
            e.to_string().contains("JSON that is not a chat completion"),
            "{e}"
        );

        assert!(ProviderError::EmptyStream.retry_once());
        assert!(!ProviderError::EmptyStream.counts_against_model());
        assert!(ProviderError::StreamReset.counts_against_model());
        assert!(!ProviderError::StreamReset.retry_once());
        assert!(ProviderError::EmptyStream.to_string().contains("context"));
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "x".repeat(5000);
        assert!(body_message(&long, 400).chars().count() <= MAX_MESSAGE_CHARS + 1);
    }
}
