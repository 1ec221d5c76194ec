//! Tier router: resolves a tier to a model and answers within its latency budget (hedging, retries, circuit breaker).
//!
//! One `ask` runs under a deadline (the tier's budget). Inside it, each attempt sends one request
//! and, when no first token has arrived after the hedge delay, a second identical one; the first
//! to produce a token wins and the other is dropped, which closes its connection. Retryable
//! failures are retried with full-jitter backoff while nothing has been shown to the user and the
//! deadline allows. A circuit breaker per model sends the tier to its fallback model while the
//! model keeps failing. Every upstream request, dropped or not, is written to the usage ledger.
//!
//! Hedging respects the provider. A hedge is a second paid request and more load on a server
//! that is already slow, so there is none:
//! - for a half-open model's single trial request;
//! - to a loopback `base_url` unless `hedge.loopback` says so: local servers
//!   (llama.cpp, Ollama) run one request at a time, so a hedge only queues behind the first;
//! - on a tier with a shared `requests_per_minute` (a team tier): it would take a slot another
//!   process needs;
//! - while a 429 is pending: after a rate limit in an ask, its later attempts send no hedge, and
//!   the model and the whole endpoint send none until the `Retry-After` has passed
//!   (`RATE_LIMIT_HEDGE_PAUSE` when the 429 named no time);
//! - before the model has `MIN_HEDGE_SAMPLES` time-to-first-token samples, except as a late
//!   rescue at `COLD_HEDGE_SHARE` of the budget, which neither `hedge.max_delay_ms` nor
//!   `hedge.min_delay_ms` pulls earlier: 1.5 s of the editor's 2.5 s flash budget, 72 s of the
//!   CLI's 120 s, so a fresh CLI process in practice sends none.
//!
//! A hedged pair that fails counts once in the circuit breaker: the pair is one attempt.
//!
//! With a team tier, a gate stands before each attempt: the team's daily budget (spent, the
//! attempt is refused), the model's shared token bucket (`requests_per_minute`: wait for a
//! token within the deadline, else refuse) and the model's shared cooldown (another process's
//! breaker opened it: open it here for the rest of that time). A tier under a shared rate limit
//! sends no hedges.

mod breaker;
mod race;
mod stats;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use crate::config::{Config, TierConfig, UnknownTier};
use crate::provider::{Answer, FimPrompt, Message, Provider, ProviderError, StreamEvent, Upstream};
use crate::team::Team;
use crate::usage::Ledger;

use breaker::{Admission, Breaker};
use race::{AttemptError, Done};
pub use stats::LatencyStats;

/// Until a model has this many time-to-first-token samples, the hedge delay is a fixed share of the budget.
const MIN_HEDGE_SAMPLES: usize = 10;
/// Hedge delay while a model has too few samples, as a share of the tier's budget. Not clamped
/// to `hedge.max_delay_ms`: without statistics a hedge is a late rescue, not a duplicate of
/// every request slower than the ceiling.
const COLD_HEDGE_SHARE: f64 = 0.6;
/// How long a 429 without `Retry-After` pauses hedging for its model and endpoint.
const RATE_LIMIT_HEDGE_PAUSE: Duration = Duration::from_secs(10);
/// The quantile of time-to-first-token after which a hedge is sent.
const HEDGE_QUANTILE: f64 = 0.9;
/// At most about this share of requests is hedged: the hedge delay never goes below the
/// observed quantile `1 - MAX_HEDGE_SHARE`, even when `hedge.max_delay_ms` is lower. When a
/// provider's tail is as slow as the budget, the ceiling alone would hedge a large share of
/// requests (more spend, and more load on a provider that is already slow); this caps it. 12%
/// leaves room for the cold start and estimation noise under the 15% extra-request target (see
/// the latency-budget rows of the bench binary, `bench/src/routing.rs`).
const MAX_HEDGE_SHARE: f64 = 0.12;
/// Upper bound on the backoff exponent, so a large `max_attempts` cannot overflow.
const MAX_BACKOFF_DOUBLINGS: u32 = 10;

/// "Ask tier T this prompt."
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteRequest {
    pub tier: String,
    pub messages: Vec<Message>,
    /// Bounded by the tier's (or the global) `max_tokens`.
    pub max_tokens: Option<u32>,
    /// A fill-in-the-middle prompt, sent to `/completions` instead of `messages`.
    pub fim: Option<FimPrompt>,
    /// Every request is also booked under this action in the usage report (completions book
    /// under `complete`); `None` books by tier only.
    pub action: Option<&'static str>,
}

/// What happens while a job is answered, in order: the one progress event type. The router
/// sends the stream and its own events; the engine adds `Asking` and `Escalating` and passes
/// the rest on unchanged; the editor and the terminal word them.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The prompt is built and about to be sent (or answered from the cache). From the engine.
    Asking {
        tier: String,
        model: String,
        /// Secrets masked in the prompt.
        redactions: usize,
        /// Set when the budget cut the selection or its context: which lines were sent.
        coverage_note: Option<String>,
    },
    /// A piece of the answer (from the winning request only).
    Token(String),
    /// A piece of the model's reasoning, kept apart from the answer.
    Reasoning(String),
    /// Attempt number `attempt` (2 or more) is about to start because of `reason`.
    Retrying { attempt: u32, reason: String },
    /// The first token was slow, so a second identical request was sent.
    Hedged,
    /// The tier's model has its circuit breaker open; `model` answers instead.
    FellBack { model: String },
    /// The answer failed its check and the job is asked again on `tier`: `message` says why,
    /// e.g. "Flash's code did not parse: line 3 (missing `)`) — asked DeepSeek V4 Pro". From
    /// the engine.
    Escalating {
        tier: String,
        model: String,
        message: String,
    },
}

/// Tokens streamed so far, estimated from the characters of the `Token` events (progress
/// shows them as `~N`).
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenCount {
    chars: usize,
}

impl TokenCount {
    /// Counts `text` and gives the estimate so far.
    pub fn add(&mut self, text: &str) -> u64 {
        self.chars += text.chars().count();
        crate::provider::estimate_tokens(self.chars).max(1)
    }
}

/// The tier's answer (named and priced), and what it took to get it.
#[derive(Clone, Debug, PartialEq)]
pub struct Routed {
    /// The winning request's answer. Its cost is output tokens only: hedge losers and failed
    /// attempts have no known output tokens, and the ledger books them as requests.
    pub answer: Answer,
    pub latency_ms: u64,
    /// From the call to `ask` until the first token was forwarded.
    pub ttft_ms: Option<u64>,
    /// Upstream requests made, hedges and retries included.
    pub requests: u32,
}

/// Why there is no answer; `Display` is a message the user can act on.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RouteError {
    #[error("{0}")]
    UnknownTier(UnknownTier),
    #[error("{0}")]
    Provider(ProviderError),
    #[error(
        "no answer from the `{tier}` tier within its {budget_ms} ms latency budget: escalate to a \
         premium tier, or raise `latency_budget_ms` (or `tiers.{tier}.budget_ms`)"
    )]
    BudgetExceeded { budget_ms: u64, tier: String },
    #[error(
        "model `{model}` failed repeatedly, so codetier pauses it for {}: try again then, escalate \
         to another tier, or configure a `fallback` model for this tier",
        retry_in_words(*retry_in_ms)
    )]
    CircuitOpen { model: String, retry_in_ms: u64 },
    #[error("the request was cancelled")]
    Cancelled,
    #[error(
        "the team's daily budget of {} (`team.daily_budget_usd`, shared by every codetier on the \
         team's Redis) is spent: {} so far today. New requests resume {}; cached answers still work",
        crate::usage::format_usd(*budget_usd, 2, false),
        crate::usage::format_usd(*spent_usd, 4, false),
        crate::team::reset_in_words(*resets_in_secs)
    )]
    TeamBudget {
        spent_usd: f64,
        budget_usd: f64,
        resets_in_secs: u64,
    },
    #[error(
        "model `{model}` is at the team's shared limit of {per_minute} requests a minute \
         (`tiers.{tier}.requests_per_minute`): the next slot is in {} s, past this answer's \
         deadline; try again then",
        retry_in_ms.div_ceil(1000)
    )]
    RateLimited {
        model: String,
        tier: String,
        per_minute: u32,
        retry_in_ms: u64,
    },
}

fn retry_in_words(ms: u64) -> String {
    if ms == 0 {
        "a moment (a trial request is in flight)".to_owned()
    } else {
        format!("another {} s", ms.div_ceil(1000))
    }
}

/// Routes tier requests to an `Upstream`, keeping per-model latency statistics and breakers.
pub struct Router<U: Upstream = Provider> {
    config: RwLock<Arc<Config>>,
    upstream: Arc<U>,
    usage: Arc<Ledger>,
    models: Mutex<HashMap<String, ModelState>>,
    /// Until when the endpoint asked us to back off (a 429): no hedges to any model.
    endpoint_hedge_pause: Mutex<Option<Instant>>,
    /// The team tier: budget, token buckets and cooldowns shared with other processes.
    team: RwLock<Option<Team>>,
}

#[derive(Debug, Default)]
struct ModelState {
    stats: stats::Recorder,
    breaker: Breaker,
    /// Until when this model's last 429 asked us to back off: no hedges to it.
    hedge_pause: Option<Instant>,
}

impl<U: Upstream> Router<U> {
    pub fn new(config: Arc<Config>, upstream: Arc<U>, usage: Arc<Ledger>) -> Self {
        Router {
            config: RwLock::new(config),
            upstream,
            usage,
            models: Mutex::new(HashMap::new()),
            endpoint_hedge_pause: Mutex::new(None),
            team: RwLock::new(None),
        }
    }

    /// Shares budget, rate limits and cooldowns through `team` from now on.
    pub fn set_team(&self, team: Option<Team>) {
        *self.team.write().unwrap_or_else(PoisonError::into_inner) = team;
    }

    fn team(&self) -> Option<Team> {
        self.team
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Later asks use `config`; asks in flight finish with the one they started with.
    pub fn set_config(&self, config: Arc<Config>) {
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
    }

    /// The upstream this router sends to (the provider client in the server).
    pub fn upstream(&self) -> &Arc<U> {
        &self.upstream
    }

    /// Latency statistics of `model`, once it has been called.
    pub fn stats(&self, model: &str) -> Option<LatencyStats> {
        self.models().get(model).map(|m| m.stats.snapshot())
    }

    /// Answers `req` on its tier within the tier's budget.
    ///
    /// Tokens of the winning request stream to `events` as they arrive. A closed `events` channel
    /// means nobody is listening any more: the upstream request is dropped and the result is
    /// `RouteError::Cancelled`. Dropping the returned future cancels the upstream requests too.
    pub async fn ask(
        &self,
        req: RouteRequest,
        events: Option<UnboundedSender<Event>>,
    ) -> Result<Routed, RouteError> {
        let config = Arc::clone(&self.config.read().unwrap_or_else(PoisonError::into_inner));
        let tier = config.tier(&req.tier).map_err(RouteError::UnknownTier)?;
        let budget_ms = config.budget_ms(&req.tier);
        let bound = tier.max_tokens.unwrap_or(config.max_tokens);
        let started = Instant::now();
        let ctx = Ask {
            tier_name: &req.tier,
            tier,
            config: &config,
            messages: &req.messages,
            fim: req.fim.as_ref(),
            action: req.action,
            max_tokens: req.max_tokens.map_or(bound, |m| m.min(bound)).max(1),
            budget: Duration::from_millis(budget_ms),
            deadline: started + Duration::from_millis(budget_ms),
            started,
            events: events.as_ref(),
            requests: AtomicU32::new(0),
            model: Mutex::new(None),
            attempt_failed: AtomicBool::new(false),
            rate_limited: AtomicBool::new(false),
        };
        // A `let` statement, so the timed-out future (and every upstream request in it) is
        // dropped here, before the timeout is booked against the model.
        let outcome = tokio::time::timeout_at(ctx.deadline, self.run(&ctx)).await;
        match outcome {
            Ok(result) => result,
            Err(_elapsed) => {
                let model = ctx
                    .model
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                // Once per attempt: a request of it that failed already counted.
                if let Some(model) = model.filter(|_| !ctx.attempt_failed.load(Ordering::Relaxed)) {
                    self.model_failed(&model, &config);
                }
                tracing::warn!(tier = %req.tier, budget_ms, "latency budget exceeded; upstream requests cancelled");
                Err(RouteError::BudgetExceeded {
                    budget_ms,
                    tier: req.tier.clone(),
                })
            }
        }
    }

    async fn run(&self, ctx: &Ask<'_>) -> Result<Routed, RouteError> {
        let max_attempts = ctx.config.retry.max_attempts.max(1);
        let mut attempt: u32 = 0;
        let mut announced_fallback: Option<String> = None;
        // Whether an answer that is retried once at most (see `ProviderError::retry_once`) was.
        let mut retried_once = false;
        loop {
            attempt += 1;
            let team = self.team();
            if let Some(team) = &team {
                self.team_budget(team).await?;
                self.adopt_cooldowns(team, ctx).await;
            }
            let (model, trial) = self.pick_model(ctx)?;
            if let Some(team) = &team {
                if let Err(e) = self.team_bucket(team, ctx, &model).await {
                    if trial {
                        self.models()
                            .entry(model)
                            .or_default()
                            .breaker
                            .release_trial();
                    }
                    return Err(e);
                }
            }
            if model != ctx.tier.model && announced_fallback.as_deref() != Some(model.as_str()) {
                tracing::info!(tier = ctx.tier_name, from = %ctx.tier.model, to = %model, "circuit open; falling back");
                ctx.emit(Event::FellBack {
                    model: model.clone(),
                });
                announced_fallback = Some(model.clone());
            }
            *ctx.model.lock().unwrap_or_else(PoisonError::into_inner) = Some(model.clone());
            ctx.attempt_failed.store(false, Ordering::Relaxed);
            let hedge_after = self.hedge_after(&model, ctx, trial);
            let error = match self.attempt(ctx, &model, trial, hedge_after).await {
                Ok(done) => return Ok(ctx.routed(model, done)),
                Err(AttemptError::Cancelled) => return Err(RouteError::Cancelled),
                Err(AttemptError::Failed {
                    error,
                    forwarded: true,
                }) => return Err(RouteError::Provider(error)),
                Err(AttemptError::Failed {
                    error,
                    forwarded: false,
                }) => error,
            };
            if !error.is_retryable()
                || attempt >= max_attempts
                || (error.retry_once() && retried_once)
            {
                return Err(RouteError::Provider(error));
            }
            retried_once |= error.retry_once();
            let remaining = ctx.deadline.saturating_duration_since(Instant::now());
            let wait = error
                .retry_after()
                .unwrap_or_else(|| full_jitter(ctx.config.retry.base_delay_ms, attempt));
            if wait >= remaining {
                // Sleeping would only end in "budget exceeded"; the provider's error says more
                // (a rate limit says when to come back).
                return Err(RouteError::Provider(error));
            }
            // This failure is booked already; a deadline during the backoff is not the model's.
            *ctx.model.lock().unwrap_or_else(PoisonError::into_inner) = None;
            tracing::debug!(tier = ctx.tier_name, %model, attempt, ?wait, %error, "retrying");
            ctx.emit(Event::Retrying {
                attempt: attempt + 1,
                reason: error.to_string(),
            });
            tokio::time::sleep(wait).await;
        }
    }

    /// The tier's model, or its fallback while the model's breaker is open; `true` for a trial.
    fn pick_model(&self, ctx: &Ask<'_>) -> Result<(String, bool), RouteError> {
        let now = Instant::now();
        let mut models = self.models();
        let own = &ctx.tier.model;
        let retry_in = match models.entry(own.clone()).or_default().breaker.admit(now) {
            Admission::Open => return Ok((own.clone(), false)),
            Admission::Trial => return Ok((own.clone(), true)),
            Admission::Rejected { retry_in } => retry_in,
        };
        if let Some(fallback) = ctx.tier.fallback.as_ref().filter(|f| *f != own) {
            match models
                .entry(fallback.clone())
                .or_default()
                .breaker
                .admit(now)
            {
                Admission::Open => return Ok((fallback.clone(), false)),
                Admission::Trial => return Ok((fallback.clone(), true)),
                Admission::Rejected { .. } => {}
            }
        }
        Err(RouteError::CircuitOpen {
            model: own.clone(),
            retry_in_ms: retry_in.as_millis() as u64,
        })
    }

    /// When to hedge this attempt, if at all (the policy is in the module docs).
    fn hedge_after(&self, model: &str, ctx: &Ask<'_>, trial: bool) -> Option<Duration> {
        // A half-open model gets exactly one trial request.
        if !ctx.config.hedge.enabled || trial {
            return None;
        }
        if self.upstream.is_loopback() && !ctx.config.hedge.loopback {
            return None;
        }
        // Under a shared rate limit a hedge would take a slot another process needs.
        if ctx.tier.requests_per_minute.is_some() && self.team().is_some() {
            return None;
        }
        if ctx.rate_limited.load(Ordering::Relaxed) || self.hedging_paused(model, Instant::now()) {
            tracing::debug!(%model, "rate limited: no hedge until the provider's Retry-After has passed");
            return None;
        }
        Some(self.hedge_delay(model, ctx))
    }

    /// Whether a 429 paused hedging for `model` or the whole endpoint.
    fn hedging_paused(&self, model: &str, now: Instant) -> bool {
        let endpoint = *self
            .endpoint_hedge_pause
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let own = self.models().get(model).and_then(|m| m.hedge_pause);
        [endpoint, own]
            .into_iter()
            .flatten()
            .any(|until| now < until)
    }

    /// A 429 for `model`: no hedges to it, nor to the endpoint, for its `Retry-After`.
    fn pause_hedging(&self, model: &str, retry_after: Option<Duration>) {
        let until = Instant::now() + retry_after.unwrap_or(RATE_LIMIT_HEDGE_PAUSE);
        let later = |current: &mut Option<Instant>| {
            *current = Some(current.map_or(until, |c| c.max(until)));
        };
        later(
            &mut self
                .endpoint_hedge_pause
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        later(
            &mut self
                .models()
                .entry(model.to_owned())
                .or_default()
                .hedge_pause,
        );
    }

    /// Observed p90 time to first token, clamped to the configured floor and ceiling, but never
    /// below the observed p88 (see `MAX_HEDGE_SHARE`). With too few samples, a share of the
    /// budget (see `COLD_HEDGE_SHARE`).
    fn hedge_delay(&self, model: &str, ctx: &Ask<'_>) -> Duration {
        let hedge = &ctx.config.hedge;
        let floor = hedge.min_delay_ms as f64;
        let ceiling = (hedge.max_delay_ms as f64).max(floor);
        let now = Instant::now();
        let observed = self
            .models()
            .get(model)
            .filter(|m| m.stats.ttft_samples() >= MIN_HEDGE_SAMPLES)
            .and_then(|m| {
                m.stats
                    .ttft_quantiles_ms([1.0 - MAX_HEDGE_SHARE, HEDGE_QUANTILE], now)
            });
        let ms = match observed {
            Some([share_cap, p90]) => p90.clamp(floor, ceiling).max(share_cap),
            None => (ctx.budget.as_secs_f64() * 1000.0 * COLD_HEDGE_SHARE).max(floor),
        };
        Duration::from_secs_f64(ms / 1000.0)
    }

    fn model_failed(&self, model: &str, config: &Config) {
        let breaker = &config.breaker;
        let open_for = Duration::from_millis(breaker.open_ms);
        let opened = {
            let mut models = self.models();
            let state = models.entry(model.to_owned()).or_default();
            let was_open = state.breaker.is_open();
            state
                .breaker
                .record_failure(Instant::now(), breaker.failure_threshold, open_for);
            !was_open && state.breaker.is_open()
        };
        if opened {
            tracing::warn!(%model, open_ms = breaker.open_ms, "circuit breaker open");
            if let Some(team) = self.team() {
                team.share_cooldown(model, open_for);
            }
        }
    }

    /// Refuses the attempt once the team's day has spent its budget. A Redis that does not
    /// answer refuses nothing: the local tiers carry on.
    async fn team_budget(&self, team: &Team) -> Result<(), RouteError> {
        let Some(budget_usd) = team.daily_budget_usd() else {
            return Ok(());
        };
        match team.spent_today().await {
            Some(spent_usd) if spent_usd >= budget_usd => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                Err(RouteError::TeamBudget {
                    spent_usd,
                    budget_usd,
                    resets_in_secs: crate::team::seconds_to_midnight(now),
                })
            }
            _ => Ok(()),
        }
    }

    /// Opens the breaker here of a model (the tier's, then its fallback) that another process
    /// opened, for the rest of its cooldown.
    async fn adopt_cooldowns(&self, team: &Team, ctx: &Ask<'_>) {
        let own = &ctx.tier.model;
        let models = std::iter::once(own).chain(ctx.tier.fallback.iter().filter(|f| *f != own));
        for model in models {
            let Some(left) = team.cooldown(model).await else {
                // Not cooling: its fallback need not be looked at.
                return;
            };
            let mut states = self.models();
            let state = states.entry(model.clone()).or_default();
            if state.breaker.is_closed() {
                tracing::info!(%model, left_ms = left.as_millis() as u64, "another process opened this model's breaker; skipping it");
            }
            state.breaker.open_until(Instant::now() + left);
        }
    }

    /// Takes a token from `model`'s shared bucket, waiting for one while the deadline allows.
    async fn team_bucket(&self, team: &Team, ctx: &Ask<'_>, model: &str) -> Result<(), RouteError> {
        let Some(per_minute) = ctx.tier.requests_per_minute else {
            return Ok(());
        };
        loop {
            let wait = match team.take_token(model, per_minute).await {
                None | Some(0) => return Ok(()),
                Some(ms) => Duration::from_millis(ms),
            };
            if Instant::now() + wait >= ctx.deadline {
                return Err(RouteError::RateLimited {
                    model: model.to_owned(),
                    tier: ctx.tier_name.to_owned(),
                    per_minute,
                    retry_in_ms: wait.as_millis() as u64,
                });
            }
            tracing::debug!(%model, ?wait, "waiting for a slot of the team's shared rate limit");
            tokio::time::sleep(wait).await;
        }
    }

    fn models(&self) -> MutexGuard<'_, HashMap<String, ModelState>> {
        self.models.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Full-jitter exponential backoff: uniform in [0, base * 2^(attempt-1)].
fn full_jitter(base_delay_ms: u64, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(MAX_BACKOFF_DOUBLINGS);
    let cap = base_delay_ms.saturating_mul(1 << doublings);
    Duration::from_millis(rand::random_range(0..=cap))
}

/// Everything one `ask` shares with its attempts.
struct Ask<'a> {
    tier_name: &'a str,
    tier: &'a TierConfig,
    config: &'a Config,
    messages: &'a [Message],
    fim: Option<&'a FimPrompt>,
    action: Option<&'static str>,
    max_tokens: u32,
    budget: Duration,
    deadline: Instant,
    started: Instant,
    events: Option<&'a UnboundedSender<Event>>,
    requests: AtomicU32,
    /// The model of the current attempt, charged with the timeout if the budget runs out.
    model: Mutex<Option<String>>,
    /// A request of the current attempt already counted against the model's breaker.
    attempt_failed: AtomicBool,
    /// A request of this ask was rate limited: its later attempts send no hedge.
    rate_limited: AtomicBool,
}

impl Ask<'_> {
    fn emit(&self, event: Event) {
        if let Some(events) = self.events {
            // Status events are best effort; a closed channel is noticed on the next token.
            let _ = events.send(event);
        }
    }

    fn forward(&self, event: StreamEvent) -> Result<(), AttemptError> {
        let Some(events) = self.events else {
            return Ok(());
        };
        let event = match event {
            StreamEvent::Content(text) => Event::Token(text),
            StreamEvent::Reasoning(text) => Event::Reasoning(text),
        };
        events.send(event).map_err(|_| AttemptError::Cancelled)
    }

    /// `done` as this tier's answer, from `model` (the fallback's, if the tier fell back).
    fn routed(&self, model: String, done: Done) -> Routed {
        let mut answer = done.answer;
        answer.tier = self.tier_name.to_owned();
        answer.model = model;
        Routed {
            answer,
            latency_ms: self.started.elapsed().as_millis() as u64,
            ttft_ms: Some(
                done.first_forwarded
                    .saturating_duration_since(self.started)
                    .as_millis() as u64,
            ),
            requests: self.requests.load(Ordering::Relaxed),
        }
    }
}
