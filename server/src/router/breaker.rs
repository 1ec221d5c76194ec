//! Circuit breaker of one model: closed, open after repeated failures, then half-open for one trial.

use std::time::Duration;

use tokio::time::Instant;

/// What the breaker allows right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Closed: send as many requests as needed (hedges included).
    Open,
    /// Half-open: this caller carries the single trial request; it must report how it went
    /// (or call `release_trial` if it was dropped without an outcome).
    Trial,
    /// Open: do not call this model for another `retry_in`.
    Rejected { retry_in: Duration },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed { consecutive_failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

#[derive(Debug)]
pub(crate) struct Breaker {
    state: State,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: State::Closed {
                consecutive_failures: 0,
            },
        }
    }
}

impl Breaker {
    pub(crate) fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            State::Closed { .. } => Admission::Open,
            State::Open { until } if now < until => Admission::Rejected {
                retry_in: until - now,
            },
            State::Open { .. }
            | State::HalfOpen {
                trial_in_flight: false,
            } => {
                self.state = State::HalfOpen {
                    trial_in_flight: true,
                };
                Admission::Trial
            }
            // Another caller carries the trial; until it reports, the model stays avoided.
            State::HalfOpen {
                trial_in_flight: true,
            } => Admission::Rejected {
                retry_in: Duration::ZERO,
            },
        }
    }

    /// The model answered (a first token arrived): close.
    pub(crate) fn record_success(&mut self) {
        self.state = State::Closed {
            consecutive_failures: 0,
        };
    }

    /// A retryable failure or a timeout. A failed trial reopens at once.
    pub(crate) fn record_failure(&mut self, now: Instant, threshold: u32, open_for: Duration) {
        self.state = match self.state {
            State::Closed {
                consecutive_failures,
            } if consecutive_failures + 1 < threshold.max(1) => State::Closed {
                consecutive_failures: consecutive_failures + 1,
            },
            State::Closed { .. } | State::HalfOpen { .. } => State::Open {
                until: now + open_for,
            },
            // Late reports from requests sent before the breaker opened do not extend it.
            open @ State::Open { .. } => open,
        };
    }

    /// The trial ended without telling anything about the model's health (cancelled, or a
    /// non-retryable error such as a 400): let the next caller try.
    pub(crate) fn release_trial(&mut self) {
        if let State::HalfOpen {
            trial_in_flight: true,
        } = self.state
        {
            self.state = State::HalfOpen {
                trial_in_flight: false,
            };
        }
    }

    /// Another process opened this model's breaker until `until`: skip it here too, unless
    /// it is open already.
    pub(crate) fn open_until(&mut self, until: Instant) {
        if !self.is_open() {
            self.state = State::Open { until };
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: Duration = Duration::from_secs(30);

    #[test]
    fn opens_after_threshold_then_half_opens_for_one_trial() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        for _ in 0..2 {
            b.record_failure(t0, 3, OPEN);
            assert_eq!(b.admit(t0), Admission::Open);
        }
        b.record_failure(t0, 3, OPEN);
        assert_eq!(
            b.admit(t0 + Duration::from_secs(10)),
            Admission::Rejected {
                retry_in: Duration::from_secs(20)
            }
        );
        let later = t0 + OPEN;
        assert_eq!(b.admit(later), Admission::Trial);
        assert!(matches!(b.admit(later), Admission::Rejected { .. }));
        b.record_success();
        assert_eq!(b.admit(later), Admission::Open);
        assert!(b.is_closed());
    }

    #[test]
    fn failed_trial_reopens_and_released_trial_lets_the_next_caller_try() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        b.record_failure(t0, 1, OPEN);
        let later = t0 + OPEN;
        assert_eq!(b.admit(later), Admission::Trial);
        b.release_trial();
        assert_eq!(b.admit(later), Admission::Trial);
        b.record_failure(later, 1, OPEN);
        assert_eq!(b.admit(later), Admission::Rejected { retry_in: OPEN });
    }

    #[test]
    fn success_resets_the_failure_count() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        b.record_failure(t0, 2, OPEN);
        b.record_success();
        b.record_failure(t0, 2, OPEN);
        assert_eq!(b.admit(t0), Admission::Open);
    }
}
