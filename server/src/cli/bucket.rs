//! A token bucket that paces the requests the CLI starts, so a review of many files does not
//! trip the provider's rate limit.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Allows `rate` starts per second on average and bursts of up to `burst`. Callers are served
/// in the order they ask: each reservation takes the next free slot, so waiting is fair and
/// the pacing does not depend on how the runtime schedules them.
pub struct TokenBucket {
    state: Mutex<Pacer>,
}

impl TokenBucket {
    /// `rate` > 0 starts per second, `burst` >= 1.
    pub fn new(rate: f64, burst: u32) -> TokenBucket {
        TokenBucket {
            state: Mutex::new(Pacer::new(rate, burst, Instant::now())),
        }
    }

    /// Waits until the caller may start one request. Uses tokio's clock, so tests with paused
    /// time see exact instants.
    pub async fn acquire(&self) {
        let wait = {
            let mut pacer = self.state.lock().unwrap_or_else(|e| e.into_inner());
            pacer.reserve(Instant::now())
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The arithmetic of the bucket, separate from any clock so it can be checked exactly.
#[derive(Clone, Debug)]
pub struct Pacer {
    rate: f64,
    burst: f64,
    /// Tokens available at `at`; negative when slots are already promised to waiters.
    tokens: f64,
    at: Instant,
}

impl Pacer {
    pub fn new(rate: f64, burst: u32, now: Instant) -> Pacer {
        let burst = f64::from(burst.max(1));
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        Pacer {
            rate,
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Takes one token at `now` and returns how long the caller must wait before using it.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        if now > self.at {
            let refill = now.duration_since(self.at).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.burst);
            self.at = now;
        }
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> u128 {
        d.as_millis()
    }

    #[test]
    fn reservations_are_spaced_by_the_rate_after_the_burst() {
        let t0 = Instant::now();
        let mut p = Pacer::new(4.0, 2, t0);
        let waits: Vec<u128> = (0..6).map(|_| ms(p.reserve(t0))).collect();
        assert_eq!(waits, [0, 0, 250, 500, 750, 1000]);
    }

    #[test]
    fn idle_time_refills_up_to_the_burst_only() {
        let t0 = Instant::now();
        let mut p = Pacer::new(2.0, 3, t0);
        for _ in 0..3 {
            assert_eq!(p.reserve(t0), Duration::ZERO);
        }
        // Ten idle seconds refill three tokens, not twenty.
        let later = t0 + Duration::from_secs(10);
        let waits: Vec<u128> = (0..5).map(|_| ms(p.reserve(later))).collect();
        assert_eq!(waits, [0, 0, 0, 500, 1000]);
        // A caller arriving as a promised slot frees waits only for the rest.
        let mid = later + Duration::from_millis(250);
        assert_eq!(ms(p.reserve(mid)), 1250);
    }

    #[test]
    fn nonsense_rates_fall_back_to_one_per_second() {
        let t0 = Instant::now();
        let mut p = Pacer::new(0.0, 1, t0);
        assert_eq!(p.reserve(t0), Duration::ZERO);
        assert_eq!(ms(p.reserve(t0)), 1000);
    }

    /// The async wrapper on a real clock: three starts at 50/s with no burst take at least 40 ms
    /// in total. Only a lower bound is asserted, which a slow machine cannot break.
    #[tokio::test]
    async fn acquire_waits_for_its_slot() {
        let bucket = TokenBucket::new(50.0, 1);
        let start = Instant::now();
        for _ in 0..3 {
            bucket.acquire().await;
        }
        assert!(
            start.elapsed() >= Duration::from_millis(39),
            "{:?}",
            start.elapsed()
        );
    }
}
