//! Per-model latency statistics: a ring of recent time-to-first-token and tokens/s samples.

use std::collections::VecDeque;
use std::time::Duration;

/// Samples kept per model; old ones fall out so the statistics follow the provider's mood.
const WINDOW: usize = 256;
/// Weight of the newest sample in the moving averages.
const EWMA_ALPHA: f64 = 0.2;

/// A snapshot of one model's recent latency.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyStats {
    /// Time-to-first-token samples in the window (observed first tokens, plus lower bounds from
    /// requests dropped before their first token, see `Recorder::record_censored_ttft`).
    pub ttft_samples: usize,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p90_ms: Option<f64>,
    pub ttft_ewma_ms: Option<f64>,
    pub tokens_per_sec_p50: Option<f64>,
    pub tokens_per_sec_ewma: Option<f64>,
}

/// Collects samples for one model.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    ttft_ms: VecDeque<f64>,
    ttft_ewma: Option<f64>,
    tps: VecDeque<f64>,
    tps_ewma: Option<f64>,
}

impl Recorder {
    /// A first token arrived `ttft` after its request was sent.
    pub(crate) fn record_ttft(&mut self, ttft: Duration) {
        let ms = ttft.as_secs_f64() * 1000.0;
        push(&mut self.ttft_ms, ms);
        self.ttft_ewma = Some(ewma(self.ttft_ewma, ms));
    }

    /// A request was dropped (it lost a hedge race) `waited` after it was sent, before any token.
    ///
    /// Its time to first token is at least `waited`. Keeping only the winners would hide exactly
    /// the slow tail the hedge delay must see, so the lower bound goes into the percentiles (not
    /// into the moving average, which describes typical answers).
    pub(crate) fn record_censored_ttft(&mut self, waited: Duration) {
        push(&mut self.ttft_ms, waited.as_secs_f64() * 1000.0);
    }

    /// Output speed of a finished stream, measured from its first token.
    pub(crate) fn record_speed(&mut self, output_tokens: u64, streaming: Duration) {
        let secs = streaming.as_secs_f64();
        if output_tokens < 2 || secs <= 0.0 {
            return;
        }
        let tps = output_tokens as f64 / secs;
        push(&mut self.tps, tps);
        self.tps_ewma = Some(ewma(self.tps_ewma, tps));
    }

    pub(crate) fn ttft_samples(&self) -> usize {
        self.ttft_ms.len()
    }

    pub(crate) fn ttft_quantile_ms(&self, q: f64) -> Option<f64> {
        quantile(&self.ttft_ms, q)
    }

    pub(crate) fn snapshot(&self) -> LatencyStats {
        LatencyStats {
            ttft_samples: self.ttft_ms.len(),
            ttft_p50_ms: quantile(&self.ttft_ms, 0.5),
            ttft_p90_ms: quantile(&self.ttft_ms, 0.9),
            ttft_ewma_ms: self.ttft_ewma,
            tokens_per_sec_p50: quantile(&self.tps, 0.5),
            tokens_per_sec_ewma: self.tps_ewma,
        }
    }
}

fn push(ring: &mut VecDeque<f64>, x: f64) {
    if ring.len() == WINDOW {
        ring.pop_front();
    }
    ring.push_back(x);
}

fn ewma(prev: Option<f64>, x: f64) -> f64 {
    match prev {
        Some(p) => p + EWMA_ALPHA * (x - p),
        None => x,
    }
}

/// Nearest-rank quantile; sorting 256 floats is cheaper than keeping a structure sorted.
fn quantile(samples: &VecDeque<f64>, q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted: Vec<f64> = samples.iter().copied().collect();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_ewma() {
        let mut r = Recorder::default();
        assert_eq!(r.snapshot(), LatencyStats::default());
        for ms in 1..=100 {
            r.record_ttft(Duration::from_millis(ms));
        }
        let s = r.snapshot();
        assert_eq!(s.ttft_samples, 100);
        assert_eq!(s.ttft_p50_ms, Some(50.0));
        assert_eq!(s.ttft_p90_ms, Some(90.0));
        // The average leans towards recent samples.
        assert!(s.ttft_ewma_ms.is_some_and(|e| e > 80.0 && e < 100.0), "{s:?}");
    }

    #[test]
    fn window_forgets_old_samples() {
        let mut r = Recorder::default();
        for _ in 0..WINDOW {
            r.record_ttft(Duration::from_secs(5));
        }
        for _ in 0..WINDOW {
            r.record_ttft(Duration::from_millis(100));
        }
        assert_eq!(r.ttft_samples(), WINDOW);
        assert_eq!(r.ttft_quantile_ms(0.9), Some(100.0));
    }

    #[test]
    fn censored_samples_count_in_percentiles_only() {
        let mut r = Recorder::default();
        r.record_ttft(Duration::from_millis(100));
        r.record_censored_ttft(Duration::from_millis(2000));
        let s = r.snapshot();
        assert_eq!(s.ttft_samples, 2);
        assert_eq!(s.ttft_p90_ms, Some(2000.0));
        assert_eq!(s.ttft_ewma_ms, Some(100.0));
    }

    #[test]
    fn speed_ignores_degenerate_streams() {
        let mut r = Recorder::default();
        r.record_speed(1, Duration::from_secs(1));
        r.record_speed(100, Duration::ZERO);
        assert_eq!(r.snapshot().tokens_per_sec_p50, None);
        r.record_speed(100, Duration::from_millis(500));
        assert_eq!(r.snapshot().tokens_per_sec_p50, Some(200.0));
    }
}
