//! Delivery of an answer where the user sees it: generated code as a workspace edit (refused
//! when its target was edited), findings and explanations as notes behind diagnostics and
//! hovers, and the messages and progress summary that go with them.

use std::ops::Range;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tower_lsp_server::ls_types as lsp;
use tower_lsp_server::Client;

use super::code_action::{label, versioned_edit};
use crate::config::Config;
use crate::docs::{AnchorId, AnchorState};
use crate::engine::{Action, Job, Outcome};
use crate::lsp::editor;
use crate::lsp::proto;
use crate::lsp::session::{AnswerRecord, Note, NoteKind, Session};
use crate::render::fit_generated;

/// What the user is told about an answer whose code failed its check, and what to do next:
/// the escalation (listed first in the code-action menu) when none was made already.
pub(super) fn unverified_message(config: &Config, job: &Job, outcome: &Outcome) -> String {
    let why = outcome
        .unverified_reason
        .as_deref()
        .unwrap_or("it failed its check");
    let mut message = format!(
        "codetier: {}'s answer is unverified: {why}",
        label(config, &outcome.answer.tier)
    );
    if outcome.escalation.is_none() {
        if let Some(next) = config.action(job.action).escalate.first() {
            message.push_str(&format!(
                "; try “{} with {}”",
                job.action.title(),
                label(config, next)
            ));
        }
    }
    message
}

pub(super) fn summary(outcome: &Outcome, label: &str) -> String {
    let mut summary = if outcome.cached {
        format!("{label} · cached")
    } else {
        match outcome.answer.cost_usd {
            Some(cost) => format!(
                "{label} · {} ms · {}",
                outcome.latency_ms,
                crate::usage::format_usd(cost, 5, outcome.answer.usage.estimated)
            ),
            None => format!("{label} · {} ms · cost unknown", outcome.latency_ms),
        }
    };
    if let Some(block) = &outcome.widened_to {
        summary.push_str(&format!(" · {block}"));
    }
    if let Some(escalation) = &outcome.escalation {
        summary.push_str(&format!(" · {}", escalation.message));
    }
    if outcome.verified == Some(false) {
        let why = outcome
            .unverified_reason
            .as_deref()
            .unwrap_or("it failed its check");
        summary.push_str(&format!(" · unverified: {why}"));
    }
    for part in prompt_notes(outcome.redactions, outcome.coverage.note.as_deref()) {
        summary.push_str(" · ");
        summary.push_str(&part);
    }
    summary
}

/// What the user is told about the prompt itself: secrets masked, lines cut by the budget.
pub(super) fn prompt_notes(redactions: usize, coverage_note: Option<&str>) -> Vec<String> {
    let mut notes = Vec::new();
    match redactions {
        0 => {}
        1 => notes.push("1 secret masked".to_owned()),
        n => notes.push(format!("{n} secrets masked")),
    }
    notes.extend(coverage_note.map(str::to_owned));
    notes
}

/// Delivers `outcome`: the notes on the prompt and the answer as warnings, the answer where
/// the user sees it, and the command's result (the outcome with what delivery adds).
pub(super) async fn deliver(
    session: &Session,
    client: &Client,
    config: &Config,
    uri: &str,
    origin: Option<AnchorId>,
    job: &Job,
    outcome: &Outcome,
) -> Value {
    if outcome.coverage.truncated {
        // The answer is about part of what the user selected: say so where it is seen.
        if let Some(note) = &outcome.coverage.note {
            warn(client, format!("codetier: {note}")).await;
        }
    }
    if let Some(note) = &outcome.cut_off_note {
        warn(client, format!("codetier: {note}")).await;
    }
    let delivered = place(session, client, uri, origin, job, outcome).await;
    if outcome.verified == Some(false) {
        warn(client, unverified_message(config, job, outcome)).await;
    }
    let mut value = serde_json::to_value(outcome).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert(
            "tier_label".into(),
            json!(label(config, &outcome.answer.tier)),
        );
        for (k, v) in delivered {
            map.insert(k.into(), v);
        }
    }
    value
}

async fn warn(client: &Client, message: String) {
    editor::show_message(client, lsp::MessageType::WARNING, message).await;
}

/// Puts the answer where the user sees it; returns extra fields for the command result.
async fn place(
    session: &Session,
    client: &Client,
    uri: &str,
    origin: Option<AnchorId>,
    job: &Job,
    outcome: &Outcome,
) -> Vec<(&'static str, Value)> {
    let live = origin.and_then(|o| live_or_release(session, uri, o));
    if let (Some(origin), Some(_)) = (origin, &live) {
        // A generated answer is recorded where its code lands, once it has landed.
        if job.action != Action::Generate {
            session.record_answer(
                uri,
                AnswerRecord {
                    origin,
                    action: job.action,
                    tier: outcome.answer.tier.clone(),
                    job: job.clone(),
                    verified: outcome.verified,
                },
            );
        }
    }
    let Some(range) = live else {
        let what = match job.action {
            Action::Generate => "nothing was applied",
            Action::Review => "the findings were not attached",
            Action::Explain => "the explanation was not attached",
        };
        let message = format!(
            "codetier: the code was edited while {} was answering, so {what}. Run it again on the new code.",
            job.action.title().to_lowercase()
        );
        editor::show_message(client, lsp::MessageType::WARNING, message.clone()).await;
        return vec![("applied", json!(false)), ("message", json!(message))];
    };
    match job.action {
        Action::Generate => {
            let delivered = generate(session, client, uri, range, job, outcome).await;
            if let Some(origin) = origin {
                session.docs.release(uri, origin);
            }
            delivered
        }
        Action::Review => attach_review(session, client, uri, origin, range, job, outcome).await,
        Action::Explain => attach_explanation(session, client, uri, origin, range, outcome).await,
    }
}

/// The findings as diagnostics over `range`; says so when there are none.
async fn attach_review(
    session: &Session,
    client: &Client,
    uri: &str,
    origin: Option<AnchorId>,
    range: Range<usize>,
    job: &Job,
    outcome: &Outcome,
) -> Vec<(&'static str, Value)> {
    let notes = origin
        .map(|o| review_notes(session, uri, o, job, &range, outcome))
        .unwrap_or_default();
    let count = notes.len();
    session.replace_notes(uri, Action::Review, range, notes);
    session.republish(uri);
    if count == 0 {
        editor::show_message(
            client,
            lsp::MessageType::INFO,
            "codetier review: no findings",
        )
        .await;
    }
    vec![]
}

/// The explanation as a note over `range` (its hover), and its headline shown.
async fn attach_explanation(
    session: &Session,
    client: &Client,
    uri: &str,
    origin: Option<AnchorId>,
    range: Range<usize>,
    outcome: &Outcome,
) -> Vec<(&'static str, Value)> {
    let Some(explanation) = outcome.explanation.clone() else {
        return vec![];
    };
    let headline = explanation.headline.clone();
    let mut notes = Vec::new();
    if let (Some(anchor), Some(origin)) = (session.docs.anchor(uri, range.clone()), origin) {
        notes.push(Note {
            anchor,
            origin,
            action: Action::Explain,
            tier: outcome.answer.tier.clone(),
            kind: NoteKind::Explanation(explanation),
        });
    }
    session.replace_notes(uri, Action::Explain, range, notes);
    session.republish(uri);
    editor::show_message(
        client,
        lsp::MessageType::INFO,
        format!("codetier: {headline}"),
    )
    .await;
    vec![("headline", json!(headline))]
}

/// Where the request's code is now; when it was edited (or is gone), its anchor is released,
/// since nothing else will: a dead origin otherwise stays in the document's anchor table.
fn live_or_release(session: &Session, uri: &str, origin: AnchorId) -> Option<Range<usize>> {
    match session.docs.resolve(uri, origin) {
        AnchorState::Live(range) => Some(range),
        _ => {
            session.docs.release(uri, origin);
            None
        }
    }
}

fn review_notes(
    session: &Session,
    uri: &str,
    origin: AnchorId,
    job: &Job,
    live: &Range<usize>,
    outcome: &Outcome,
) -> Vec<Note> {
    let old = &job.selection;
    let shift = live.start as i64 - old.start as i64;
    let mut notes = Vec::new();
    for finding in &outcome.findings {
        let Range { start, end } = crate::render::finding_range(&job.text, old, finding);
        let (s, e) = (
            (start as i64 + shift).max(0) as usize,
            (end as i64 + shift).max(0) as usize,
        );
        if let Some(anchor) = session.docs.anchor(uri, s..e) {
            notes.push(Note {
                anchor,
                origin,
                action: Action::Review,
                tier: outcome.answer.tier.clone(),
                kind: NoteKind::Finding(finding.clone()),
            });
        }
    }
    notes
}

async fn generate(
    session: &Session,
    client: &Client,
    uri: &str,
    range: Range<usize>,
    job: &Job,
    outcome: &Outcome,
) -> Vec<(&'static str, Value)> {
    let Some(snap) = session.docs.snapshot(uri) else {
        return vec![("applied", json!(false))];
    };
    let code = outcome.code.clone().unwrap_or_default();
    if code.trim().is_empty() {
        let message = "codetier: the model returned no code; nothing was applied";
        editor::show_message(client, lsp::MessageType::WARNING, message).await;
        return vec![("applied", json!(false)), ("message", json!(message))];
    }
    let new_text = fit_generated(&snap.text, range.clone(), &code);
    let landed = range.start..range.start + new_text.chars().count();
    let lsp_range = proto::lsp_range_of(&snap.text, range, session.encoding());
    let Some(edit) = versioned_edit(uri, snap.version, lsp_range, new_text) else {
        return vec![("applied", json!(false))];
    };
    if !session.flags().apply_edit {
        return vec![
            ("applied", json!(false)),
            (
                "message",
                json!("the editor cannot apply edits; the code is in `text`"),
            ),
        ];
    }
    let params = lsp::ApplyWorkspaceEditParams {
        label: Some("codetier: generate function".into()),
        edit,
    };
    match editor::request::<lsp::request::ApplyWorkspaceEdit>(client, params).await {
        Ok(resp) if resp.applied => {
            remember_generated(session, uri, snap.version, landed, job, outcome).await;
            vec![("applied", json!(true))]
        }
        Ok(resp) => {
            let why = resp
                .failure_reason
                .unwrap_or_else(|| "the document changed".into());
            let message = format!(
                "codetier: the editor did not apply the generated code ({why}); run Generate again"
            );
            editor::show_message(client, lsp::MessageType::WARNING, message.clone()).await;
            vec![("applied", json!(false)), ("message", json!(message))]
        }
        Err(err) => {
            let message = format!("codetier: {err}; the generated code was not applied");
            editor::show_message(client, lsp::MessageType::WARNING, message.clone()).await;
            vec![("applied", json!(false)), ("message", json!(message))]
        }
    }
}

/// Records a generated answer where its code now is, so escalations are offered on it and
/// replace it. The editor reports the applied edit as a `didChange`, usually before its
/// `applyEdit` reply; this waits briefly for it, and gives up if anything else changed the
/// document first (the range would be a guess).
async fn remember_generated(
    session: &Session,
    uri: &str,
    version: i32,
    landed: Range<usize>,
    job: &Job,
    outcome: &Outcome,
) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let Some(now) = session.docs.snapshot(uri).map(|s| s.version) else {
            return;
        };
        if now == version + 1 {
            break;
        }
        if now > version + 1 || Instant::now() >= deadline {
            tracing::debug!(uri, "generated code not re-anchored: the document moved on");
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Some(origin) = session.docs.anchor(uri, landed) {
        session.record_answer(
            uri,
            AnswerRecord {
                origin,
                action: Action::Generate,
                tier: outcome.answer.tier.clone(),
                job: job.clone(),
                verified: outcome.verified,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docs::{Change, Position, PositionEncoding, Range as DocRange};
    use crate::lsp::ServeOptions;

    #[test]
    fn the_origin_of_an_answer_whose_code_was_edited_is_released() {
        let session = Session::new(ServeOptions::default());
        session.docs.open("u", "rust", 1, "fn a() {}\nfn b() {}\n");
        let kept = session.docs.anchor("u", 0..9).expect("open");
        let edited = session.docs.anchor("u", 10..19).expect("open");
        let typing = Change {
            range: Some(DocRange::new(Position::new(1, 3), Position::new(1, 3))),
            text: "x".into(),
        };
        session
            .docs
            .change("u", 2, &[typing], PositionEncoding::Utf16)
            .expect("change");
        assert_eq!(live_or_release(&session, "u", kept), Some(0..9));
        assert_eq!(session.docs.resolve("u", kept), AnchorState::Live(0..9));
        assert_eq!(live_or_release(&session, "u", edited), None);
        // Released, not left behind as an invalidated slot.
        assert_eq!(session.docs.resolve("u", edited), AnchorState::Unknown);
    }
}
