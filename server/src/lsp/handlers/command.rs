//! `workspace/executeCommand`: the lifecycle of one command. It is anchored on arrival, runs
//! the engine with progress and cancellation, replies within `command_reply_ms` (else
//! `{ "pending": true }`), and hands the answer to [`super::deliver`].

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tower_lsp_server::ls_types as lsp;
use tower_lsp_server::ls_types::request::ExecuteCommand;

use super::code_action::label;
use super::deliver::{deliver, prompt_notes, summary};
use super::{done, usage, Handled};
use crate::docs::AnchorId;
use crate::engine::{Action, Engine, EngineError, Job};
use crate::lsp::commands::{ActionArgs, Invocation};
use crate::lsp::dispatch::token_key;
use crate::lsp::editor::{self, Progress};
use crate::lsp::error::{self, Audience, LspError, LspResult};
use crate::lsp::proto;
use crate::lsp::session::Session;
use crate::lsp::MAX_WAITING_COMMANDS;
use crate::prompts::widen_selection;
use crate::router::{Event, TokenCount};
use crate::syntax::{self, Stamp};

/// A command that needs the syntax tree to know its range (a cursor, or generate) and arrives
/// before the tree of its version is parsed parses it on the spot, up to this size: the range
/// must be anchored on arrival. Larger documents use the heuristics then. In practice the
/// code-action request that came first has waited for the tree already.
const SYNC_PARSE_BYTES: usize = 1 << 20;

pub fn handle(
    session: &Arc<Session>,
    params: lsp::ExecuteCommandParams,
    cancel: CancellationToken,
) -> Handled<ExecuteCommand> {
    let token = params.work_done_progress_params.work_done_token.clone();
    match Invocation::parse(params) {
        Ok(Invocation::Usage) => usage::run(session),
        Ok(Invocation::Run { action, args }) => match prepare(session, action, args) {
            Ok(command) => start(session, command, token, cancel),
            Err(e) => done::<ExecuteCommand>(Err(e)),
        },
        Err(e) => done::<ExecuteCommand>(Err(e)),
    }
}

/// A command anchored on arrival, ready to run.
struct Prepared {
    engine: Arc<Engine>,
    job: Job,
    /// The tree still to wait for (a new request; an escalation has its trees already).
    stamp: Option<Stamp>,
    uri: String,
    origin: Option<AnchorId>,
}

/// Everything that must happen in arrival order: the document version, the range widened
/// and anchored, the tier checked.
fn prepare(session: &Session, action: Action, args: ActionArgs) -> LspResult<Prepared> {
    let Some(engine) = session.engine().cloned() else {
        return Err(LspError::request_failed(
            "codetier has no usable configuration; see the earlier message",
        ));
    };
    // Stamped now, in arrival order: the request refers to this version of the document.
    let Some(snap) = session.docs.snapshot(&args.uri) else {
        return Err(LspError::unknown_document(&args.uri));
    };
    if let Some(tier) = &args.tier {
        engine
            .config()
            .tier(tier)
            .map_err(|e| LspError::invalid_params(e.to_string()))?;
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
                return Err(LspError::request_failed(format!(
                    "codetier: the earlier {} answer is gone (its code was edited); run the action again",
                    action.as_str()
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
    Ok(Prepared {
        engine,
        job,
        // A new request gets its tree (when it was not needed above) and the other open
        // documents' trees in the task, off the dispatcher.
        stamp: stamp.filter(|_| args.answer.is_none()),
        origin: session.docs.anchor(&args.uri, target),
        uri: args.uri,
    })
}

/// Runs the command on a task of its own and waits for it up to `command_reply_ms`.
fn start(
    session: &Arc<Session>,
    command: Prepared,
    token: Option<lsp::ProgressToken>,
    cancel: CancellationToken,
) -> Handled<ExecuteCommand> {
    let reply_after = Duration::from_millis(command.engine.config().command_reply_ms);
    let reply = Arc::new(ReplyState::default());
    let task = run(
        session.clone(),
        command,
        token,
        cancel.clone(),
        reply.clone(),
    );
    let session = session.clone();
    async move {
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
            Ok(result) => result.map(Some),
            Err(join) => Err(LspError::internal(if join.is_panic() {
                "codetier hit an internal error running this command; the server keeps running (details in its log)"
            } else {
                "the command was stopped"
            })),
        }
    }
    .boxed()
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

fn pending(message: &str) -> Option<Value> {
    Some(json!({ "pending": true, "message": message }))
}

/// The command's task: progress beside the engine, then delivery, or the failure told once.
async fn run(
    session: Arc<Session>,
    command: Prepared,
    given_token: Option<lsp::ProgressToken>,
    cancel: CancellationToken,
    reply: Arc<ReplyState>,
) -> LspResult<Value> {
    let Prepared {
        engine,
        mut job,
        stamp,
        uri,
        origin,
    } = command;
    let Some(client) = session.client().cloned() else {
        return Err(LspError::internal("no client"));
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
    // Started, not awaited: the engine starts now, whenever the editor answers `create`.
    let progress = Progress::start(&client, given_token, create, title);
    let progress_key = progress
        .token()
        .map(|t| token_key(&serde_json::to_value(t).unwrap_or(Value::Null)));
    if let Some(key) = &progress_key {
        session.register_progress(key, cancel.clone());
    }
    if let Some(stamp) = stamp {
        with_syntax(&session, &mut job, stamp).await;
    }
    let result = ask(&engine, &job, &progress, &cancel).await;
    if let Some(key) = &progress_key {
        session.finish_progress(key);
    }
    editor::show_cache_warning(&client, &engine).await;
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(err) => {
            if let Some(origin) = origin {
                session.docs.release(&uri, origin);
            }
            let error = match err {
                EngineError::Cancelled => LspError::cancelled(),
                err => {
                    tracing::warn!("{} failed: {err}", job.action.as_str());
                    LspError::request_failed(format!("codetier: {err}"))
                }
            };
            let ending = match error.code {
                error::Code::RequestCancelled => "cancelled".to_owned(),
                _ => error.message.clone(),
            };
            progress.end(ending).await;
            let audience = if reply.claim_failure() {
                Audience::Reply
            } else {
                Audience::Detached
            };
            return Err(error::tell(&client, error, audience).await);
        }
    };
    let result = deliver(&session, &client, &config, &uri, origin, &job, &outcome).await;
    progress
        .end(summary(&outcome, &label(&config, &outcome.answer.tier)))
        .await;
    Ok(result)
}

/// Runs the engine, its progress events turned into reports as they come.
async fn ask(
    engine: &Engine,
    job: &Job,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<crate::engine::Outcome, EngineError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // Boxed, so the command's task (moved whole into `tokio::spawn`) stays small.
    let work = Box::pin(engine.run(job.clone(), Some(tx)));
    let reports = async {
        let mut last = Instant::now() - Duration::from_secs(1);
        let mut tokens = TokenCount::default();
        while let Some(event) = rx.recv().await {
            if let Some(message) = progress_message(event, &mut tokens, &mut last) {
                progress.report(message);
            }
        }
    };
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(EngineError::Cancelled),
        (r, ()) = async { tokio::join!(work, reports) } => r,
    }
}

/// What the progress UI says of an event; token counts at most every 100 ms.
fn progress_message(event: Event, tokens: &mut TokenCount, last: &mut Instant) -> Option<String> {
    let message = match event {
        Event::Asking {
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
        Event::Token(text) => {
            let count = tokens.add(&text);
            if last.elapsed() < Duration::from_millis(100) {
                return None;
            }
            // Counted from the characters streamed so far: an estimate.
            format!("~{count} tokens…")
        }
        Event::Retrying { attempt, reason } => {
            format!("retrying ({attempt}): {reason}")
        }
        Event::Reasoning(_) => return None,
        Event::Hedged => "slow first token: asked again in parallel".into(),
        Event::FellBack { model } => format!("falling back to {model}"),
        Event::Escalating { message, .. } => message,
    };
    *last = Instant::now();
    Some(message)
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
        // Widened without a tree, so the block was not looked up: with the tree it is. (A
        // job widened with its tree has the block already, or none is exactly its selection.)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
