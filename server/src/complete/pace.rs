//! The adaptive debounce: how long a completion waits before it asks, from how fast the user types.

use std::time::{Duration, Instant};

/// The debounce is this much longer than the user's mean interval between keystrokes, so that
/// steady typing never reaches the provider and a pause does, one interval later.
const OVER_MEAN: f64 = 1.25;
/// It never grows past this many times `completion.debounce_ms`.
const MAX_FACTOR: u32 = 4;
/// Intervals longer than this many times `completion.debounce_ms` are pauses, not typing.
const PAUSE_FACTOR: u32 = 8;
/// Weight of the newest interval in the mean.
const WEIGHT: f64 = 0.2;

/// The pace of the completion requests of one kind (one per keystroke in VS Code and Neovim).
#[derive(Clone, Debug, Default)]
pub struct Pace {
    last: Option<Instant>,
    /// Exponentially weighted mean of the intervals between keystrokes, seconds.
    mean: Option<f64>,
}

impl Pace {
    /// Notes a request that arrived `now`, and returns how long it waits before asking: the
    /// configured `debounce`, or longer while the user types steadily slower than that (up to
    /// [`MAX_FACTOR`] times it).
    pub fn debounce(&mut self, now: Instant, debounce: Duration) -> Duration {
        if let Some(last) = self.last {
            let interval = now.saturating_duration_since(last);
            if interval <= debounce * PAUSE_FACTOR {
                let s = interval.as_secs_f64();
                self.mean = Some(self.mean.map_or(s, |m| m + WEIGHT * (s - m)));
            }
        }
        self.last = Some(now);
        let wanted = Duration::from_secs_f64(self.mean.unwrap_or(0.0) * OVER_MEAN);
        wanted.clamp(debounce, debounce * MAX_FACTOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_typing_waits_past_its_interval_and_pauses_do_not_count() {
        let base = Duration::from_millis(75);
        let mut pace = Pace::default();
        let t0 = Instant::now();
        assert_eq!(pace.debounce(t0, base), base);
        // Ten characters a second: 125 ms, so no keystroke's request is sent before the next.
        let mut t = t0;
        for _ in 0..20 {
            t += Duration::from_millis(100);
            pace.debounce(t, base);
        }
        t += Duration::from_millis(100);
        let d = pace.debounce(t, base);
        assert!((124..=126).contains(&d.as_millis()), "{d:?}");
        // A pause of 600 ms (longer than 8 × 75 ms is none) leaves the pace as it was.
        t += Duration::from_millis(601);
        assert_eq!(pace.debounce(t, base).as_millis(), d.as_millis());
        // Fast typing never goes below the configured debounce; slow typing stops at 4 times it.
        let mut fast = Pace::default();
        for i in 0..10 {
            assert_eq!(
                fast.debounce(t0 + Duration::from_millis(10 * i), base),
                base
            );
        }
        let mut slow = Pace::default();
        for i in 0..10 {
            slow.debounce(t0 + Duration::from_millis(550 * i), base);
        }
        assert_eq!(
            slow.debounce(t0 + Duration::from_millis(5500), base),
            base * 4
        );
    }
}
