//! `codetier.usage`: the session's tokens and cost per tier, as JSON and as one line.

use std::sync::Arc;

use futures::FutureExt;
use tower_lsp_server::ls_types as lsp;
use tower_lsp_server::ls_types::request::ExecuteCommand;

use super::{done, Handled};
use crate::lsp::editor;
use crate::lsp::error::LspError;
use crate::lsp::session::Session;

/// Runs `codetier.usage`: the report as JSON in the reply, its summary line as a message.
pub fn run(session: &Arc<Session>) -> Handled<ExecuteCommand> {
    let Some(engine) = session.engine().cloned() else {
        return done::<ExecuteCommand>(Ok(None));
    };
    let session = session.clone();
    async move {
        let report = engine.usage().report();
        // Editors show a message on one line (Helix's status line, Neovim's command line): the
        // summary goes there, the table to the log and, as JSON, into the reply.
        tracing::info!("codetier usage this session:\n{report}");
        if let Some(client) = session.client() {
            editor::show_message(client, lsp::MessageType::INFO, usage_line(&report)).await;
        }
        serde_json::to_value(&report)
            .map(Some)
            .map_err(|e| LspError::internal(e.to_string()))
    }
    .boxed()
}

/// The session's usage in one line: requests, cache hits, tokens and cost (`~` when estimated).
fn usage_line(report: &crate::usage::UsageReport) -> String {
    let sum = |f: fn(&crate::usage::TierUsage) -> u64| report.per_tier.iter().map(f).sum::<u64>();
    let (requests, hits) = (sum(|t| t.requests), sum(|t| t.cache_hits));
    if requests == 0 && hits == 0 {
        return "codetier usage this session: no requests yet".into();
    }
    let approx = if report.estimated { "~" } else { "" };
    let cost = match report.total_cost_usd {
        Some(c) => crate::usage::format_usd(c, 6, report.estimated),
        None => "cost unknown".into(),
    };
    let note = if report.estimated {
        "estimated tokens; per tier in the log"
    } else {
        "per tier in the log"
    };
    let mut line = format!(
        "codetier usage this session: {requests} request{}, {hits} cache hit{}, {approx}{} tokens in / {approx}{} out, {cost} ({note})",
        if requests == 1 { "" } else { "s" },
        if hits == 1 { "" } else { "s" },
        sum(|t| t.input_tokens),
        sum(|t| t.output_tokens),
    );
    for a in &report.per_action {
        let pct = |x: Option<f64>| x.map_or("n/a".to_owned(), |v| format!("{:.0}%", v * 100.0));
        line.push_str(&format!(
            "; {}: {} asked, {} without a request, {} stale",
            a.action,
            a.asked,
            pct(a.hit_rate),
            pct(a.stale_share)
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usage_message_is_one_line() {
        let tier = |name: &str, requests, hits, cost| crate::usage::TierUsage {
            tier: name.into(),
            models: vec![],
            requests,
            cache_hits: hits,
            input_tokens: 100,
            output_tokens: 10,
            cost_usd: cost,
            saved_usd: None,
            estimated: false,
            saved_estimated: false,
        };
        let report = crate::usage::UsageReport {
            per_tier: vec![
                tier("flash", 2, 1, Some(0.000003)),
                tier("reasoning", 1, 0, None),
            ],
            total_cost_usd: Some(0.000003),
            total_saved_usd: None,
            estimated: false,
            saved_estimated: false,
            per_action: vec![],
        };
        let line = usage_line(&report);
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.starts_with("codetier usage this session: 3 requests, 1 cache hit, 200 tokens in / 20 out, $0.000003"),
            "{line}"
        );
        let estimated = crate::usage::UsageReport {
            estimated: true,
            ..report
        };
        let line = usage_line(&estimated);
        assert!(
            line.contains("~200 tokens in / ~20 out, ~$0.000003 (estimated tokens"),
            "{line}"
        );
        let empty = crate::usage::UsageReport {
            per_tier: vec![],
            total_cost_usd: None,
            total_saved_usd: None,
            estimated: false,
            saved_estimated: false,
            per_action: vec![],
        };
        assert_eq!(
            usage_line(&empty),
            "codetier usage this session: no requests yet"
        );
    }
}
