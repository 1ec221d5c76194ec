//! Per-model latency statistics: a ring of recent time-to-first-token and tokens/s samples.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

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
/// One time-to-first-token observation.
#[derive(Clone, Copy, Debug)]
struct Sample {
    ms: f64,
    /// The request was dropped before its first token: its TTFT is at least `ms`.
    censored: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Recorder {
    ttft_ms: VecDeque<Sample>,
    ttft_ewma: Option<f64>,
    tps: VecDeque<f64>,
    tps_ewma: Option<f64>,
    /// Requests sent and still waiting for their first token, by id: each is a censored sample
    /// in the making. Without them, the first samples after a burst of concurrent requests are
    /// only the fast ones, and the hedge delay would start far too low.
    waiting: HashMap<u64, Instant>,
    next_id: u64,
}

impl Recorder {
    /// A first token arrived `ttft` after its request was sent.
    pub(crate) fn record_ttft(&mut self, ttft: Duration) {
        let ms = ttft.as_secs_f64() * 1000.0;
        push(
            &mut self.ttft_ms,
            Sample {
                ms,
                censored: false,
            },
        );
        self.ttft_ewma = Some(ewma(self.ttft_ewma, ms));
    }

    /// A request was dropped `waited` after it was sent, before any token (it lost a hedge race,
    /// or the deadline or the caller cancelled it).
    ///
    /// Its time to first token is at least `waited`. Keeping only the winners would hide exactly
    /// the slow tail the hedge delay must see, and counting `waited` as a plain sample would drag
    /// the percentiles down (a hedge dropped by the deadline waited only a short while), so it
    /// enters the percentiles as a right-censored sample (and stays out of the moving average,
    /// which describes typical answers).
    pub(crate) fn record_censored_ttft(&mut self, waited: Duration) {
        push(
            &mut self.ttft_ms,
            Sample {
                ms: waited.as_secs_f64() * 1000.0,
                censored: true,
            },
        );
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

    /// A request was sent at `sent`; returns the id to pass to `stop_waiting`.
    pub(crate) fn start_waiting(&mut self, sent: Instant) -> u64 {
        self.next_id += 1;
        self.waiting.insert(self.next_id, sent);
        self.next_id
    }

    /// The request got its first token, failed or was dropped (idempotent).
    pub(crate) fn stop_waiting(&mut self, id: u64) {
        self.waiting.remove(&id);
    }

    pub(crate) fn ttft_samples(&self) -> usize {
        self.ttft_ms.len()
    }

    /// Quantiles `qs` (ascending) of time to first token, counting requests still waiting at
    /// `now` as censored samples; one sort for all of them.
    pub(crate) fn ttft_quantiles_ms<const N: usize>(
        &self,
        qs: [f64; N],
        now: Instant,
    ) -> Option<[f64; N]> {
        let waiting = self.waiting.values().map(|sent| Sample {
            ms: now.saturating_duration_since(*sent).as_secs_f64() * 1000.0,
            censored: true,
        });
        censored_quantiles(self.ttft_ms.iter().copied().chain(waiting), qs)
    }

    pub(crate) fn snapshot(&self) -> LatencyStats {
        let quantiles = censored_quantiles(self.ttft_ms.iter().copied(), [0.5, 0.9]);
        LatencyStats {
            ttft_samples: self.ttft_ms.len(),
            ttft_p50_ms: quantiles.map(|[p50, _]| p50),
            ttft_p90_ms: quantiles.map(|[_, p90]| p90),
            ttft_ewma_ms: self.ttft_ewma,
            tokens_per_sec_p50: quantile(&self.tps, 0.5),
            tokens_per_sec_ewma: self.tps_ewma,
        }
    }
}

fn push<T>(ring: &mut VecDeque<T>, x: T) {
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

/// Quantiles (`qs` ascending) of right-censored samples from the Kaplan-Meier estimate of the
/// distribution: for each `q`, the smallest observed time `t` with estimated `P(TTFT <= t) >= q`.
/// Without censored samples this is the nearest-rank quantile. When too many samples are
/// censored to reach `q`, the largest sample is returned: the quantile is at least that.
fn censored_quantiles<const N: usize>(
    samples: impl Iterator<Item = Sample>,
    qs: [f64; N],
) -> Option<[f64; N]> {
    let mut sorted: Vec<Sample> = samples.collect();
    // At equal times, a first token counts before a drop (the usual Kaplan-Meier convention).
    sorted.sort_by(|a, b| a.ms.total_cmp(&b.ms).then(a.censored.cmp(&b.censored)));
    let last = sorted.last()?.ms;
    let mut out = [last; N];
    let mut next = 0;
    let mut at_risk = sorted.len() as f64;
    let mut survival = 1.0;
    for s in &sorted {
        if !s.censored {
            survival *= (at_risk - 1.0) / at_risk;
            while next < N && 1.0 - survival >= qs[next] - 1e-9 {
                out[next] = s.ms;
                next += 1;
            }
            if next == N {
                break;
            }
        }
        at_risk -= 1.0;
    }
    Some(out)
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
        assert!(
            s.ttft_ewma_ms.is_some_and(|e| e > 80.0 && e < 100.0),
            "{s:?}"
        );
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
        assert_eq!(
            r.ttft_quantiles_ms([0.9], Instant::now()).map(|[q]| q),
            Some(100.0)
        );
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
    fn censored_quantile_matches_kaplan_meier() {
        let mut r = Recorder::default();
        // Observed 10, 30, 50, 70; dropped (still waiting) at 20 and 40.
        for ms in [10, 30, 50, 70] {
            r.record_ttft(Duration::from_millis(ms));
        }
        for ms in [20, 40] {
            r.record_censored_ttft(Duration::from_millis(ms));
        }
        let now = Instant::now();
        // S(10) = 5/6; S(30) = 5/6 * 3/4 = 0.625; S(50) = 0.625 * 1/2 = 0.3125; S(70) = 0.
        assert_eq!(r.ttft_quantiles_ms([0.15], now).map(|[q]| q), Some(10.0));
        assert_eq!(r.ttft_quantiles_ms([0.3], now).map(|[q]| q), Some(30.0));
        assert_eq!(r.ttft_quantiles_ms([0.5], now).map(|[q]| q), Some(50.0));
        assert_eq!(r.ttft_quantiles_ms([0.9], now).map(|[q]| q), Some(70.0));
        // A plain nearest-rank over the same numbers would say 30 for the median: the drops at
        // 20 and 40 are not fast answers.

        // Two requests waiting for a long time push the upper quantiles out of reach.
        let id = r.start_waiting(now - Duration::from_secs(10));
        r.start_waiting(now - Duration::from_secs(10));
        assert_eq!(r.ttft_quantiles_ms([0.9], now).map(|[q]| q), Some(10_000.0));
        // Fewer at risk after the drops: S(30) = 7/8 * 5/6 < 0.75.
        assert_eq!(r.ttft_quantiles_ms([0.25], now).map(|[q]| q), Some(30.0));
        assert_eq!(
            r.ttft_quantiles_ms([0.25, 0.3, 0.9], now),
            Some([30.0, 50.0, 10_000.0])
        );
        r.stop_waiting(id);
        r.stop_waiting(id);
        assert_eq!(r.waiting.len(), 1);
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
