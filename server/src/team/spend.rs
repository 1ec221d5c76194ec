//! The shared ledger of one UTC day: one Redis hash per day with the spend, requests and lookups per tier.
//!
//! Fields: `cost_usd` and `requests` for the day, and `tier.<name>.<counter>` per tier. Every
//! booking is one atomic pipeline of increments, so processes never overwrite each other's.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The day's spend in USD, every tier together.
pub(super) const TOTAL_COST: &str = "cost_usd";
const TOTAL_REQUESTS: &str = "requests";
/// A day's hash outlives its day by a week, for `team stats` of late workers; then it expires.
const KEEP_SECS: u64 = 8 * 86_400;

/// One increment.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Add {
    Int(i64),
    Float(f64),
}

/// Today's figures of one tier.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TierDay {
    pub tier: String,
    /// Upstream requests, hedges and retries included.
    pub requests: u64,
    pub cost_usd: f64,
    /// Lookups answered by a cache (this machine's or the team's).
    pub hits: u64,
    /// Of `hits`, those answered from Redis.
    pub team_hits: u64,
    /// Lookups that went upstream.
    pub misses: u64,
}

impl TierDay {
    /// Share of lookups answered by a cache; `None` before the first.
    pub fn hit_rate(&self) -> Option<f64> {
        let total = self.hits + self.misses;
        (total > 0).then(|| self.hits as f64 / total as f64)
    }
}

/// What `codetier team stats` shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DayStats {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub cost_usd: f64,
    pub requests: u64,
    pub hits: u64,
    pub team_hits: u64,
    pub misses: u64,
    pub hit_rate: Option<f64>,
    pub daily_budget_usd: Option<f64>,
    /// Seconds until the day (and with it the budget) resets.
    pub resets_in_secs: u64,
    pub per_tier: Vec<TierDay>,
}

impl DayStats {
    pub(super) fn from_fields(
        day: String,
        resets_in_secs: u64,
        daily_budget_usd: Option<f64>,
        fields: &HashMap<String, String>,
    ) -> DayStats {
        let float = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .unwrap_or(0.0)
        };
        let int = |v: &str| v.parse::<u64>().unwrap_or(0);
        let mut tiers: BTreeMap<String, TierDay> = BTreeMap::new();
        let mut stats = DayStats {
            day,
            daily_budget_usd,
            resets_in_secs,
            ..DayStats::default()
        };
        for (name, value) in fields {
            if name == TOTAL_COST {
                stats.cost_usd = float(value);
            } else if name == TOTAL_REQUESTS {
                stats.requests = int(value);
            } else if let Some((tier, counter)) =
                name.strip_prefix("tier.").and_then(|r| r.rsplit_once('.'))
            {
                let t = tiers.entry(tier.to_owned()).or_insert_with(|| TierDay {
                    tier: tier.to_owned(),
                    ..TierDay::default()
                });
                match counter {
                    "requests" => t.requests = int(value),
                    "cost_usd" => t.cost_usd = float(value),
                    "hits" => t.hits = int(value),
                    "team_hits" => t.team_hits = int(value),
                    "misses" => t.misses = int(value),
                    _ => {}
                }
            }
        }
        stats.per_tier = tiers.into_values().collect();
        stats.hits = stats.per_tier.iter().map(|t| t.hits).sum();
        stats.team_hits = stats.per_tier.iter().map(|t| t.team_hits).sum();
        stats.misses = stats.per_tier.iter().map(|t| t.misses).sum();
        let total = stats.hits + stats.misses;
        stats.hit_rate = (total > 0).then(|| stats.hits as f64 / total as f64);
        stats
    }
}

pub(super) fn request_fields(tier: &str, cost_usd: Option<f64>) -> Vec<(String, Add)> {
    let mut fields = vec![
        (TOTAL_REQUESTS.to_owned(), Add::Int(1)),
        (format!("tier.{tier}.requests"), Add::Int(1)),
    ];
    if let Some(cost) = cost_usd.filter(|c| c.is_finite() && *c > 0.0) {
        fields.push((TOTAL_COST.to_owned(), Add::Float(cost)));
        fields.push((format!("tier.{tier}.cost_usd"), Add::Float(cost)));
    }
    fields
}

pub(super) fn lookup_fields(tier: &str, hit: bool, team: bool) -> Vec<(String, Add)> {
    let mut fields = vec![(
        format!("tier.{tier}.{}", if hit { "hits" } else { "misses" }),
        Add::Int(1),
    )];
    if hit && team {
        fields.push((format!("tier.{tier}.team_hits"), Add::Int(1)));
    }
    fields
}

/// One atomic pipeline of the increments, and the expiry of the day's hash.
pub(super) fn pipeline(key: &str, fields: &[(String, Add)]) -> redis::Pipeline {
    let mut p = redis::pipe();
    p.atomic();
    for (field, add) in fields {
        match add {
            Add::Int(n) => p.cmd("HINCRBY").arg(key).arg(field).arg(*n).ignore(),
            Add::Float(f) => p.cmd("HINCRBYFLOAT").arg(key).arg(field).arg(*f).ignore(),
        };
    }
    p.cmd("EXPIRE").arg(key).arg(KEEP_SECS).ignore();
    p
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The UTC day of `unix` as `YYYY-MM-DD` (Howard Hinnant's civil-from-days).
pub fn day_of(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Seconds from `unix` to the next UTC midnight.
pub fn seconds_to_midnight(unix: u64) -> u64 {
    86_400 - unix % 86_400
}

/// "at 00:00 UTC, in 3 h 12 min".
pub fn reset_in_words(secs: u64) -> String {
    let h = secs / 3600;
    let m = (secs % 3600).div_ceil(60);
    let left = if h > 0 {
        format!("{h} h {m} min")
    } else {
        format!("{m} min")
    };
    format!("at 00:00 UTC, in {left}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(951_782_400), "2000-02-29");
        assert_eq!(day_of(1_798_761_599), "2026-12-31");
        assert_eq!(day_of(1_798_761_600), "2027-01-01");
        assert_eq!(seconds_to_midnight(1_798_761_599), 1);
        assert_eq!(seconds_to_midnight(1_798_761_600), 86_400);
        assert_eq!(
            reset_in_words(3 * 3600 + 11 * 60 + 5),
            "at 00:00 UTC, in 3 h 12 min"
        );
        assert_eq!(reset_in_words(59), "at 00:00 UTC, in 1 min");
    }

    #[test]
    fn a_day_hash_reads_back_per_tier() {
        let mut fields = HashMap::new();
        for (k, v) in [
            ("cost_usd", "0.5"),
            ("requests", "3"),
            ("tier.flash.requests", "2"),
            ("tier.flash.cost_usd", "0.25"),
            ("tier.flash.hits", "6"),
            ("tier.flash.team_hits", "4"),
            ("tier.flash.misses", "2"),
            ("tier.a.b.misses", "1"),
            ("junk", "x"),
        ] {
            fields.insert(k.to_owned(), v.to_owned());
        }
        let s = DayStats::from_fields("2026-12-02".into(), 60, Some(1.0), &fields);
        assert_eq!(
            (s.cost_usd, s.requests, s.hits, s.team_hits, s.misses),
            (0.5, 3, 6, 4, 3)
        );
        assert_eq!(s.hit_rate, Some(6.0 / 9.0));
        assert_eq!(s.per_tier.len(), 2);
        assert_eq!(s.per_tier[0].tier, "a.b");
        assert_eq!(s.per_tier[1].hit_rate(), Some(0.75));
    }
}
