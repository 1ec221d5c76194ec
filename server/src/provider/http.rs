//! HTTP transport: the pooled client, base URL checks, and the one place the API key is attached.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION};

use super::error::{self, ProviderError};

/// Largest error or non-streaming body we read.
pub(crate) const MAX_BODY: usize = 8 << 20;

/// The API key. Its `Debug` prints `***` and it has no `Display`, so it cannot leak by accident.
#[derive(Clone)]
pub(crate) struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl ApiKey {
    /// Reads the key from `env` at request time, so a missing key names its variable.
    pub(crate) fn from_env(env: &str) -> Result<ApiKey, ProviderError> {
        match std::env::var(env) {
            Ok(v) if !v.trim().is_empty() => {
                let key = v.trim().to_owned();
                // From now on the log layer scrubs it from every line, whatever logged it.
                crate::logging::register_secret(&crate::logging::Secret::new(key.clone()));
                Ok(ApiKey(key))
            }
            _ => Err(ProviderError::MissingKey {
                env: env.to_owned(),
            }),
        }
    }

    /// Replaces the key wherever a provider echoed it back in `text`.
    pub(crate) fn redact(&self, text: String) -> String {
        if self.scrubs() && text.contains(&self.0) {
            crate::logging::redact_key(&text, &self.0)
        } else {
            text
        }
    }

    /// A scrubber for text that arrives in pieces (the deltas of a stream).
    pub(crate) fn scrubber(&self) -> KeyScrubber<'_> {
        KeyScrubber {
            key: self.scrubs().then_some(self.0.as_str()),
            held: String::new(),
        }
    }

    /// A key of a few characters would match ordinary words: only longer ones are scrubbed.
    fn scrubs(&self) -> bool {
        self.0.len() >= 4
    }
}

/// What the key is replaced with: the log's mask.
const REDACTED: &str = crate::logging::MASK;

/// Scrubs the key from text that arrives in pieces. A key split across pieces is replaced too:
/// the end of what arrived that could be the start of the key is held back until the next piece
/// (or the end of the text) shows whether it is. The pieces it returns, joined, are the whole
/// text with every occurrence of the key replaced.
pub(crate) struct KeyScrubber<'a> {
    /// `None` when the key is too short to scrub.
    key: Option<&'a str>,
    held: String,
}

impl KeyScrubber<'_> {
    /// Takes the next piece and returns what can be shown of the text so far (maybe nothing).
    pub(crate) fn push(&mut self, piece: &str) -> String {
        let Some(key) = self.key else {
            return piece.to_owned();
        };
        self.held.push_str(piece);
        let text = std::mem::take(&mut self.held);
        let text = if text.contains(key) {
            text.replace(key, REDACTED)
        } else {
            text
        };
        // The longest end of `text` that is a proper start of the key waits for more.
        let longest = (key.len() - 1).min(text.len());
        let keep = (1..=longest)
            .rev()
            .find(|&n| {
                let at = text.len() - n;
                text.is_char_boundary(at) && key.starts_with(&text[at..])
            })
            .unwrap_or(0);
        let (shown, held) = text.split_at(text.len() - keep);
        self.held = held.to_owned();
        shown.to_owned()
    }

    /// The text ended: what was held back is not the key, so it can be shown.
    pub(crate) fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Attaches `Authorization: Bearer <key>`: the only code that puts the key on the wire.
pub(crate) fn authorized(
    builder: reqwest::RequestBuilder,
    key: &ApiKey,
    env: &str,
) -> Result<reqwest::RequestBuilder, ProviderError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", key.0)).map_err(|_| {
        ProviderError::InvalidKey {
            env: env.to_owned(),
        }
    })?;
    // Keeps the value out of HTTP/2 header compression tables and out of reqwest's Debug.
    value.set_sensitive(true);
    Ok(builder.header(AUTHORIZATION, value))
}

/// The pooled client shared by every request of a `Provider`: keep-alive connections,
/// HTTP/2 when the server offers it (with adaptive flow control), no Nagle delay, and no
/// redirects (the key must only go to `base_url`).
pub(crate) fn client() -> Result<reqwest::Client, ProviderError> {
    reqwest::Client::builder()
        .user_agent(concat!("codetier/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(300))
        .pool_max_idle_per_host(32)
        .tcp_nodelay(true)
        .tcp_keepalive(Duration::from_secs(30))
        .http2_adaptive_window(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .http2_keep_alive_timeout(Duration::from_secs(10))
        .http2_keep_alive_while_idle(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ProviderError::Connect {
            message: format!("cannot build the HTTP client: {e}"),
        })
}

/// The pooled client, built on a thread of its own from the moment the provider exists, so
/// building it (TLS roots, connector) is off `initialize`'s path; the first request that
/// needs it before it is ready waits for it.
#[derive(Clone)]
pub(crate) struct LazyClient(Arc<OnceLock<Result<reqwest::Client, ProviderError>>>);

impl LazyClient {
    pub(crate) fn start() -> LazyClient {
        let cell = Arc::new(OnceLock::new());
        let building = Arc::clone(&cell);
        let spawned = std::thread::Builder::new()
            .name("codetier-http-client".into())
            .spawn(move || {
                building.get_or_init(client);
            });
        if spawned.is_err() {
            tracing::debug!("the HTTP client is built on its first use");
        }
        LazyClient(cell)
    }

    /// The client, waiting for it to be built if needed.
    pub(crate) fn get(&self) -> Result<&reqwest::Client, ProviderError> {
        self.0.get_or_init(client).as_ref().map_err(Clone::clone)
    }
}

/// The base URL checked by the configuration's one rule (`config::check_base_url`), as a
/// provider error.
pub(crate) fn check_base_url(url: &str) -> Result<String, ProviderError> {
    crate::config::check_base_url(url).map_err(|e| match e {
        crate::config::BaseUrlError::Insecure(url) => ProviderError::InsecureUrl { url },
        crate::config::BaseUrlError::Bad(message) => ProviderError::BadUrl {
            url: url.to_owned(),
            message,
        },
    })
}

pub(crate) use crate::config::is_loopback_url;

/// Turns a transport error into ours, without the URL (it is in the configuration already).
pub(crate) fn transport_error(e: reqwest::Error, what: &str) -> ProviderError {
    let e = e.without_url();
    if e.is_connect() && e.is_timeout() {
        ProviderError::Timeout {
            what: "a connection to the provider".to_owned(),
        }
    } else if e.is_timeout() {
        ProviderError::Timeout {
            what: what.to_owned(),
        }
    } else {
        ProviderError::Connect {
            message: error::truncate(&chain(&e)),
        }
    }
}

/// The error and its sources in one line ("error sending request: connection refused").
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Reads a body up to `MAX_BODY` bytes, as text.
pub(crate) async fn read_capped(mut resp: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_BODY.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_read_from_the_environment_is_scrubbed_from_logs() {
        const ENV: &str = "CODETIER_TEST_KEY_SCRUBBED_FROM_LOGS";
        const KEY: &str = "sk-read-at-request-time-4b9f";
        // A variable no other test reads.
        std::env::set_var(ENV, format!(" {KEY}\n"));
        let key = ApiKey::from_env(ENV).expect("key present");
        assert_eq!(key.0, KEY);
        let line = format!("upstream said: bad key {KEY}");
        let scrubbed = crate::logging::scrub(&line).expect("the key is known to the log layer");
        assert!(!scrubbed.contains(KEY), "{scrubbed}");
    }

    #[test]
    fn base_urls() {
        let ok = |u: &str| check_base_url(u).unwrap_or_else(|e| panic!("{u}: {e}"));
        assert_eq!(
            ok("https://global-apis.com/v1/"),
            "https://global-apis.com/v1"
        );
        ok("http://127.0.0.1:8080/v1");
        ok("http://127.3.4.5/v1");
        ok("http://localhost:11434/v1");
        ok("http://[::1]:8000/v1");
        let err = |u: &str| check_base_url(u).expect_err(u);
        assert!(matches!(
            err("http://example.com/v1"),
            ProviderError::InsecureUrl { .. }
        ));
        assert!(matches!(
            err("http://10.0.0.1/v1"),
            ProviderError::InsecureUrl { .. }
        ));
        assert!(matches!(
            err("http://localhost.evil.com/v1"),
            ProviderError::InsecureUrl { .. }
        ));
        assert!(matches!(err("ftp://x/v1"), ProviderError::BadUrl { .. }));
        assert!(matches!(err("not a url"), ProviderError::BadUrl { .. }));
        assert!(matches!(
            err("https://u:p@x/v1"),
            ProviderError::BadUrl { .. }
        ));
    }

    /// Pushes `pieces` through a scrubber for `key` and returns the shown pieces, flush included.
    fn scrub_pieces(key: &str, pieces: &[&str]) -> Vec<String> {
        let key = ApiKey(key.into());
        let mut scrubber = key.scrubber();
        let mut shown: Vec<String> = pieces.iter().map(|p| scrubber.push(p)).collect();
        shown.push(scrubber.flush());
        shown
    }

    #[test]
    fn a_key_split_across_pieces_is_scrubbed() {
        const KEY: &str = "sk-split-9f2c";
        let check = |pieces: &[&str], want: &str| {
            let shown = scrub_pieces(KEY, pieces);
            assert_eq!(shown.concat(), want, "{pieces:?} showed {shown:?}");
            assert!(
                shown.iter().all(|p| !p.contains(KEY)),
                "{pieces:?}: {shown:?}"
            );
        };
        check(&["the key is sk-split-9f2c."], "the key is ***.");
        check(&["the key is sk-sp", "lit-9f2c."], "the key is ***.");
        check(&["s", "k", "-", "split-9f", "2", "c", "!"], "***!");
        check(&["sk-split-9f2csk-split", "-9f2c"], "******");
        // A start of the key that turns out not to be the key is shown unchanged.
        check(&["risk-spl", "endid"], "risk-splendid");
        check(&["ends with sk-spl"], "ends with sk-spl");
        check(&["é sk-", "split-9f2c ü"], "é *** ü");
        // Every split point of a text holding the key twice gives the same result.
        let text = format!("a {KEY} b {KEY}");
        for at in 1..text.len() {
            if text.is_char_boundary(at) {
                check(&[&text[..at], &text[at..]], "a *** b ***");
            }
        }
    }

    #[test]
    fn held_back_text_is_as_short_as_the_key_allows() {
        let key = ApiKey("sk-abcdef".into());
        let mut scrubber = key.scrubber();
        assert_eq!(scrubber.push("plain words "), "plain words ");
        assert_eq!(scrubber.push("ask"), "a");
        assert_eq!(scrubber.push("-x"), "sk-x");
        // A key too short to scrub passes everything through at once.
        let short = ApiKey("abc".into());
        let mut scrubber = short.scrubber();
        assert_eq!(scrubber.push("ab"), "ab");
        assert_eq!(scrubber.flush(), "");
    }

    #[test]
    fn key_debug_is_hidden() {
        let key = ApiKey("sk-secret-123".into());
        assert_eq!(format!("{key:?}"), "ApiKey(***)");
        assert_eq!(
            key.redact("bad key sk-secret-123 given".into()),
            "bad key *** given"
        );
    }
}
