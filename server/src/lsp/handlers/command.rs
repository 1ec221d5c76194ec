//! `workspace/executeCommand`: runs an action with progress and cancellation, replies within
//! `command_reply_ms` (else `{ "pending": true }`), and delivers the answer as an edit,
//! diagnostics or a message.

use std::ops::Range;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types as lsp;
use tower_lsp_server::Client;

use super::code_action::{label, versioned_edit};
use super::{failure, ready, unknown_document, Reply};
use crate::docs::{AnchorId, AnchorState};
use crate::engine::{Action, Engine, EngineError, Job, Outcome, Progress as EngineProgress};
use crate::lsp::dispatch::token_key;
use crate::lsp::editor::{self, Progress};
use crate::lsp::proto;
use crate::lsp::session::{AnswerRecord, Note, NoteKind, Session};
use crate::lsp::MAX_WAITING_COMMANDS;
use crate::prompts::widen_selection;
use crate::render::fit_generated;
use crate::syntax::{self, Stamp};

/// Every command the server runs; all are listed in `executeCommandProvider`.
pub const COMMANDS: &[&str] = &[
    "codetier.explain",
    "codetier.generate",
    "codetier.review",
    "codetier.usage",
];

/// JSON-RPC code of a failed AI request (LSP's RequestFailed).
const REQUEST_FAILED: i64 = -32803;

/// A command that needs the syntax tree to know its range (a cursor, or generate) and arrives
/// before the tree of its version is parsed parses it on the spot, up to this size: the range
/// must be anchored on arrival. Larger documents use the heuristics then. In practice the
/// code-action request that came first has waited for the tree already.
const SYNC_PARSE_BYTES: usize = 1 << 20;

#[derive(Deserialize)]
struct ActionArgs {
    uri: String,
    range: lsp::Range,
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    fresh: bool,
    #[serde(default)]
    diagnostics: Vec<String>,
    /// An escalation: the earlier answer to ask again (on `tier`) and replace.
    #[serde(default)]
    answer: Option<u64>,
}

pub fn handle(
    session: &Arc<Session>,
    params: lsp::ExecuteCommandParams,
    cancel: CancellationToken,
) -> Reply {
    if params.command == "codetier.usage" {
        return usage(session);
    }
    let Some(action) = params
        .command
        .strip_prefix("codetier.")
        .and_then(Action::parse)
    else {
        return ready(Err(Error::invalid_params(format!(
            "unknown command `{}`; codetier runs {}",
            params.command,
            COMMANDS.join(", ")
        ))));
    };
    let args = match params
        .arguments
        .into_iter()
        .next()
        .map(serde_json::from_value::<ActionArgs>)
    {
        Some(Ok(args)) => args,
        Some(Err(e)) => {
            return ready(Err(Error::invalid_params(format!(
                "{}: bad argument: {e}",
                params.command
            ))))
        }
        None => {
            return ready(Err(Error::invalid_params(format!(
                "{} expects one argument {{ uri, range, tier?, fresh? }}",
                params.command
            ))))
        }
    };
    let Some(engine) = session.engine().cloned() else {
        return ready(Err(failure(
            REQUEST_FAILED,
            "codetier has no usable configuration; see the earlier message",
        )));
    };
    // Stamped now, in arrival order: the request refers to this version of the document.
    let Some(snap) = session.docs.snapshot(&args.uri) else {
        return ready(Err(unknown_document(&args.uri)));
    };
    let config = engine.config();
    if let Some(tier) = &args.tier {
        if !config.tiers.contains_key(tier) {
            let known: Vec<&str> = config.tiers.keys().map(String::as_str).collect();
            return ready(Err(Error::invalid_params(format!(
                "unknown tier `{tier}`; configured tiers: {}",
                known.join(", ")
            ))));
        }
    }
    let tier = args.tier.clone().or_else(|| session.options.tier.clone());
    // Stamped with the snapshot: the tree for exactly this text.
    let stamp = session.syntax.stamp(&args.uri);
    let (job, target) = match args.answer {
        // The same prompt as the earlier answer, on another tier; the new answer lands where
        // the earlier one is now.
        Some(raw) => match session.answer(&args.uri, AnchorId::from_raw(raw)) {
            Some((record, live)) if record.action == action => (
                Job {
                    tier,
                    fresh: args.fresh,
                    ..record.job
                },
                live,
            ),
            _ => {
                return ready(Err(failure(
                    REQUEST_FAILED,
                    format!(
                        "codetier: the earlier {} answer is gone (its code was edited); run the action again",
                        action.as_str()
                    ),
                )))
            }
        },
        None => {
            let requested = proto::chars(&snap.text, args.range, session.encoding());
            let needs_tree = action == Action::Generate || requested.len() <= 1;
            let tree = stamp.as_ref().and_then(|stamp| {
                stamp.ready().or_else(|| {
                    (needs_tree && snap.text.len_bytes() <= SYNC_PARSE_BYTES)
                        .then(|| stamp.wait())
                        .flatten()
                })
            });
            let widened = widen_selection(action, &snap.text, tree.as_ref(), requested);
            let job = Job {
                tier,
                fresh: args.fresh,
                diagnostics: args.diagnostics,
                tree,
                block: widened.block,
                ..Job::new(
                    action,
                    &args.uri,
                    &snap.language_id,
                    snap.text.clone(),
                    widened.chars.clone(),
                )
            };
            (job, widened.chars)
        }
    };
    // A new request gets its tree (when it was not needed above) and the other open
    // documents' trees in the task, off the dispatcher; an escalation has them already.
    let stamp = stamp.filter(|_| args.answer.is_none());
    let origin = session.docs.anchor(&args.uri, target);
    let reply_after = Duration::from_millis(config.command_reply_ms);
    let reply = Arc::new(ReplyState::default());
    let task = run(
        session.clone(),
        engine,
        job,
        stamp,
        args.uri,
        origin,
        params.work_done_progress_params.work_done_token,
        cancel.clone(),
        reply.clone(),
    );
    let session = session.clone();
    Box::pin(async move {
        let waiting = session.waiting_commands.fetch_add(1, Ordering::SeqCst);
        let _waiting = Decrement(&session);
        if waiting >= MAX_WAITING_COMMANDS {
            // Detached before the task can run, so a failure of it is always shown.
            reply.detach();
            tokio::spawn(task);
            return Ok(pending(
                "many commands are running; the answer will arrive when ready",
            ));
        }
        let mut handle = tokio::spawn(task);
        // Dropping this handler (a `$/cancelRequest`) cancels the work and its upstream call.
        let guard = cancel.drop_guard();
        let joined = match tokio::time::timeout(reply_after, &mut handle).await {
            Ok(joined) => joined,
            Err(_) if reply.detach() => {
                guard.disarm();
                return Ok(pending(
                    "still waiting for the model; the answer will be applied when it arrives",
                ));
            }
            // The task failed at this very moment and its error is this reply's to carry.
            Err(_) => handle.await,
        };
        match joined {
            Ok(result) => result,
            Err(join) => Err(failure(
                -32603,
                if join.is_panic() {
                    "codetier hit an internal error running this command; the server keeps running (details in its log)"
                } else {
                    "the command was stopped"
                },
            )),
        }
    })
}

/// Who tells the user that a command failed: the command's own reply, or, once that reply
/// went out as `pending`, a message. Both sides decide by compare-and-swap, so a failure at
/// the moment the reply deadline passes is reported exactly once.
#[derive(Default)]
struct ReplyState(AtomicU8);

impl ReplyState {
    const WAITING: u8 = 0;
    const FAILING: u8 = 1;
    const DETACHED: u8 = 2;

    /// The task's failure goes into the reply; false when the reply already said `pending`.
    fn claim_failure(&self) -> bool {
        self.swap_from_waiting(Self::FAILING) || self.0.load(Ordering::SeqCst) == Self::FAILING
    }

    /// The handler stops waiting; false when the task has claimed the reply for its failure.
    fn detach(&self) -> bool {
        self.swap_from_waiting(Self::DETACHED) || self.0.load(Ordering::SeqCst) == Self::DETACHED
    }

    fn swap_from_waiting(&self, to: u8) -> bool {
        self.0
            .compare_exchange(Self::WAITING, to, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

struct Decrement<'a>(&'a Session);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.waiting_commands.fetch_sub(1, Ordering::SeqCst);
    }
}

fn pending(message: &str) -> Value {
    json!({ "pending": true, "message": message })
}

#[allow(clippy::too_many_arguments)]
async fn run(
    session: Arc<Session>,
    engine: Arc<Engine>,
    mut job: Job,
    stamp: Option<Stamp>,
    uri: String,
    origin: Option<AnchorId>,
    given_token: Option<lsp::ProgressToken>,
    cancel: CancellationToken,
    reply: Arc<ReplyState>,
) -> Result<Value> {
    let Some(client) = session.client().cloned() else {
        return Err(failure(-32603, "no client"));
    };
    let config = engine.config();
    let tier = engine.tier_for(job.action, job.tier.as_deref());
    let title = format!(
        "codetier: {} ({})",
        job.action.title(),
        label(&config, &tier)
    );
    let create = session
        .flags()
        .work_done_progress
        .then(|| session.new_progress_token());
    let progress = Progress::begin(&client, given_token, create, title).await;
    let progress_key = progress
        .token()
        .map(|t| token_key(&serde_json::to_value(t).unwrap_or(Value::Null)));
    if let Some(key) = &progress_key {
        session.register_progress(key, cancel.clone());
    }

    if let Some(stamp) = stamp {
        with_syntax(&session, &mut job, stamp).await;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let work = engine.run(job.clone(), Some(tx));
    let reports = async {
        let mut last = Instant::now() - Duration::from_secs(1);
        while let Some(event) = rx.recv().await {
            let message = match event {
                EngineProgress::Asking {
                    tier,
                    model,
                    redactions,
                    coverage_note,
                } => {
                    let mut message = format!("asking {tier} ({model})…");
                    for part in prompt_notes(redactions, coverage_note.as_deref()) {
                        message.push_str(" · ");
                        message.push_str(&part);
                    }
                    message
                }
                EngineProgress::Tokens { count } => {
                    if last.elapsed() < Duration::from_millis(100) {
                        continue;
                    }
                    // Counted from the characters streamed so far: an estimate.
                    format!("~{count} tokens…")
                }
                EngineProgress::Retrying { attempt, reason } => {
                    format!("retrying ({attempt}): {reason}")
                }
                EngineProgress::Hedged => "slow first token: asked again in parallel".into(),
                EngineProgress::FellBack { model } => format!("falling back to {model}"),
                EngineProgress::Escalating { message, .. } => message,
            };
            last = Instant::now();
            progress.report(message).await;
        }
    };
    let result = tokio::select! {
        biased;
        () = cancel.cancelled() => Err(EngineError::Cancelled),
        (r, ()) = async { tokio::join!(work, reports) } => r,
    };
    if let Some(key) = &progress_key {
        session.finish_progress(key);
    }
    editor::show_cache_warning(&client, &engine).await;
    match result {
        Ok(outcome) => {
            if outcome.coverage.truncated {
                // The answer is about part of what the user selected: say so where it is seen.
                if let Some(note) = &outcome.coverage.note {
                    editor::show_message(
                        &client,
                        lsp::MessageType::WARNING,
                        format!("codetier: {note}"),
                    )
                    .await;
                }
            }
            if let Some(note) = &outcome.cut_off_note {
                editor::show_message(
                    &client,
                    lsp::MessageType::WARNING,
                    format!("codetier: {note}"),
                )
                .await;
            }
            let delivered = deliver(&session, &client, &uri, origin, &job, &outcome).await;
            if outcome.verified == Some(false) {
                editor::show_message(
                    &client,
                    lsp::MessageType::WARNING,
                    unverified_message(&config, &job, &outcome),
                )
                .await;
            }
            progress
                .end(summary(&outcome, &label(&config, &outcome.tier)))
                .await;
            let mut value = serde_json::to_value(&outcome).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut value {
                map.insert("tier_label".into(), json!(label(&config, &outcome.tier)));
                for (k, v) in delivered {
                    map.insert(k.into(), v);
                }
            }
            Ok(value)
        }
        Err(EngineError::Cancelled) => {
            progress.end("cancelled".into()).await;
            if let Some(origin) = origin {
                session.docs.release(&uri, origin);
            }
            Err(Error::request_cancelled())
        }
        Err(err) => {
            if let Some(origin) = origin {
                session.docs.release(&uri, origin);
            }
            let message = format!("codetier: {err}");
            tracing::warn!("{} failed: {err}", job.action.as_str());
            progress.end(message.clone()).await;
            if !reply.claim_failure() {
                editor::show_message(&client, lsp::MessageType::ERROR, message.clone()).await;
            }
            Err(failure(REQUEST_FAILED, message))
        }
    }
}

/// What the user is told about an answer whose code failed its check, and what to do next:
/// the escalation (listed first in the code-action menu) when none was made already.
fn unverified_message(config: &crate::config::Config, job: &Job, outcome: &Outcome) -> String {
    let why = outcome
        .unverified_reason
        .as_deref()
        .unwrap_or("it failed its check");
    let mut message = format!(
        "codetier: {}'s answer is unverified: {why}",
        label(config, &outcome.tier)
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

/// Gives a new job the tree of its text (for the definitions and the checks), the block it is
/// exactly, and the trees of the other open documents of its language.
async fn with_syntax(session: &Session, job: &mut Job, stamp: Stamp) {
    let lang = stamp.lang();
    if job.tree.is_none() {
        job.tree = tokio::task::spawn_blocking(move || stamp.wait())
            .await
            .ok()
            .flatten();
    }
    if job.block.is_none() {
        job.block = job
            .tree
            .as_ref()
            .and_then(|t| syntax::enclosing_block(t, job.selection.clone()))
            .filter(|b| b.chars == job.selection);
    }
    job.neighbours = session
        .syntax
        .others(&job.file_name, lang)
        .into_iter()
        .map(|(name, parsed)| syntax::Source { name, parsed })
        .collect();
}

fn summary(outcome: &Outcome, label: &str) -> String {
    let mut summary = if outcome.cached {
        format!("{label} · cached")
    } else {
        match outcome.cost_usd {
            Some(cost) => format!(
                "{label} · {} ms · {}",
                outcome.latency_ms,
                crate::usage::format_usd(cost, 5, outcome.usage.estimated)
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
fn prompt_notes(redactions: usize, coverage_note: Option<&str>) -> Vec<String> {
    let mut notes = Vec::new();
    match redactions {
        0 => {}
        1 => notes.push("1 secret masked".to_owned()),
        n => notes.push(format!("{n} secrets masked")),
    }
    notes.extend(coverage_note.map(str::to_owned));
    notes
}

/// Puts the answer where the user sees it; returns extra fields for the command result.
async fn deliver(
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
                    tier: outcome.tier.clone(),
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
        Action::Review => {
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
        Action::Explain => {
            let Some(explanation) = outcome.explanation.clone() else {
                return vec![];
            };
            let headline = explanation.headline.clone();
            let mut notes = Vec::new();
            if let Some(anchor) = session.docs.anchor(uri, range.clone()) {
                if let Some(origin) = origin {
                    notes.push(Note {
                        anchor,
                        origin,
                        action: Action::Explain,
                        tier: outcome.tier.clone(),
                        kind: NoteKind::Explanation(explanation),
                    });
                }
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
    }
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
                tier: outcome.tier.clone(),
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
                tier: outcome.tier.clone(),
                job: job.clone(),
                verified: outcome.verified,
            },
        );
    }
}

fn usage(session: &Arc<Session>) -> Reply {
    let Some(engine) = session.engine().cloned() else {
        return ready(Ok(Value::Null));
    };
    let session = session.clone();
    Box::pin(async move {
        let report = engine.usage().report();
        // Editors show a message on one line (Helix's status line, Neovim's command line): the
        // summary goes there, the table to the log and, as JSON, into the reply.
        tracing::info!("codetier usage this session:\n{report}");
        if let Some(client) = session.client() {
            editor::show_message(client, lsp::MessageType::INFO, usage_line(&report)).await;
        }
        serde_json::to_value(&report).map_err(|e| failure(-32603, e.to_string()))
    })
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
    format!(
        "codetier usage this session: {requests} request{}, {hits} cache hit{}, {approx}{} tokens in / {approx}{} out, {cost} ({note})",
        if requests == 1 { "" } else { "s" },
        if hits == 1 { "" } else { "s" },
        sum(|t| t.input_tokens),
        sum(|t| t.output_tokens),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docs::{Change, Position, PositionEncoding, Range as DocRange};
    use crate::lsp::ServeOptions;

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
        };
        assert_eq!(
            usage_line(&empty),
            "codetier usage this session: no requests yet"
        );
    }

    #[test]
    fn a_failure_is_told_once_whoever_decides_first() {
        // The task fails first: its error is the reply, and the handler must wait for it.
        let failed_first = ReplyState::default();
        assert!(failed_first.claim_failure());
        assert!(!failed_first.detach());
        assert!(
            failed_first.claim_failure(),
            "claiming again changes nothing"
        );
        // The reply said `pending` first: the failure must become a message.
        let detached_first = ReplyState::default();
        assert!(detached_first.detach());
        assert!(!detached_first.claim_failure());
        assert!(detached_first.detach());
        // Racing threads: exactly one side wins, every time.
        for _ in 0..200 {
            let state = Arc::new(ReplyState::default());
            let other = state.clone();
            let task = std::thread::spawn(move || other.claim_failure());
            let detached = state.detach();
            let claimed = task.join().expect("no panic");
            assert!(
                detached != claimed,
                "detached {detached}, claimed {claimed}"
            );
        }
    }

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
