//! Usage ledger: tokens, requests, cache hits and cost per tier for the session.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::config::{known_model, TierConfig};
use crate::provider::TokenUsage;
use crate::team::Team;

/// Cost of `output_tokens` at a price in USD per million output tokens; `None` when no price is known.
///
/// Only output prices are known for our models, so input tokens are never priced.
pub fn cost_usd(output_tokens: u64, output_usd_per_million: Option<f64>) -> Option<f64> {
    output_usd_per_million.map(|price| output_tokens as f64 * price / 1_000_000.0)
}

/// A cost in dollars for people: `$0.00002`, or `~$0.00002` when it rests on estimated tokens
/// (`TokenUsage::estimated`). Every place that shows a cost formats it here.
pub fn format_usd(cost: f64, decimals: usize, estimated: bool) -> String {
    let mark = if estimated { "~" } else { "" };
    // -0.0 (an empty float sum) is shown as what it is: nothing spent.
    let cost = if cost == 0.0 { 0.0 } else { cost };
    format!("{mark}${cost:.decimals$}")
}

/// What a cost line counts, said next to it: only output tokens have known prices.
pub const COST_BASIS: &str = "output tokens at known prices; input not priced";

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
    /// Some of the tokens (and so the cost) were estimated, not reported by the provider.
    #[serde(default)]
    pub estimated: bool,
    /// Some of the savings rest on estimated tokens.
    #[serde(default)]
    pub saved_estimated: bool,
}

/// Session totals, per tier in tier-name order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    pub per_tier: Vec<TierUsage>,
    pub total_cost_usd: Option<f64>,
    pub total_saved_usd: Option<f64>,
    /// Some tier's tokens or cost were estimated.
    #[serde(default)]
    pub estimated: bool,
    #[serde(default)]
    pub saved_estimated: bool,
    /// Totals of actions booked apart (completions, as `complete`); absent while there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_action: Vec<ActionUsage>,
}

/// Totals of one action booked apart from the tiers (completions: `complete`). The requests,
/// tokens and cost are also in their tier's row.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionUsage {
    pub action: String,
    /// Times the editor asked (each completion request that got as far as being answered or cancelled).
    pub asked: u64,
    /// Upstream requests, including those stopped early or cancelled.
    pub requests: u64,
    /// Answered without an upstream request: from the suggestion being typed, or the cache.
    pub hits: u64,
    /// Cancelled because they went stale: an edit, a newer request or `$/cancelRequest`.
    pub cancelled_stale: u64,
    /// Dropped silently because they ran past their budget.
    pub dropped_late: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: Option<f64>,
    #[serde(default)]
    pub estimated: bool,
    /// `hits / asked`; `None` before the first.
    pub hit_rate: Option<f64>,
    /// `cancelled_stale / asked`; `None` before the first.
    pub stale_share: Option<f64>,
}

/// How one ask of an action booked apart ended, for [`Ledger::record_outcome`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AskOutcome {
    /// Answered (with or without a suggestion) by an upstream request.
    Asked,
    /// Answered without an upstream request.
    Hit,
    /// Cancelled as stale.
    Stale,
    /// Dropped past its budget.
    Late,
}

/// The session's ledger; cheap to update from any task (one short mutex section per call).
/// With a team tier, every request and lookup is also booked into the team's day ledger in
/// Redis (in the background: booking never delays an answer).
#[derive(Debug, Default)]
pub struct Ledger {
    tiers: Mutex<BTreeMap<String, TierUsage>>,
    actions: Mutex<BTreeMap<String, ActionUsage>>,
    team: RwLock<Option<Team>>,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Books into the team's day ledger from now on (`None`: this session only).
    pub fn set_team(&self, team: Option<Team>) {
        *self.team.write().unwrap_or_else(|e| e.into_inner()) = team;
    }

    fn team(&self) -> Option<Team> {
        self.team.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// One lookup of `tier` answered from a cache (`team`: from the team's Redis) or not; it
    /// counts only in the team's day ledger (the session counts hits in `record_cache_hit`).
    pub fn record_lookup(&self, tier: &str, cached: bool, team: bool) {
        if let Some(t) = self.team() {
            t.book_lookup(tier, cached, team);
        }
    }

    /// One upstream request of `tier` answered (or attempted) by `model`.
    pub fn record(&self, tier: &str, model: &str, usage: TokenUsage, cost: Option<f64>) {
        if let Some(team) = self.team() {
            team.book_request(tier, cost);
        }
        self.update(tier, model, |t| {
            t.requests += 1;
            t.input_tokens += usage.input_tokens;
            t.output_tokens += usage.output_tokens;
            t.cost_usd = add(t.cost_usd, cost);
            t.estimated |= usage.estimated;
        });
    }

    /// An answer served from the cache. Its usage is what the original request spent, already
    /// counted then, so a hit adds no tokens: only the hit and what it saved.
    pub fn record_cache_hit(&self, tier: &str, model: &str, usage: TokenUsage, saved: Option<f64>) {
        self.update(tier, model, |t| {
            t.cache_hits += 1;
            t.saved_usd = add(t.saved_usd, saved);
            t.saved_estimated |= usage.estimated && saved.is_some();
        });
    }

    /// One upstream request made for `action` (its tier's row counts it too).
    pub fn record_action(&self, action: &str, usage: TokenUsage, cost: Option<f64>) {
        self.update_action(action, |a| {
            a.requests += 1;
            a.input_tokens += usage.input_tokens;
            a.output_tokens += usage.output_tokens;
            a.cost_usd = add(a.cost_usd, cost);
            a.estimated |= usage.estimated;
        });
    }

    /// How one ask of `action` ended.
    pub fn record_outcome(&self, action: &str, outcome: AskOutcome) {
        self.update_action(action, |a| {
            a.asked += 1;
            match outcome {
                AskOutcome::Asked => {}
                AskOutcome::Hit => a.hits += 1,
                AskOutcome::Stale => a.cancelled_stale += 1,
                AskOutcome::Late => a.dropped_late += 1,
            }
        });
    }

    fn update_action(&self, action: &str, f: impl FnOnce(&mut ActionUsage)) {
        let mut actions = match self.actions.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let entry = actions
            .entry(action.to_owned())
            .or_insert_with(|| ActionUsage {
                action: action.to_owned(),
                ..ActionUsage::default()
            });
        f(entry);
        let asked = entry.asked as f64;
        entry.hit_rate = (entry.asked > 0).then(|| entry.hits as f64 / asked);
        entry.stale_share = (entry.asked > 0).then(|| entry.cancelled_stale as f64 / asked);
    }

    pub fn report(&self) -> UsageReport {
        let per_tier: Vec<TierUsage> = match self.tiers.lock() {
            Ok(tiers) => tiers.values().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().values().cloned().collect(),
        };
        let total_cost_usd = per_tier.iter().fold(None, |acc, t| add(acc, t.cost_usd));
        let total_saved_usd = per_tier.iter().fold(None, |acc, t| add(acc, t.saved_usd));
        let per_action: Vec<ActionUsage> = match self.actions.lock() {
            Ok(a) => a.values().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().values().cloned().collect(),
        };
        UsageReport {
            per_action,
            estimated: per_tier.iter().any(|t| t.estimated),
            saved_estimated: per_tier.iter().any(|t| t.saved_estimated),
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

fn usd(x: Option<f64>, estimated: bool) -> String {
    match x {
        Some(v) => format_usd(v, 6, estimated),
        None => "n/a".to_owned(),
    }
}

impl fmt::Display for UsageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_tiers(f)?;
        self.write_actions(f)?;
        write!(
            f,
            "Cost counts output tokens only: no input prices are known."
        )?;
        if self.estimated || self.saved_estimated {
            write!(
                f,
                "\n~ marks figures from estimated tokens (about 4 characters a token): the \
                 provider reported no usage, or the answer was cut off."
            )?;
        }
        Ok(())
    }
}

impl UsageReport {
    /// The table of tiers, with its total row, columns aligned.
    fn write_tiers(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
                    usd(t.cost_usd, t.estimated),
                    usd(t.saved_usd, t.saved_estimated),
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
            usd(self.total_cost_usd, self.estimated),
            usd(self.total_saved_usd, self.saved_estimated),
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
        Ok(())
    }

    /// One line per action booked apart (completions): its hit rate and how many went stale.
    fn write_actions(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for a in &self.per_action {
            let pct = |x: Option<f64>| x.map_or("n/a".to_owned(), |v| format!("{:.0}%", v * 100.0));
            writeln!(
                f,
                "{}: {} asked, {} upstream requests, {} cost, hit rate {}, cancelled as stale {}, dropped late {}",
                a.action,
                a.asked,
                a.requests,
                usd(a.cost_usd, a.estimated),
                pct(a.hit_rate),
                pct(a.stale_share),
                a.dropped_late
            )?;
        }
        Ok(())
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
            estimated: false,
        }
    }

    #[test]
    fn actions_booked_apart_count_hits_and_stale_asks() {
        let ledger = Ledger::new();
        assert!(ledger.report().per_action.is_empty());
        ledger.record_action("complete", usage(10, 4), Some(0.001));
        ledger.record_outcome("complete", AskOutcome::Asked);
        ledger.record_outcome("complete", AskOutcome::Hit);
        ledger.record_outcome("complete", AskOutcome::Stale);
        ledger.record_outcome("complete", AskOutcome::Late);
        let report = ledger.report();
        let a = &report.per_action[0];
        assert_eq!(
            (
                a.asked,
                a.requests,
                a.hits,
                a.cancelled_stale,
                a.dropped_late
            ),
            (4, 1, 1, 1, 1)
        );
        assert_eq!((a.hit_rate, a.stale_share), (Some(0.25), Some(0.25)));
        assert_eq!(a.cost_usd, Some(0.001));
        let shown = report.to_string();
        assert!(
            shown.contains("complete: 4 asked, 1 upstream requests"),
            "{shown}"
        );
        assert!(
            shown.contains("hit rate 25%, cancelled as stale 25%"),
            "{shown}"
        );
    }

    #[test]
    fn estimated_costs_are_marked_wherever_they_are_shown() {
        assert_eq!(format_usd(0.00002, 5, true), "~$0.00002");
        assert_eq!(format_usd(0.00002, 6, false), "$0.000020");
        let ledger = Ledger::new();
        ledger.record("flash", "deepseek-v4-flash", usage(10, 40), Some(0.00001));
        let exact = ledger.report();
        assert!(!exact.estimated && !exact.per_tier[0].estimated);
        assert!(!exact.to_string().contains('~'), "{exact}");
        ledger.record(
            "flash",
            "deepseek-v4-flash",
            TokenUsage::estimated(40, 80),
            Some(0.000005),
        );
        ledger.record_cache_hit(
            "flash",
            "deepseek-v4-flash",
            TokenUsage::estimated(40, 80),
            Some(0.000005),
        );
        ledger.record("reasoning", "deepseek-r1", usage(5, 5), Some(0.0000125));
        let report = ledger.report();
        assert!(report.estimated && report.per_tier[0].estimated);
        assert!(report.saved_estimated && !report.per_tier[1].estimated);
        assert_eq!(report.per_tier[0].output_tokens, 60);
        let table = report.to_string();
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[1].starts_with("flash")
                && lines[1].contains("~$0.000015")
                && lines[1].ends_with("~$0.000005"),
            "{table}"
        );
        assert!(
            lines[2].starts_with("reasoning") && lines[2].contains(" $0.000013"),
            "{table}"
        );
        assert!(
            lines[3].starts_with("total") && lines[3].contains("~$0.000028"),
            "{table}"
        );
        assert!(
            table.contains("~ marks figures from estimated tokens"),
            "{table}"
        );
        let json = serde_json::to_value(&report).unwrap_or_default();
        assert_eq!(json["per_tier"][0]["estimated"], true);
        assert_eq!(json["estimated"], true);
        // Reports written before the field existed still read.
        let old: TierUsage = serde_json::from_str(
            r#"{"tier":"flash","models":[],"requests":1,"cache_hits":0,"input_tokens":1,
                "output_tokens":1,"cost_usd":null,"saved_usd":null}"#,
        )
        .unwrap_or_default();
        assert_eq!((old.requests, old.estimated), (1, false));
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
