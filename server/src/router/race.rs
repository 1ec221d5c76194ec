//! One attempt of an ask: the request, maybe its hedge, the race for the first token, the
//! winner's stream, and the accounting of every request (a guard books it however it ends).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::time::Instant;

use super::{Ask, Event, ModelState, Router};
use crate::provider::{
    Answer, ChatRequest, Completion, ProviderError, StreamEvent, TokenUsage, Upstream,
};
use crate::usage::{cost_usd, output_price, Ledger};

impl<U: Upstream> Router<U> {
    /// One attempt: a request, maybe a hedge, the race for the first token, then the winner's
    /// stream. The race is one `select!` loop over both requests' state, which lives in its
    /// locals; splitting it would pass that state around by reference for no clarity.
    pub(super) async fn attempt(
        &self,
        ctx: &Ask<'_>,
        model: &str,
        trial: bool,
        hedge_after: Option<Duration>,
    ) -> Result<Done, AttemptError> {
        let req = ChatRequest {
            model: model.to_owned(),
            messages: ctx.messages.to_vec(),
            max_tokens: ctx.max_tokens,
            extra_body: ctx.tier.extra_body.clone(),
            stream: true,
            fim: ctx.fim.cloned(),
        };
        let price = output_price(Some(ctx.tier), model);
        let (tx_a, mut rx_a) = mpsc::unbounded_channel();
        let (tx_b, mut rx_b) = mpsc::unbounded_channel();
        let mut a = Some(self.leg(ctx, &req, &tx_a, price, trial));
        let mut b: Option<Leg<'_>> = None;
        let hedge_timer = tokio::time::sleep(hedge_after.unwrap_or(ctx.budget));
        tokio::pin!(hedge_timer);
        let mut hedge_pending = hedge_after.is_some();
        // Until when a request that failed while its rival raced on was told to back off.
        let mut rate_limited_until: Option<Instant> = None;

        // Race until one request shows a token (or finishes, or both fail).
        let (winner, rx, first) = loop {
            let step = tokio::select! {
                biased;
                Some(ev) = rx_a.recv(), if a.is_some() => Step::Event(Side::A, ev),
                Some(ev) = rx_b.recv(), if b.is_some() => Step::Event(Side::B, ev),
                r = finish(&mut a) => Step::Done(Side::A, r),
                r = finish(&mut b) => Step::Done(Side::B, r),
                () = &mut hedge_timer, if hedge_pending => Step::Hedge,
            };
            match step {
                Step::Hedge => {
                    hedge_pending = false;
                    tracing::debug!(%model, ?hedge_after, "no first token yet; hedging");
                    b = Some(self.leg(ctx, &req, &tx_b, price, false));
                    ctx.emit(Event::Hedged);
                }
                Step::Event(side, ev) => {
                    let (won, lost) = take_sides(side, &mut a, &mut b);
                    if let Some(mut loser) = lost {
                        loser.guard.outcome = LegOutcome::Lost;
                        drop(loser);
                    }
                    let Some(mut won) = won else { continue };
                    self.first_token(&mut won.guard);
                    won.guard.received(&ev);
                    let rx = match side {
                        Side::A => rx_a,
                        Side::B => rx_b,
                    };
                    break (won, rx, Some(ev));
                }
                Step::Done(side, result) => {
                    let (won, lost) = take_sides(side, &mut a, &mut b);
                    let Some(mut leg) = won else { continue };
                    match result {
                        // Finished without streaming (a non-streaming fallback): it wins.
                        Ok(completion) => {
                            if let Some(mut loser) = lost {
                                loser.guard.outcome = LegOutcome::Lost;
                                drop(loser);
                            }
                            self.first_token(&mut leg.guard);
                            if !completion.answer.text.is_empty() {
                                let whole = StreamEvent::Content(completion.answer.text.clone());
                                leg.guard.received(&whole);
                                ctx.forward(whole)?;
                            }
                            return Ok(self.completed(leg.guard, completion, Instant::now()));
                        }
                        Err(error) => {
                            self.leg_failed(&mut leg.guard, &error, ctx);
                            drop(leg);
                            let now = Instant::now();
                            // The rival (if any) keeps racing; put it back on its side.
                            match (side, lost) {
                                (Side::A, Some(rival)) => b = Some(rival),
                                (Side::B, Some(rival)) => a = Some(rival),
                                (_, None) => {
                                    return Err(AttemptError::Failed {
                                        error: after_both_failed(error, rate_limited_until, now),
                                        forwarded: false,
                                    })
                                }
                            }
                            rate_limited_until = error.retry_after().map(|wait| now + wait);
                        }
                    }
                }
            }
        };
        drop((a, b));
        self.stream(ctx, winner, rx, first).await
    }

    /// Streams the winner only, from its first event on.
    async fn stream(
        &self,
        ctx: &Ask<'_>,
        mut winner: Leg<'_>,
        mut rx: mpsc::UnboundedReceiver<StreamEvent>,
        first: Option<StreamEvent>,
    ) -> Result<Done, AttemptError> {
        let first_forwarded = Instant::now();
        if let Some(ev) = first {
            ctx.forward(ev)?;
        }
        let result = loop {
            tokio::select! {
                biased;
                Some(ev) = rx.recv() => {
                    winner.guard.received(&ev);
                    ctx.forward(ev)?;
                }
                r = &mut winner.fut => {
                    while let Ok(ev) = rx.try_recv() {
                        winner.guard.received(&ev);
                        ctx.forward(ev)?;
                    }
                    break r;
                }
            }
        };
        match result {
            Ok(completion) => Ok(self.completed(winner.guard, completion, first_forwarded)),
            Err(error) => {
                self.leg_failed(&mut winner.guard, &error, ctx);
                Err(AttemptError::Failed {
                    error,
                    forwarded: true,
                })
            }
        }
    }

    fn leg<'a>(
        &'a self,
        ctx: &'a Ask<'a>,
        req: &'a ChatRequest,
        tx: &'a UnboundedSender<StreamEvent>,
        price: Option<f64>,
        trial: bool,
    ) -> Leg<'a> {
        ctx.requests.fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        let waiting = self
            .models()
            .entry(req.model.clone())
            .or_default()
            .stats
            .start_waiting(sent);
        Leg {
            fut: self.upstream.chat(req, Some(tx)),
            guard: LegGuard {
                router_models: &self.models,
                ledger: &self.usage,
                tier: ctx.tier_name,
                action: ctx.action,
                model: &req.model,
                price,
                trial,
                sent,
                waiting,
                outcome: LegOutcome::Waiting,
                input_chars: req.input_chars(),
                received_chars: 0,
            },
        }
    }

    fn first_token(&self, guard: &mut LegGuard<'_>) {
        guard.outcome = LegOutcome::Streaming {
            first_token: Instant::now(),
        };
        let mut models = self.models();
        let state = models.entry(guard.model.to_owned()).or_default();
        state.stats.stop_waiting(guard.waiting);
        state.stats.record_ttft(guard.sent.elapsed());
        state.breaker.record_success();
    }

    fn leg_failed(&self, guard: &mut LegGuard<'_>, error: &ProviderError, ctx: &Ask<'_>) {
        guard.outcome = LegOutcome::Failed;
        self.models()
            .entry(guard.model.to_owned())
            .or_default()
            .stats
            .stop_waiting(guard.waiting);
        if let ProviderError::RateLimited { retry_after } = error {
            ctx.rate_limited.store(true, Ordering::Relaxed);
            self.pause_hedging(guard.model, *retry_after);
        }
        if error.counts_against_model() {
            // A hedged pair is one attempt: it counts once, however many of its requests fail.
            if !ctx.attempt_failed.swap(true, Ordering::Relaxed) {
                self.model_failed(guard.model, ctx.config);
            }
        } else if guard.trial {
            // A 400 (or a web page, or an empty stream) says nothing about the model's health:
            // let the next request try.
            self.models()
                .entry(guard.model.to_owned())
                .or_default()
                .breaker
                .release_trial();
        }
    }

    fn completed(
        &self,
        mut guard: LegGuard<'_>,
        completion: Completion,
        first_forwarded: Instant,
    ) -> Done {
        let mut answer = completion.answer;
        let usage = answer.usage;
        if let LegOutcome::Streaming { first_token } = guard.outcome {
            let streaming = first_token.elapsed();
            self.models()
                .entry(guard.model.to_owned())
                .or_default()
                .stats
                .record_speed(usage.output_tokens, streaming);
        }
        guard.outcome = LegOutcome::Completed(usage);
        answer.cost_usd = cost_usd(usage.output_tokens, guard.price);
        drop(guard);
        Done {
            answer,
            first_forwarded,
        }
    }
}

/// The error of an attempt whose two requests both failed, `last` being the second.
///
/// When the first was rate limited with a `Retry-After` that has not run out, and `last` would
/// be retried sooner (by its own shorter `Retry-After`, or by the backoff), the attempt reports
/// the rate limit with the time still left, so the retry waits for it (or, past the deadline,
/// the user is told about the rate limit). A `last` that is not retryable is reported as is.
pub(super) fn after_both_failed(
    last: ProviderError,
    rate_limited_until: Option<Instant>,
    now: Instant,
) -> ProviderError {
    let Some(until) = rate_limited_until else {
        return last;
    };
    let left = until.saturating_duration_since(now);
    if left.is_zero() || !last.is_retryable() || last.retry_after().is_some_and(|w| w >= left) {
        return last;
    }
    ProviderError::RateLimited {
        retry_after: Some(left),
    }
}

/// A leg's answer, priced (its tier is named by `Ask::routed`).
pub(super) struct Done {
    pub(super) answer: Answer,
    pub(super) first_forwarded: Instant,
}

pub(super) enum AttemptError {
    Failed {
        error: ProviderError,
        forwarded: bool,
    },
    Cancelled,
}

#[derive(Clone, Copy)]
enum Side {
    A,
    B,
}

enum Step {
    Event(Side, StreamEvent),
    Done(Side, Result<Completion, ProviderError>),
    Hedge,
}

/// One upstream request in flight. Field order matters: the request is dropped (its connection
/// closed) before the guard books it.
struct Leg<'a> {
    fut: BoxFuture<'a, Result<Completion, ProviderError>>,
    guard: LegGuard<'a>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum LegOutcome {
    Waiting,
    Lost,
    Streaming { first_token: Instant },
    Failed,
    Completed(TokenUsage),
}

/// Books one upstream request when it ends, however it ends (including being dropped by the
/// deadline or a cancelled caller): it is real spend even when its usage is unknown.
struct LegGuard<'a> {
    router_models: &'a Mutex<HashMap<String, ModelState>>,
    ledger: &'a Ledger,
    tier: &'a str,
    /// Also booked under this action, when set.
    action: Option<&'static str>,
    model: &'a str,
    price: Option<f64>,
    trial: bool,
    sent: Instant,
    /// Id of this request among the model's requests waiting for a first token.
    waiting: u64,
    outcome: LegOutcome,
    /// Characters of the prompt, to estimate the input of a request cut off mid-stream.
    input_chars: usize,
    /// Characters of answer and reasoning forwarded from this request so far.
    received_chars: usize,
}

impl LegGuard<'_> {
    fn received(&mut self, event: &StreamEvent) {
        let (StreamEvent::Content(text) | StreamEvent::Reasoning(text)) = event;
        self.received_chars += text.chars().count();
    }
}

impl Drop for LegGuard<'_> {
    fn drop(&mut self) {
        let usage = match self.outcome {
            LegOutcome::Completed(usage) => usage,
            // Cut off mid-stream (by the deadline, a cancel, or a break): the provider bills
            // what it sent, so book the estimate of what arrived rather than nothing.
            _ if self.received_chars > 0 => {
                TokenUsage::estimated(self.input_chars, self.received_chars)
            }
            _ => TokenUsage::default(),
        };
        let cost = cost_usd(usage.output_tokens, self.price);
        self.ledger.record(self.tier, self.model, usage, cost);
        if let Some(action) = self.action {
            self.ledger.record_action(action, usage, cost);
        }
        let mut models = self
            .router_models
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let state = models.entry(self.model.to_owned()).or_default();
        state.stats.stop_waiting(self.waiting);
        // Dropped before its first token (lost the race, hit the deadline, or the caller went
        // away): its time to first token is at least what it waited.
        if matches!(self.outcome, LegOutcome::Waiting | LegOutcome::Lost) {
            state.stats.record_censored_ttft(self.sent.elapsed());
        }
        if self.trial && matches!(self.outcome, LegOutcome::Waiting | LegOutcome::Lost) {
            state.breaker.release_trial();
        }
    }
}

/// Awaits the request on one side, or never if that side is empty.
async fn finish(leg: &mut Option<Leg<'_>>) -> Result<Completion, ProviderError> {
    match leg {
        Some(leg) => (&mut leg.fut).await,
        None => std::future::pending().await,
    }
}

/// Takes both sides out: (the one named, the other).
fn take_sides<'a>(
    side: Side,
    a: &mut Option<Leg<'a>>,
    b: &mut Option<Leg<'a>>,
) -> (Option<Leg<'a>>, Option<Leg<'a>>) {
    match side {
        Side::A => (a.take(), b.take()),
        Side::B => (b.take(), a.take()),
    }
}
