//! Usage ledger: tokens, requests, cache hits and cost per tier for the session.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::config::{known_model, TierConfig};
use crate::provider::TokenUsage;

/// Cost of `output_tokens` at a price in USD per million output tokens; `None` when no price is known.
///
/// Only output prices are known for our models, so input tokens are never priced.
pub fn cost_usd(output_tokens: u64, output_usd_per_million: Option<f64>) -> Option<f64> {
    output_usd_per_million.map(|price| output_tokens as f64 * price / 1_000_000.0)
}

/// Output price of `model` when it answered for `tier`.
///
/// The tier's configured price applies to the tier's own model; any other model (a fallback)
/// is priced from the built-in known models, or not at all.
pub fn output_price(tier: Option<&TierConfig>, model: &str) -> Option<f64> {
    let configured = tier
        .filter(|t| t.model == model)
        .and_then(|t| t.output_usd_per_million);
    configured.or_else(|| known_model(model).map(|k| k.output_usd_per_million))
}

/// Totals of one tier.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TierUsage {
    pub tier: String,
    /// Models that answered for this tier (its own, and any fallback), in order of first use.
    pub models: Vec<String>,
    /// Upstream requests, hedged duplicates and retries included: they are real spend.
    pub requests: u64,
    pub cache_hits: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// `None` while no request of this tier had a known price.
    pub cost_usd: Option<f64>,
    /// What cache hits would have cost upstream; `None` while no hit had a known price.
    pub saved_usd: Option<f64>,
}

/// Session totals, per tier in tier-name order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    pub per_tier: Vec<TierUsage>,
    pub total_cost_usd: Option<f64>,
    pub total_saved_usd: Option<f64>,
}

/// The session's ledger; cheap to update from any task (one short mutex section per call).
#[derive(Debug, Default)]
pub struct Ledger {
    tiers: Mutex<BTreeMap<String, TierUsage>>,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// One upstream request of `tier` answered (or attempted) by `model`.
    pub fn record(&self, tier: &str, model: &str, usage: TokenUsage, cost: Option<f64>) {
        self.update(tier, model, |t| {
            t.requests += 1;
            t.input_tokens += usage.input_tokens;
            t.output_tokens += usage.output_tokens;
            t.cost_usd = add(t.cost_usd, cost);
        });
    }

    /// An answer served from the cache. Its usage is what the original request spent, already
    /// counted then, so a hit adds no tokens: only the hit and what it saved.
    pub fn record_cache_hit(
        &self,
        tier: &str,
        model: &str,
        _usage: TokenUsage,
        saved: Option<f64>,
    ) {
        self.update(tier, model, |t| {
            t.cache_hits += 1;
            t.saved_usd = add(t.saved_usd, saved);
        });
    }

    pub fn report(&self) -> UsageReport {
        let per_tier: Vec<TierUsage> = match self.tiers.lock() {
            Ok(tiers) => tiers.values().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().values().cloned().collect(),
        };
        let total_cost_usd = per_tier.iter().fold(None, |acc, t| add(acc, t.cost_usd));
        let total_saved_usd = per_tier.iter().fold(None, |acc, t| add(acc, t.saved_usd));
        UsageReport {
            per_tier,
            total_cost_usd,
            total_saved_usd,
        }
    }

    fn update(&self, tier: &str, model: &str, f: impl FnOnce(&mut TierUsage)) {
        // A panic elsewhere must not stop accounting: the data is plain counters.
        let mut tiers = match self.tiers.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let entry = tiers.entry(tier.to_owned()).or_insert_with(|| TierUsage {
            tier: tier.to_owned(),
            ..TierUsage::default()
        });
        if !entry.models.iter().any(|m| m == model) {
            entry.models.push(model.to_owned());
        }
        f(entry);
    }
}

fn add(acc: Option<f64>, x: Option<f64>) -> Option<f64> {
    match (acc, x) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
    }
}

fn usd(x: Option<f64>) -> String {
    match x {
        Some(v) => format!("${v:.6}"),
        None => "n/a".to_owned(),
    }
}

impl fmt::Display for UsageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = [
            "tier",
            "requests",
            "cache hits",
            "tokens in",
            "tokens out",
            "cost",
            "saved",
        ];
        let mut rows: Vec<[String; 7]> = self
            .per_tier
            .iter()
            .map(|t| {
                [
                    t.tier.clone(),
                    t.requests.to_string(),
                    t.cache_hits.to_string(),
                    t.input_tokens.to_string(),
                    t.output_tokens.to_string(),
                    usd(t.cost_usd),
                    usd(t.saved_usd),
                ]
            })
            .collect();
        let sum = |g: fn(&TierUsage) -> u64| self.per_tier.iter().map(g).sum::<u64>().to_string();
        rows.push([
            "total".to_owned(),
            sum(|t| t.requests),
            sum(|t| t.cache_hits),
            sum(|t| t.input_tokens),
            sum(|t| t.output_tokens),
            usd(self.total_cost_usd),
            usd(self.total_saved_usd),
        ]);
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[&str]| -> fmt::Result {
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i == 0 {
                    write!(f, "{cell:<w$}")?;
                } else {
                    write!(f, "  {cell:>w$}")?;
                }
            }
            writeln!(f)
        };
        line(f, &header)?;
        for row in &rows {
            line(f, &row.each_ref().map(String::as_str))?;
        }
        write!(
            f,
            "Cost counts output tokens only: no input prices are known."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn usage(input: u64, output: u64) -> TokenUsage {
        TokenUsage {
            input_tokens: input,
            output_tokens: output,
        }
    }

    #[test]
    fn cost_is_output_tokens_times_price() {
        assert_eq!(cost_usd(2_000_000, Some(0.25)), Some(0.5));
        assert_eq!(cost_usd(2_000_000, None), None);
    }

    #[test]
    fn fallback_model_is_priced_as_itself() {
        let config = Config::default();
        let flash = config.tiers.get("flash");
        assert_eq!(output_price(flash, "deepseek-v4-flash"), Some(0.25));
        assert_eq!(output_price(flash, "deepseek-r1"), Some(2.50));
        assert_eq!(output_price(flash, "my-local-llama"), None);
        let mut custom = config.tiers["flash"].clone();
        custom.model = "my-local-llama".into();
        custom.output_usd_per_million = Some(0.1);
        assert_eq!(output_price(Some(&custom), "my-local-llama"), Some(0.1));
    }

    #[test]
    fn ledger_totals_per_tier_and_overall() {
        let ledger = Ledger::new();
        ledger.record(
            "flash",
            "deepseek-v4-flash",
            usage(100, 400),
            cost_usd(400, Some(0.25)),
        );
        ledger.record(
            "flash",
            "deepseek-coder",
            usage(100, 0),
            cost_usd(0, Some(0.25)),
        );
        ledger.record("reasoning", "deepseek-r1", usage(50, 1_000_000), Some(2.5));
        ledger.record_cache_hit("flash", "deepseek-v4-flash", usage(100, 400), Some(0.0001));
        ledger.record("local", "my-llama", usage(10, 10), None);
        let report = ledger.report();
        let names: Vec<&str> = report.per_tier.iter().map(|t| t.tier.as_str()).collect();
        assert_eq!(names, ["flash", "local", "reasoning"]);
        let flash = &report.per_tier[0];
        assert_eq!(flash.models, ["deepseek-v4-flash", "deepseek-coder"]);
        assert_eq!((flash.requests, flash.cache_hits), (2, 1));
        assert_eq!((flash.input_tokens, flash.output_tokens), (200, 400));
        assert_eq!(flash.cost_usd, Some(0.0001));
        assert_eq!(flash.saved_usd, Some(0.0001));
        assert_eq!(report.per_tier[1].cost_usd, None);
        assert_eq!(report.total_cost_usd, Some(2.5001));
        assert_eq!(report.total_saved_usd, Some(0.0001));
    }

    #[test]
    fn report_serializes_and_prints_a_table() {
        let ledger = Ledger::new();
        ledger.record("flash", "deepseek-v4-flash", usage(120, 480), Some(0.00012));
        let report = ledger.report();
        let json = serde_json::to_value(&report).unwrap_or_default();
        assert_eq!(json["per_tier"][0]["output_tokens"], 480);
        assert_eq!(json["total_saved_usd"], serde_json::Value::Null);
        let table = report.to_string();
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].starts_with("tier") && lines[0].ends_with("saved"),
            "{table}"
        );
        assert!(
            lines[1].starts_with("flash") && lines[1].contains("$0.000120"),
            "{table}"
        );
        assert!(
            lines[2].starts_with("total") && lines[2].ends_with("n/a"),
            "{table}"
        );
        assert!(lines[3].contains("no input prices"), "{table}");
    }
}
