//! What the fake provider does with each request: the serde `Script` and its rules.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The whole behaviour of a fake provider. JSON example:
/// `{"default": {"ttft": {"kind": "fixed", "ms": 50}}, "rules": [{"model": "m",
/// "requests": {"first": 2}, "behavior": {"fault": {"kind": "status", "status": 503}}}]}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Script {
    /// Used when no rule matches.
    pub default: Behavior,
    /// Tried in order; the first that matches decides.
    pub rules: Vec<Rule>,
    /// Ids listed by `GET /v1/models`; empty means just `fake-model`.
    pub models: Vec<String>,
    /// When set, requests without `Authorization: Bearer <this>` get 401.
    pub expected_key: Option<String>,
}

/// A behaviour for some requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rule {
    /// Only requests for this model (and then `requests` counts that model's requests only).
    pub model: Option<String>,
    /// Which requests, 0-based; all when absent.
    pub requests: Option<Requests>,
    pub behavior: Behavior,
}

/// Request numbers a rule applies to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Requests {
    /// The first n requests.
    First(usize),
    /// Requests n, n+1, ...
    From(usize),
    /// Exactly these requests.
    Index(Vec<usize>),
}

/// How one request is answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behavior {
    /// Delay before the first token (status faults are answered after it too).
    pub ttft: Latency,
    /// Pace of tokens after the first; as fast as possible when absent.
    pub tokens_per_second: Option<f64>,
    pub answer: Answer,
    /// Streamed as `reasoning_content` before the answer.
    pub reasoning: Option<String>,
    /// Send usage (in the last chunk when the request asked with `stream_options`).
    pub usage: bool,
    /// Send `: keep-alive` comments this often while waiting for the first token.
    pub keep_alive_ms: Option<u64>,
    pub line_ending: LineEnding,
    /// Write the stream in pieces of this many bytes, pausing between them.
    pub trickle: Option<Trickle>,
    /// Stream the answer and reasoning in pieces of this many characters instead of word by
    /// word (so a word can be split across deltas).
    pub token_chars: Option<usize>,
    /// Replace `{key}` in the answer and the reasoning with the bearer token the request
    /// carried: a provider that echoes the API key back.
    pub echo_key: bool,
    /// The `finish_reason` of the answer (`length`: cut off at `max_tokens`); `stop` when absent.
    pub finish_reason: Option<String>,
    /// Answer 422 when the body has `stream_options`.
    pub reject_stream_options: bool,
    /// Answer 400 naming the field when the body has `thinking`.
    pub reject_thinking: bool,
    pub fault: Option<Fault>,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            ttft: Latency::default(),
            tokens_per_second: None,
            answer: Answer::default(),
            reasoning: None,
            usage: true,
            keep_alive_ms: None,
            line_ending: LineEnding::Lf,
            trickle: None,
            token_chars: None,
            echo_key: false,
            finish_reason: None,
            reject_stream_options: false,
            reject_thinking: false,
            fault: None,
        }
    }
}

impl Behavior {
    /// Answers normally after a fixed first-token delay.
    pub fn ttft_ms(ms: u64) -> Behavior {
        Behavior {
            ttft: Latency::Fixed { ms },
            ..Behavior::default()
        }
    }

    /// Fails with `fault`.
    pub fn failing(fault: Fault) -> Behavior {
        Behavior {
            fault: Some(fault),
            ..Behavior::default()
        }
    }

    /// Answers with an HTTP error status (and a `Retry-After` header when given).
    pub fn status(status: u16, retry_after: Option<&str>) -> Behavior {
        Behavior::failing(Fault::status(status, retry_after))
    }
}

/// The delay before the first token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Latency {
    Fixed {
        ms: u64,
    },
    /// Log-normal with the given median and 99th percentile; request `i` always draws the same
    /// value for the same seed, whatever the order requests arrive in.
    HeavyTail {
        p50_ms: f64,
        p99_ms: f64,
        seed: u64,
        cap_ms: Option<u64>,
    },
}

impl Default for Latency {
    fn default() -> Self {
        Latency::Fixed { ms: 0 }
    }
}

impl Latency {
    /// The delay for request number `index`.
    pub fn sample(&self, index: u64) -> Duration {
        match *self {
            Latency::Fixed { ms } => Duration::from_millis(ms),
            Latency::HeavyTail {
                p50_ms,
                p99_ms,
                seed,
                cap_ms,
            } => {
                // z of the 99th percentile of the standard normal.
                const Z99: f64 = 2.326_347_874;
                let mu = p50_ms.max(1e-3).ln();
                let sigma = ((p99_ms.max(p50_ms) / p50_ms.max(1e-3)).ln() / Z99).max(0.0);
                let mut rng = rand::rngs::StdRng::seed_from_u64(
                    seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                let u1: f64 = 1.0 - rng.random::<f64>(); // in (0, 1]
                let u2: f64 = rng.random::<f64>();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let ms = (mu + sigma * z).exp();
                let ms = cap_ms.map_or(ms, |cap| ms.min(cap as f64));
                Duration::from_secs_f64(ms / 1000.0)
            }
        }
    }
}

/// What the model says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Text(String),
    /// The last user message, repeated.
    Echo,
    /// What follows the cursor in this document, as a model that knows the file would complete
    /// it: the text after the request's text before the cursor (the chat prompt's part before
    /// `<CURSOR>`, after its `File:` header, or the fill-in-the-middle `prompt`), up to `lines`
    /// line breaks; empty when that text is not in the document.
    Continue {
        text: String,
        lines: usize,
    },
}

impl Default for Answer {
    fn default() -> Self {
        Answer::Text("Hello from the fake provider.".to_owned())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineEnding {
    #[default]
    Lf,
    Crlf,
    Cr,
}

impl LineEnding {
    pub fn as_str(self) -> &'static str {
        match self {
            LineEnding::Lf => "\n",
            LineEnding::Crlf => "\r\n",
            LineEnding::Cr => "\r",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trickle {
    pub bytes: usize,
    pub interval_ms: u64,
}

/// A way to fail. `after_tokens` counts answer tokens sent before the fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// An HTTP error status; `body` defaults to an OpenAI-style error JSON.
    Status {
        status: u16,
        body: Option<String>,
        retry_after: Option<String>,
    },
    /// `data: {"error": {...}}` inside a 200 stream.
    ErrorAfterOk {
        after_tokens: usize,
        message: String,
    },
    /// Bytes that are not UTF-8.
    MalformedSse { after_tokens: usize },
    /// A `data:` line of this many bytes, never terminated.
    OversizedLine { after_tokens: usize, bytes: usize },
    /// A `data:` payload (or whole answer) that is not JSON.
    MalformedJson { after_tokens: usize },
    /// Abort the connection.
    Reset { after_tokens: usize },
    /// End the body without `[DONE]`: after n tokens, or after everything else when absent.
    NoDone { after_tokens: Option<usize> },
    /// Never answer.
    Hang,
    /// Answer with exactly this status, content type and body (an HTML page with 200, an empty
    /// `text/event-stream`, a web server's 404).
    Page {
        status: u16,
        content_type: String,
        body: String,
    },
}

impl Fault {
    /// A raw answer: `status`, `content_type` and `body` as given.
    pub fn page(status: u16, content_type: &str, body: &str) -> Fault {
        Fault::Page {
            status,
            content_type: content_type.to_owned(),
            body: body.to_owned(),
        }
    }

    /// An HTTP error status, with a `Retry-After` header when given.
    pub fn status(status: u16, retry_after: Option<&str>) -> Fault {
        Fault::Status {
            status,
            body: None,
            retry_after: retry_after.map(str::to_owned),
        }
    }
}

impl Script {
    /// A script whose every request gets `behavior`.
    pub fn always(behavior: Behavior) -> Script {
        Script {
            default: behavior,
            ..Script::default()
        }
    }

    /// The behaviour for a request: `index` counts all requests, `model_index` this model's.
    pub fn behavior_for(&self, model: &str, index: usize, model_index: usize) -> &Behavior {
        self.rules
            .iter()
            .find(|rule| {
                let n = match &rule.model {
                    Some(m) if m != model => return false,
                    Some(_) => model_index,
                    None => index,
                };
                match &rule.requests {
                    None => true,
                    Some(Requests::First(k)) => n < *k,
                    Some(Requests::From(k)) => n >= *k,
                    Some(Requests::Index(list)) => list.contains(&n),
                }
            })
            .map_or(&self.default, |rule| &rule.behavior)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_by_model_and_number() {
        let script: Script = serde_json::from_str(
            r#"{"rules": [
                {"model": "a", "requests": {"first": 2}, "behavior": {"fault": {"kind": "status", "status": 503}}},
                {"requests": {"index": [5]}, "behavior": {"answer": "echo"}}
            ]}"#,
        )
        .expect("script parses");
        let fault = |m: &str, i, mi| script.behavior_for(m, i, mi).fault.is_some();
        assert!(fault("a", 7, 0) && fault("a", 8, 1) && !fault("a", 9, 2) && !fault("b", 0, 0));
        assert_eq!(script.behavior_for("b", 5, 0).answer, Answer::Echo);
        assert!(serde_json::from_str::<Script>(r#"{"defualt": {}}"#).is_err());
    }

    #[test]
    fn heavy_tail_quantiles() {
        let l = Latency::HeavyTail {
            p50_ms: 600.0,
            p99_ms: 8000.0,
            seed: 7,
            cap_ms: None,
        };
        let mut v: Vec<f64> = (0..4000)
            .map(|i| l.sample(i).as_secs_f64() * 1000.0)
            .collect();
        v.sort_by(f64::total_cmp);
        let (p50, p99) = (v[2000], v[3960]);
        assert!((450.0..800.0).contains(&p50), "p50 {p50}");
        assert!((5000.0..13000.0).contains(&p99), "p99 {p99}");
        assert_eq!(l.sample(3), l.sample(3));
    }
}
