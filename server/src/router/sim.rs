//! In-process latency simulation of the router (NOT over HTTP): heavy-tailed upstream, 500 flash asks.
//!
//! This is a benchmark, not a pass/fail test, so it is `#[ignore]`d. Run it with
//! `cargo test -p codetier --lib router::sim -- --ignored --nocapture --test-threads 1`.
//! The over-HTTP version against the fake provider lives in the `tests` crate.
//!
//! Time to first token is lognormal with p50 600 ms and p99 8 s, drawn from a seeded generator,
//! then 40 tokens stream at 200 tokens/s. The workspace's tokio has no `test-util` (no paused
//! clock), so real sleeps are scaled down by `SCALE`; every number printed is scaled back up.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use super::tests::FLASH;
use super::*;
use crate::provider::{ChatRequest, Completion, ProviderError, StreamEvent, TokenUsage, Upstream};

/// Real time per simulated time: one simulated second takes 500 ms. Smaller scales let timer
/// resolution and scheduling lag (amplified by 1/SCALE) distort the tail.
const SCALE: f64 = 0.5;
const ASKS: usize = 500;
const CONCURRENCY: usize = 50;
const TTFT_P50_MS: f64 = 600.0;
const TTFT_P99_MS: f64 = 8000.0;
const TOKENS: u64 = 40;
const TOKENS_PER_SEC: f64 = 200.0;
/// Tokens arrive in chunks, so the scaled gaps stay well above the 1 ms timer resolution.
const CHUNK: u64 = 5;
/// z of the 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_348;

/// Simulated milliseconds as real time.
fn sim(ms: f64) -> Duration {
    Duration::from_secs_f64(ms * SCALE / 1000.0)
}

/// Real time as simulated milliseconds.
fn unsim(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0 / SCALE
}

struct HeavyTail {
    rng: Mutex<StdRng>,
    calls: AtomicU32,
}

impl HeavyTail {
    fn new(seed: u64) -> Self {
        HeavyTail {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            calls: AtomicU32::new(0),
        }
    }

    /// Lognormal draw (Box-Muller) with the configured median and 99th percentile.
    fn ttft_ms(&self) -> f64 {
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let sigma = (TTFT_P99_MS / TTFT_P50_MS).ln() / Z99;
        TTFT_P50_MS * (sigma * z).exp()
    }
}

impl Upstream for HeavyTail {
    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest,
        events: Option<&'a UnboundedSender<StreamEvent>>,
    ) -> BoxFuture<'a, Result<Completion, ProviderError>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let ttft = sim(self.ttft_ms());
        Box::pin(async move {
            let sent = Instant::now();
            tokio::time::sleep(ttft).await;
            let gap = sim(1000.0 * CHUNK as f64 / TOKENS_PER_SEC);
            let mut text = String::new();
            for i in 0..TOKENS / CHUNK {
                if i > 0 {
                    tokio::time::sleep(gap).await;
                }
                let chunk = "tok ".repeat(CHUNK as usize);
                if let Some(events) = events {
                    let _ = events.send(StreamEvent::Content(chunk.clone()));
                }
                text.push_str(&chunk);
            }
            Ok(Completion {
                text,
                reasoning: String::new(),
                usage: Some(TokenUsage {
                    input_tokens: 200,
                    output_tokens: TOKENS,
                    estimated: false,
                }),
                finish_reason: Some("stop".into()),
                model: req.model.clone(),
                ttft: Some(ttft),
                elapsed: sent.elapsed(),
            })
        })
    }
}

struct Outcome {
    p50: f64,
    p90: f64,
    p99: f64,
    over_budget: f64,
    extra: f64,
    final_hedge_delay_ms: f64,
}

/// Runs `ASKS` flash asks with the given hedge settings (in simulated ms; `None` = no hedging).
async fn run(hedge: Option<(u64, u64)>, seed: u64) -> Outcome {
    let budget_ms = 2500.0;
    let scaled = |ms: f64| (ms * SCALE).round() as u64;
    let (min, max) = hedge.unwrap_or((150, 1500));
    let defaults = Config::default();
    let config = Config {
        latency_budget_ms: scaled(budget_ms),
        hedge: crate::config::HedgeConfig {
            enabled: hedge.is_some(),
            min_delay_ms: scaled(min as f64),
            max_delay_ms: scaled(max as f64),
        },
        // No faults are simulated, so the breaker must not trip on budget misses and skew the run.
        breaker: crate::config::BreakerConfig {
            failure_threshold: u32::MAX,
            ..defaults.breaker.clone()
        },
        ..defaults
    };
    let upstream = Arc::new(HeavyTail::new(seed));
    let router = Router::new(
        Arc::new(config),
        Arc::clone(&upstream),
        Arc::new(Ledger::new()),
    );
    let router = &router;
    let results: Vec<(Duration, bool)> = futures::stream::iter(0..ASKS)
        .map(|i| async move {
            let asked = Instant::now();
            let req = RouteRequest {
                tier: "flash".into(),
                messages: vec![Message {
                    role: crate::provider::Role::User,
                    content: format!("ask {i}"),
                }],
                max_tokens: None,
            };
            let ok = router.ask(req, None).await.is_ok();
            (asked.elapsed(), ok)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut latencies: Vec<f64> = results.iter().map(|(d, _)| unsim(*d)).collect();
    latencies.sort_by(f64::total_cmp);
    let q = |p: f64| latencies[((p * ASKS as f64).ceil() as usize).clamp(1, ASKS) - 1];
    let missed = results.iter().filter(|(_, ok)| !ok).count();
    let calls = upstream.calls.load(Ordering::Relaxed) as f64;
    let probe = Ask {
        tier_name: "flash",
        tier: &Config::default().tiers["flash"].clone(),
        config: &router
            .config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
        messages: &[],
        max_tokens: 1,
        budget: sim(budget_ms),
        deadline: Instant::now(),
        started: Instant::now(),
        events: None,
        requests: AtomicU32::new(0),
        model: Mutex::new(None),
        attempt_failed: AtomicBool::new(false),
        rate_limited: AtomicBool::new(false),
    };
    Outcome {
        p50: q(0.50),
        p90: q(0.90),
        p99: q(0.99),
        over_budget: missed as f64 / ASKS as f64,
        extra: calls / ASKS as f64 - 1.0,
        final_hedge_delay_ms: unsim(router.hedge_delay(FLASH, &probe)),
    }
}

#[tokio::test]
#[ignore = "benchmark: prints a latency table, asserts nothing about time"]
async fn latency_simulation() {
    let variants: [(&str, Option<(u64, u64)>); 4] = [
        ("no hedging", None),
        ("hedge [150, 1000]", Some((150, 1000))),
        ("hedge [150, 1500] (default)", Some((150, 1500))),
        ("hedge [150, 2000]", Some((150, 2000))),
    ];
    let mut out = std::io::stderr().lock();
    let _ = writeln!(
        out,
        "in-process simulation: {ASKS} flash asks, {CONCURRENCY} at a time, budget 2500 ms, TTFT lognormal p50 {TTFT_P50_MS} ms p99 {TTFT_P99_MS} ms, {TOKENS} tokens at {TOKENS_PER_SEC}/s, time scale {SCALE}"
    );
    let _ = writeln!(
        out,
        "{:<28} {:>8} {:>8} {:>8} {:>12} {:>8} {:>14}",
        "variant", "p50 ms", "p90 ms", "p99 ms", "over budget", "extra", "hedge delay ms"
    );
    for (name, hedge) in variants {
        let mut rows = Vec::new();
        for seed in [1, 2] {
            rows.push(run(hedge, seed).await);
        }
        let mean = |f: fn(&Outcome) -> f64| rows.iter().map(f).sum::<f64>() / rows.len() as f64;
        let _ = writeln!(
            out,
            "{:<28} {:>8.0} {:>8.0} {:>8.0} {:>11.1}% {:>7.1}% {:>14.0}",
            name,
            mean(|o| o.p50),
            mean(|o| o.p90),
            mean(|o| o.p99),
            100.0 * mean(|o| o.over_budget),
            100.0 * mean(|o| o.extra),
            mean(|o| o.final_hedge_delay_ms),
        );
    }
}

/// Router overhead per ask against an upstream that answers at once, compared with calling it directly.
#[tokio::test]
#[ignore = "benchmark: prints the router's overhead, asserts nothing about time"]
async fn router_overhead() {
    struct Instant0;
    impl Upstream for Instant0 {
        fn chat<'a>(
            &'a self,
            req: &'a ChatRequest,
            events: Option<&'a UnboundedSender<StreamEvent>>,
        ) -> BoxFuture<'a, Result<Completion, ProviderError>> {
            Box::pin(async move {
                if let Some(events) = events {
                    let _ = events.send(StreamEvent::Content("hello".into()));
                }
                Ok(Completion {
                    text: "hello".into(),
                    reasoning: String::new(),
                    usage: Some(TokenUsage {
                        input_tokens: 1,
                        output_tokens: 1,
                        estimated: false,
                    }),
                    finish_reason: None,
                    model: req.model.clone(),
                    ttft: None,
                    elapsed: Duration::ZERO,
                })
            })
        }
    }
    const N: u32 = 20_000;
    let upstream = Arc::new(Instant0);
    let router = Router::new(
        Arc::new(Config::default()),
        Arc::clone(&upstream),
        Arc::new(Ledger::new()),
    );
    let messages = vec![Message {
        role: crate::provider::Role::User,
        content: "x".repeat(2000),
    }];
    let req = ChatRequest {
        model: FLASH.into(),
        messages: messages.clone(),
        max_tokens: 1024,
        extra_body: Default::default(),
        stream: true,
    };
    let started = Instant::now();
    for _ in 0..N {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let _ = upstream.chat(&req, Some(&tx)).await;
    }
    let direct = started.elapsed() / N;
    let started = Instant::now();
    for _ in 0..N {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let ask = RouteRequest {
            tier: "flash".into(),
            messages: messages.clone(),
            max_tokens: None,
        };
        let _ = router.ask(ask, Some(tx)).await;
    }
    let routed = started.elapsed() / N;
    let _ = writeln!(
        std::io::stderr(),
        "router overhead (in-process, debug build unless --release): direct {direct:?}/call, routed {routed:?}/ask, overhead {:?}",
        routed.saturating_sub(direct)
    );
}
