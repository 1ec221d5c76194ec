//! `codetier team stats`: today's shared spend, requests and hit rate per tier, from the team's Redis.

use std::time::Duration;

use super::setup::{self, Failure};
use super::{emit, exit, Global, TeamAction};
use crate::team::{reset_in_words, DayStats, Team, TeamError};
use crate::usage::format_usd;

/// How long a CLI run waits, before it exits, for its bookings to reach Redis.
pub const FLUSH_BOUND: Duration = Duration::from_millis(500);

pub async fn run(global: &Global, action: TeamAction) -> Result<u8, Failure> {
    let loaded = setup::load(global)?;
    let team = match Team::from_config(&loaded.config.team) {
        Ok(Some(team)) => team,
        Ok(None) => {
            return Err(Failure::usage(format!(
                "codetier: {}",
                TeamError::NotConfigured
            )))
        }
        Err(e) => return Err(Failure::usage(format!("codetier: {e}"))),
    };
    match action {
        TeamAction::Stats { json } => {
            let stats = team
                .day_stats()
                .await
                .map_err(|e| Failure::provider(format!("codetier: {e}")))?;
            if json {
                let mut text = serde_json::to_string_pretty(&stats).unwrap_or_default();
                text.push('\n');
                emit(&text);
            } else {
                emit(&table(&stats));
            }
        }
    }
    Ok(exit::OK)
}

fn rate(hit_rate: Option<f64>) -> String {
    hit_rate.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

/// The text form: a summary line, then one row per tier.
fn table(s: &DayStats) -> String {
    let budget = match s.daily_budget_usd {
        Some(b) => format!(
            " of {} budget; resets {}",
            format_usd(b, 2, false),
            reset_in_words(s.resets_in_secs)
        ),
        None => " (no daily budget)".to_owned(),
    };
    let mut out = format!(
        "team day {} (UTC): spent {}{budget}\nrequests {}, hit rate {} ({} hits, {} from the team's Redis, {} misses)\n\n",
        s.day,
        format_usd(s.cost_usd, 4, false),
        s.requests,
        rate(s.hit_rate),
        s.hits,
        s.team_hits,
        s.misses,
    );
    let header = [
        "tier",
        "requests",
        "cost",
        "hits",
        "team hits",
        "misses",
        "hit rate",
    ];
    let mut rows: Vec<[String; 7]> = vec![header.map(str::to_owned)];
    for t in &s.per_tier {
        rows.push([
            t.tier.clone(),
            t.requests.to_string(),
            format_usd(t.cost_usd, 4, false),
            t.hits.to_string(),
            t.team_hits.to_string(),
            t.misses.to_string(),
            rate(t.hit_rate()),
        ]);
    }
    if s.per_tier.is_empty() {
        out.push_str("nothing booked today\n");
        return out;
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
