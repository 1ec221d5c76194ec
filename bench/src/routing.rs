//! Router benchmarks: its overhead per request, and the latency budget against a heavy-tailed provider.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use codetier::config::{BreakerConfig, Config, HedgeConfig, RetryConfig};
use codetier::provider::{
    self, ChatRequest, Completion, Endpoint, Message, Provider, ProviderError, Role, StreamEvent,
    TokenUsage, Upstream,
};
use codetier::router::{RouteError, RouteRequest, Router};
use codetier::usage::Ledger;
use codetier_tests::fake::{Answer, Behavior, FakeProvider, Latency, Requests, Rule, Script};
use futures::future::BoxFuture;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc::UnboundedSender;

use crate::report::{Report, Row, TailRow, Target};

const RATE_GROUP: &str = "Requests per action against a rate-limited server";
use crate::stats::{fmt_duration, quantile, Summary};
use crate::Ctx;

const GROUP: &str = "Router overhead";
const FLASH: &str = "deepseek-v4-flash";
/// The environment variable the bench's own `Provider` reads its (fake) key from.
pub const KEY_ENV: &str = "CODETIER_BENCH_KEY";

const TTFT_P50_MS: f64 = 600.0;
const TTFT_P99_MS: f64 = 8000.0;
const BUDGET_MS: f64 = 2500.0;
const ANSWER_TOKENS: usize = 40;
const TOKENS_PER_SEC: f64 = 200.0;
const CONCURRENCY: usize = 50;
/// z of the 99th and 90th percentiles of the standard normal distribution.
const Z99: f64 = 2.326_348;
const Z90: f64 = 1.281_552;

/// An upstream that answers at once, in process: what is left is the router's own work.
struct Immediate;

impl Upstream for Immediate {
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
                answer: provider::Answer {
                    text: "hello".into(),
                    usage: TokenUsage {
                        input_tokens: 1,
                        output_tokens: 1,
                        estimated: false,
                    },
                    model: req.model.clone(),
                    ..provider::Answer::default()
                },
                ttft: None,
                elapsed: Duration::ZERO,
            })
        })
    }
}

/// The fake provider listens on 127.0.0.1, where the router sends no hedge by default (a local
/// server runs one request at a time). In these benchmarks it stands in for a remote provider.
fn remote(mut config: Config) -> Config {
    config.hedge.loopback = true;
    config
}

fn messages(content: String) -> Vec<Message> {
    vec![Message {
        role: Role::User,
        content,
    }]
}

/// p50 of `router.ask` vs `upstream.chat` of the same request, alternating, against `upstream`.
async fn overhead<U: Upstream>(
    upstream: Arc<U>,
    n: usize,
    hedge: bool,
) -> anyhow::Result<(Summary, Summary)> {
    let mut config = Config::default();
    config.hedge.enabled = hedge;
    let flash = config.tiers.get("flash").context("no flash tier")?;
    let req = ChatRequest {
        model: flash.model.clone(),
        messages: messages("x".repeat(2000)),
        max_tokens: flash.max_tokens.unwrap_or(config.max_tokens),
        extra_body: flash.extra_body.clone(),
        stream: true,
        fim: None,
    };
    let router = Router::new(
        Arc::new(remote(config)),
        Arc::clone(&upstream),
        Arc::new(Ledger::new()),
    );
    let mut direct = Vec::with_capacity(n);
    let mut routed = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        // The first tenth warms connections and code paths and is not kept.
        let keep = i >= n / 10;
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let started = Instant::now();
        upstream
            .chat(&req, Some(&tx))
            .await
            .context("direct request")?;
        if keep {
            direct.push(started.elapsed());
        }
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let ask = RouteRequest {
            tier: "flash".into(),
            messages: req.messages.clone(),
            max_tokens: None,
            fim: None,
            action: None,
        };
        let started = Instant::now();
        router.ask(ask, Some(tx)).await.context("routed request")?;
        if keep {
            routed.push(started.elapsed());
        }
    }
    Ok((
        Summary::of(&direct).context("samples")?,
        Summary::of(&routed).context("samples")?,
    ))
}

/// The router's cost per request, in process and over HTTP to the fake provider.
pub fn router_overhead(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let (direct, routed) = ctx.rt.block_on(overhead(
        Arc::new(Immediate),
        ctx.scaled(20_000, 2_000),
        true,
    ))?;
    push_overhead(
        report,
        "in process, upstream answers at once",
        &direct,
        &routed,
    );

    let n = ctx.scaled(500, 100);
    for hedge in [true, false] {
        let fake = ctx.rt.block_on(FakeProvider::start(Script::default()))?;
        let provider = Provider::new(Endpoint {
            base_url: fake.base_url(),
            api_key_env: KEY_ENV.into(),
        })
        .context("provider for the fake")?;
        let (direct, routed) = ctx.rt.block_on(overhead(Arc::new(provider), n, hedge))?;
        let requests = fake.requests().len();
        ensure!(
            requests == 2 * (n + n / 10),
            "the fake provider saw {requests} requests, expected {}",
            2 * (n + n / 10)
        );
        let what = format!(
            "over HTTP to the fake (0 ms TTFT), hedging {}",
            if hedge { "on" } else { "off" }
        );
        push_overhead(report, &what, &direct, &routed);
    }
    report.note(
        "**Router overhead.** `Router::ask` on the flash tier (hedging on, default config) \
         against calling the same `Upstream` directly with the same request, alternating one \
         of each so drift hits both; the first tenth of the pairs is warm-up. In process the \
         upstream answers at once; over HTTP it is codetier's `Provider` (pooled reqwest \
         client, SSE) against the fake provider on 127.0.0.1 answering with no delay, on a \
         two-thread tokio runtime shared with the fake. Both ends set `TCP_NODELAY` (without \
         it on the fake's side, Nagle's algorithm met the client's 40 ms delayed ACK and most \
         requests took ~42 ms), so the over-HTTP rows are the loopback round trip, SSE parsing \
         and the router; the router's own cost is the difference of the medians.",
    );
    Ok(())
}

fn push_overhead(report: &mut Report, what: &str, direct: &Summary, routed: &Summary) {
    report.push(Row::timing(
        GROUP,
        format!("{what}: direct `Upstream::chat`"),
        direct,
        Target::None,
    ));
    report.push(Row::timing(
        GROUP,
        format!("{what}: through `Router::ask`"),
        routed,
        Target::None,
    ));
    report.push(Row::derived(
        GROUP,
        format!("{what}: router overhead (difference of the medians)"),
        routed.p50.saturating_sub(direct.p50),
        Target::P50Below(Duration::from_millis(1)),
    ));
}

/// How the fake provider's time to first token is drawn.
#[derive(Clone, Copy, Debug)]
enum TtftModel {
    /// Lognormal with p50 600 ms and p99 8 s.
    Lognormal,
    /// 98% fast (lognormal around 595 ms, σ 0.35), 2% stalls uniform in 6–10 s: the same p50 and p99.
    Bimodal,
}

impl TtftModel {
    fn name(self) -> &'static str {
        match self {
            TtftModel::Lognormal => "lognormal p50 600 ms, p99 8 s",
            TtftModel::Bimodal => "bimodal: 98% fast, 2% stall 6–10 s (p50 600 ms, p99 8 s)",
        }
    }
}

/// Simulated milliseconds of TTFT for request `index`, before scaling.
fn bimodal_ms(rng: &mut StdRng) -> f64 {
    const STALL_SHARE: f64 = 0.02;
    const FAST_SIGMA: f64 = 0.35;
    // Median of the fast part such that the mixture's median is 600 ms:
    // P(fast < m) = 0.5 / 0.98, whose z is 0.02558.
    let fast_median = TTFT_P50_MS * (-FAST_SIGMA * 0.025_58_f64).exp();
    if rng.random_bool(STALL_SHARE) {
        rng.random_range(6000.0..10_000.0)
    } else {
        fast_median * (FAST_SIGMA * normal(rng)).exp()
    }
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Everything one latency-budget run needs.
#[derive(Clone, Copy)]
struct TailSetup {
    asks: usize,
    /// Real time per simulated time.
    scale: f64,
    seed: u64,
}

/// The fake provider's script for a model: scaled TTFTs, 40 tokens at 200 tokens/s (scaled).
/// Returns it with the simulated TTFTs the first `asks` requests will get.
fn tail_script(model: TtftModel, setup: TailSetup) -> (Script, Vec<f64>) {
    let behavior = |ttft: Latency| Behavior {
        ttft,
        tokens_per_second: Some(TOKENS_PER_SEC / setup.scale),
        answer: Answer::Text("tok ".repeat(ANSWER_TOKENS)),
        ..Behavior::default()
    };
    match model {
        TtftModel::Lognormal => {
            let latency = Latency::HeavyTail {
                p50_ms: TTFT_P50_MS * setup.scale,
                p99_ms: TTFT_P99_MS * setup.scale,
                seed: setup.seed,
                cap_ms: None,
            };
            let drawn = (0..setup.asks as u64)
                .map(|i| latency.sample(i).as_secs_f64() * 1000.0 / setup.scale)
                .collect();
            (
                Script {
                    default: behavior(latency),
                    ..Script::default()
                },
                drawn,
            )
        }
        TtftModel::Bimodal => {
            // One rule per request number; hedges and retries take numbers too, so draw plenty.
            let mut rng = StdRng::seed_from_u64(setup.seed);
            let drawn: Vec<f64> = (0..setup.asks * 4).map(|_| bimodal_ms(&mut rng)).collect();
            let rules = drawn
                .iter()
                .enumerate()
                .map(|(i, ms)| Rule {
                    model: None,
                    requests: Some(Requests::Index(vec![i])),
                    behavior: behavior(Latency::Fixed {
                        ms: (ms * setup.scale).round() as u64,
                    }),
                })
                .collect();
            let script = Script {
                default: behavior(Latency::Fixed {
                    ms: (TTFT_P50_MS * setup.scale).round() as u64,
                }),
                rules,
                ..Script::default()
            };
            (script, drawn[..setup.asks].to_vec())
        }
    }
}

/// `asks` flash asks through a `Router<Provider>` against the fake provider, `CONCURRENCY` at a time.
async fn tail_run(model: TtftModel, hedge: bool, setup: TailSetup) -> anyhow::Result<TailRow> {
    let scaled = |ms: f64| (ms * setup.scale).round() as u64;
    let (script, _) = tail_script(model, setup);
    let fake = FakeProvider::start(script).await?;
    let defaults = Config::default();
    let config = Config {
        latency_budget_ms: scaled(BUDGET_MS),
        hedge: HedgeConfig {
            enabled: hedge,
            min_delay_ms: scaled(defaults.hedge.min_delay_ms as f64),
            max_delay_ms: scaled(defaults.hedge.max_delay_ms as f64),
            // Stands in for a remote provider (see `remote`).
            loopback: true,
        },
        retry: RetryConfig {
            base_delay_ms: scaled(defaults.retry.base_delay_ms as f64),
            ..defaults.retry.clone()
        },
        // No faults are scripted; budget misses must not open the breaker and move the tier
        // to its fallback model halfway through (the in-process simulation does the same).
        breaker: BreakerConfig {
            failure_threshold: u32::MAX,
            ..defaults.breaker.clone()
        },
        ..defaults
    };
    let provider = Provider::new(Endpoint {
        base_url: fake.base_url(),
        api_key_env: KEY_ENV.into(),
    })?;
    let router = Router::new(
        Arc::new(remote(config)),
        Arc::new(provider),
        Arc::new(Ledger::new()),
    );
    let router = &router;
    let results: Vec<(Duration, Result<(), RouteError>)> = futures::stream::iter(0..setup.asks)
        .map(|i| async move {
            let req = RouteRequest {
                tier: "flash".into(),
                messages: messages(format!("ask {i}")),
                max_tokens: None,
                fim: None,
                action: None,
            };
            let started = Instant::now();
            let result = router.ask(req, None).await.map(|_| ());
            (started.elapsed(), result)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let unscale = |d: Duration| Duration::from_secs_f64(d.as_secs_f64() / setup.scale);
    let mut latencies: Vec<Duration> = results.iter().map(|(d, _)| unscale(*d)).collect();
    latencies.sort_unstable();
    let over = results
        .iter()
        .filter(|(_, r)| matches!(r, Err(RouteError::BudgetExceeded { .. })))
        .count();
    let other: Vec<String> = results
        .iter()
        .filter_map(|(_, r)| match r {
            Err(RouteError::BudgetExceeded { .. }) | Ok(()) => None,
            Err(e) => Some(e.to_string()),
        })
        .collect();
    if let Some(first) = other.first() {
        eprintln!("  {} asks failed otherwise, e.g.: {first}", other.len());
    }
    let requests = fake.requests().len();
    let p90_at_end = router
        .stats(FLASH)
        .and_then(|s| s.ttft_p90_ms)
        .map_or("–".to_owned(), |ms| format!("{:.0} ms", ms / setup.scale));
    Ok(TailRow {
        model: model.name().to_owned(),
        hedging: if hedge {
            format!(
                "on (default: delay = observed TTFT p90 clamped to [{}, {}] ms, never below the observed p88)",
                (scaled(defaults_hedge().0) as f64 / setup.scale).round(),
                (scaled(defaults_hedge().1) as f64 / setup.scale).round()
            )
        } else {
            "off".to_owned()
        },
        asks: setup.asks,
        p50: quantile(&latencies, 0.50),
        p90: quantile(&latencies, 0.90),
        p99: quantile(&latencies, 0.99),
        over_budget: over as f64 / setup.asks as f64,
        failed_other: other.len(),
        extra: requests as f64 / setup.asks as f64 - 1.0,
        hedge_delay: p90_at_end,
    })
}

fn defaults_hedge() -> (f64, f64) {
    let h = Config::default().hedge;
    (h.min_delay_ms as f64, h.max_delay_ms as f64)
}

/// Simulated delay of the rate-limited server's 429.
const SLOW_429_MS: f64 = 5000.0;
/// Its `Retry-After`, seconds.
const RETRY_AFTER_S: f64 = 1.0;
/// The CLI's budget per answer (`cli::setup::BATCH_BUDGET_MS`).
const CLI_BUDGET_MS: f64 = 120_000.0;

/// What one action against the rate-limited server cost.
struct RateLimitedAction {
    requests: usize,
    breaker_open_after: bool,
}

/// One action (one ask, with the CLI's budget and the default retries, hedging and breaker)
/// against a server that answers every request with a 429 after `SLOW_429_MS`, by a router
/// that first saw `warm_up` fast answers (0: a fresh process).
async fn rate_limited_action(warm_up: usize, scale: f64) -> anyhow::Result<RateLimitedAction> {
    let scaled = |ms: f64| (ms * scale).round() as u64;
    let fake = FakeProvider::start(Script::default()).await?;
    let defaults = Config::default();
    let config = Config {
        latency_budget_ms: scaled(CLI_BUDGET_MS),
        hedge: HedgeConfig {
            enabled: true,
            min_delay_ms: scaled(defaults.hedge.min_delay_ms as f64),
            max_delay_ms: scaled(defaults.hedge.max_delay_ms as f64),
            // Stands in for a remote provider (see `remote`).
            loopback: true,
        },
        retry: RetryConfig {
            base_delay_ms: scaled(defaults.retry.base_delay_ms as f64),
            ..defaults.retry.clone()
        },
        breaker: defaults.breaker.clone(),
        ..defaults
    };
    let provider = Provider::new(Endpoint {
        base_url: fake.base_url(),
        api_key_env: KEY_ENV.into(),
    })?;
    let router = Router::new(
        Arc::new(remote(config)),
        Arc::new(provider),
        Arc::new(Ledger::new()),
    );
    let ask = |i: usize| RouteRequest {
        tier: "flash".into(),
        messages: messages(format!("rate limited {i}")),
        max_tokens: None,
        fim: None,
        action: None,
    };
    for i in 0..warm_up {
        router.ask(ask(i), None).await.context("warm-up answer")?;
    }
    fake.set_script(Script::always(Behavior {
        ttft: Latency::Fixed {
            ms: scaled(SLOW_429_MS),
        },
        ..Behavior::status(429, Some(&format!("{}", RETRY_AFTER_S * scale)))
    }));
    fake.clear();
    let result = router.ask(ask(warm_up), None).await;
    ensure!(
        matches!(
            &result,
            Err(RouteError::Provider(ProviderError::RateLimited { .. }))
        ),
        "expected the rate limit, got {result:?}"
    );
    let requests = fake.requests().len();
    // Whether the breaker opened: an open one answers at once without a request.
    fake.set_script(Script::default());
    let next = router.ask(ask(warm_up + 1), None).await;
    Ok(RateLimitedAction {
        requests,
        breaker_open_after: matches!(next, Err(RouteError::CircuitOpen { .. })),
    })
}

/// Requests per action against a slow rate-limited server, from a fresh and from a warm process.
fn rate_limited(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let scale = 0.1;
    let actions = ctx.scaled(5, 2);
    for (what, warm_up) in [
        ("fresh process (no latency samples)", 0),
        ("warm process (12 fast answers first)", 12),
    ] {
        let mut runs = Vec::with_capacity(actions);
        for _ in 0..actions {
            runs.push(ctx.rt.block_on(rate_limited_action(warm_up, scale))?);
        }
        let mut counts: Vec<usize> = runs.iter().map(|r| r.requests).collect();
        counts.sort_unstable();
        let opened = runs.iter().filter(|r| r.breaker_open_after).count();
        eprintln!("  rate limited, {what}: requests {counts:?}, breaker opened {opened} times");
        report.push(Row {
            group: RATE_GROUP,
            name: format!("{what}: upstream requests for one action"),
            n: actions.to_string(),
            p50: counts[counts.len() / 2].to_string(),
            p99: counts[counts.len() - 1].to_string(),
            target: String::new(),
            met: "",
        });
        report.push(Row {
            group: RATE_GROUP,
            name: format!("{what}: circuit breaker open after that one action"),
            n: actions.to_string(),
            p50: format!("{opened} of {actions}"),
            p99: String::new(),
            target: "never".to_owned(),
            met: if opened == 0 { "yes" } else { "**no**" },
        });
    }
    report.note(format!(
        "**Requests per action against a rate-limited server.** One flash ask with the CLI's \
         budget ({:.0} s) and the default retries (3 attempts), hedging ([150, 1500] ms) and \
         breaker (opens after 5 failures), through `Router<Provider>` to the fake provider, which \
         answers every request with HTTP 429 and `Retry-After: {RETRY_AFTER_S:.0}` after {:.0} s \
         (real time scaled by {scale}). A fresh router per action: either fresh (a new CLI \
         process, no latency samples) or after 12 fast answers (a warm editor session, so the \
         hedge delay is the 150 ms floor). The count is what the fake received for that action; \
         then one more ask shows whether the breaker opened. Before the hedging policy of issue \
         13 this was 6 requests (2 hedged legs × 3 attempts) and an open breaker after one \
         action. Now a cold model is hedged only at 60% of the budget, a pending 429 stops \
         further hedges, and a hedged pair counts once in the breaker.",
        CLI_BUDGET_MS / 1000.0,
        SLOW_429_MS / 1000.0,
    ));
    Ok(())
}

/// 500 flash asks against each TTFT model, with and without hedging; then requests per action
/// against a rate-limited server.
pub fn latency_budget(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    rate_limited(ctx, report)?;
    let setup = TailSetup {
        asks: ctx.scaled(500, 200),
        scale: if ctx.quick { 0.2 } else { 0.5 },
        seed: 0x7a11,
    };
    for model in [TtftModel::Lognormal, TtftModel::Bimodal] {
        let (_, drawn) = tail_script(model, setup);
        let mut sorted = drawn.clone();
        sorted.sort_by(f64::total_cmp);
        report.note(format!(
            "**Scripted TTFT, {}.** Over the first {} requests: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms{}.",
            model.name(),
            sorted.len(),
            quantile(&sorted, 0.5),
            quantile(&sorted, 0.9),
            quantile(&sorted, 0.99),
            match model {
                TtftModel::Lognormal => format!(
                    " (the distribution's own p90 is {:.0} ms)",
                    TTFT_P50_MS * ((TTFT_P99_MS / TTFT_P50_MS).ln() / Z99 * Z90).exp()
                ),
                TtftModel::Bimodal => String::new(),
            }
        ));
        for hedge in [false, true] {
            let row = ctx.rt.block_on(tail_run(model, hedge, setup))?;
            eprintln!(
                "  tail {:<60} hedge {:<5} p50 {:>9} p90 {:>9} p99 {:>9} over {:>5.1}% extra {:>5.1}%",
                model.name(),
                hedge,
                fmt_duration(row.p50),
                fmt_duration(row.p90),
                fmt_duration(row.p99),
                100.0 * row.over_budget,
                100.0 * row.extra
            );
            report.tail.push(row);
        }
    }
    report.note(format!(
        "**Latency budget.** {} flash asks, {CONCURRENCY} at a time, through `Router<Provider>` \
         over real HTTP to the fake provider (`FakeProvider::start`), which answers {ANSWER_TOKENS} \
         tokens at {TOKENS_PER_SEC:.0} tokens/s after the scripted TTFT. Real sleeps are scaled \
         by {}: every delay the fake applies, the 2500 ms budget and the hedge and retry delays \
         are multiplied by it, and every latency reported is divided by it again (so loopback \
         and scheduling costs, about a millisecond real, appear {:.0}× larger). The circuit \
         breaker is disabled as in the in-process simulation (`router::sim`), because a budget \
         miss counts as a failure and would send the tier to its fallback model mid-run. \
         \"Extra requests\" is the fake's request count over the number of asks, minus one: \
         hedges (and retries, of which there are none without faults). A missed budget ends \
         at the budget, so when more than 1% miss, the p99 *is* the budget; a p99 a little \
         above 2.5 s is the deadline firing late on a busy machine (all asks share one task \
         and a two-thread runtime with the fake, and any lag is multiplied back by 1/scale).",
        setup.asks,
        setup.scale,
        1.0 / setup.scale,
    ));
    report.note(
        "**Why hedging cannot meet a 2.5 s p99 on the lognormal.** With p50 600 ms and p99 \
         8 s, σ = ln(8000/600)/2.326 = 1.11, so the provider's own p90 TTFT is already about \
         2.5 s, the whole budget: one request in ten has not even started answering when the \
         budget ends. The router hedges after the observed p90, clamped to at most 1500 ms \
         but never below the observed p88 (so that at most ~12% of requests are hedged, under \
         the 15% extra-request target); against this tail p88 is about 2.2 s, which leaves a \
         hedge some 300 ms — and the hedge draws from the same slow distribution. (Until the \
         model has 10 samples, the 50 asks that start first, the only hedge is a late one at \
         60% of the budget, 1.5 s.) Hedging \
         alone cannot bring the p99 to 2.5 s with at most 15% extra requests here: about 10% \
         of requests miss the budget with or without it (see the table), and meeting it would \
         take hedging after ~300–600 ms (half or more of all requests duplicated, each \
         still failing with a ~10% chance) or a faster provider. The bimodal provider has the \
         same p50 and p99 but its slow requests are rare stalls, so its p90 is about 1 s: the \
         hedge fires after ~1–1.5 s, almost always lands on a fast copy, and the p99 comes in \
         under the budget for a few percent extra requests.",
    );
    Ok(())
}
