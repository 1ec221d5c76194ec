//! `textDocument/inlineCompletion`, and the suggestion both it and the completion menu show: typeahead, cache, debounce, staleness and the budget around the engine's completion.

use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use ropey::Rope;
use tokio_util::sync::CancellationToken;
use tower_lsp_server::ls_types as lsp;
use tower_lsp_server::ls_types::request::InlineCompletionRequest;

use super::code_action::label;
use super::Handled;
use crate::complete::{Shown, ACTION};
use crate::docs;
use crate::engine::{CompletionJob, EngineError};
use crate::lsp::editor;
use crate::lsp::proto;
use crate::lsp::session::{CompletionKind, Session};
use crate::router::RouteError;
use crate::usage::{AskOutcome, Ledger};

/// A suggestion to show at a cursor.
pub struct Suggestion {
    /// What to insert at the cursor.
    pub text: String,
    /// The document as the request saw it, and the cursor in it (chars).
    pub doc: Rope,
    pub cursor: usize,
    /// The tier's label, e.g. "Flash".
    pub tier_label: String,
}

pub fn handle(
    session: &Arc<Session>,
    params: lsp::InlineCompletionParams,
    cancel: CancellationToken,
) -> Handled<InlineCompletionRequest> {
    let at = params.text_document_position;
    let uri = at.text_document.uri.as_str();
    let work = suggest(session, uri, at.position, CompletionKind::Inline, cancel);
    let enc = session.encoding();
    async move {
        let items = match work.await {
            Some(s) => {
                let range = proto::lsp_range_of(&s.doc, s.cursor..s.cursor, enc);
                vec![lsp::InlineCompletionItem {
                    insert_text: s.text,
                    filter_text: None,
                    range: Some(range),
                    command: None,
                    insert_text_format: Some(lsp::InsertTextFormat::PLAIN_TEXT),
                }]
            }
            None => Vec::new(),
        };
        Ok(Some(lsp::InlineCompletionResponse::List(
            lsp::InlineCompletionList { items },
        )))
    }
    .boxed()
}

/// The suggestion at `position` of `uri` for a request of `kind`, or `None` (nothing to show,
/// stale, late, or off).
///
/// Runs synchronously up to the returned future, in arrival order: the document snapshot, then
/// what [`at_once`] answers (typeahead, a cached suggestion). The future ([`Upstream::ask`])
/// waits `completion.debounce_ms` (longer while the user types steadily, see
/// [`crate::complete::Pace`]), then asks, all within `completion.budget_ms` from arrival; an
/// edit of the document, a newer completion of the same kind there or `cancel` drops it, and so
/// the upstream request, at once.
pub fn suggest(
    session: &Arc<Session>,
    uri: &str,
    position: lsp::Position,
    kind: CompletionKind,
    cancel: CancellationToken,
) -> BoxFuture<'static, Option<Suggestion>> {
    let nothing = || futures::future::ready(None).boxed();
    let Some(engine) = session.engine().cloned() else {
        return nothing();
    };
    let config = engine.config();
    if !config.completion.enabled {
        return nothing();
    }
    let Some(snap) = session.docs.snapshot(uri) else {
        tracing::debug!(uri, "completion in a document that is not open");
        return nothing();
    };
    let cursor = docs::position_to_char(&snap.text, proto::position(position), session.encoding());
    let (id, stale) = session.completions.begin(uri, kind, &cancel);
    // Every request counts towards the typing pace, typeahead ones too.
    let debounce = session
        .completions
        .debounce(kind, Duration::from_millis(config.completion.debounce_ms));
    let mut running = Running {
        session: session.clone(),
        uri: uri.to_owned(),
        kind,
        id,
        ledger: engine.usage().clone(),
        outcome: Some(AskOutcome::Stale),
    };
    let tier_label = label(&config, &config.completion.tier);
    let prepared = match at_once(session, &engine, &snap, cursor, &tier_label, &mut running) {
        Start::Now(suggestion) => return futures::future::ready(suggestion).boxed(),
        Start::Ask(prepared) => *prepared,
    };
    Upstream {
        deadline: tokio::time::Instant::now() + Duration::from_millis(config.completion.budget_ms),
        debounce,
        stale,
        session: session.clone(),
        uri: uri.to_owned(),
        doc: snap.text.clone(),
        cursor,
        tier_label,
        engine,
        prepared,
        running,
    }
    .ask()
    .boxed()
}

/// How a completion goes on after what it could answer at once.
enum Start {
    /// Answered (typeahead, the cache, or nothing for an excluded file).
    Now(Option<Suggestion>),
    /// To be asked upstream.
    Ask(Box<crate::complete::Prepared>),
}

/// What a completion can answer without waiting, in this order: the rest of the suggestion on
/// screen being typed, nothing for an excluded file, a cached suggestion; otherwise what to ask.
fn at_once(
    session: &Session,
    engine: &crate::engine::Engine,
    snap: &docs::Snapshot,
    cursor: usize,
    tier_label: &str,
    running: &mut Running,
) -> Start {
    let uri = snap.uri.as_str();
    let suggestion = |text: &str| Suggestion {
        text: text.to_owned(),
        doc: snap.text.clone(),
        cursor,
        tier_label: tier_label.to_owned(),
    };
    if let Some(shown) = session.completions.shown() {
        if let Some(rest) = shown.rest(uri, &snap.text, cursor) {
            running.book(AskOutcome::Hit);
            return Start::Now(Some(suggestion(rest)));
        }
    }
    let job = CompletionJob {
        file_name: uri,
        language_id: &snap.language_id,
        text: &snap.text,
        cursor,
    };
    let prepared = match engine.prepare_completion(&job) {
        Ok(p) => p,
        Err(e) => {
            // Said once per keystroke would be noise: excluded files get no completions.
            tracing::debug!(uri, "no completion: {e}");
            running.outcome = None;
            return Start::Now(None);
        }
    };
    match engine.cached_completion(&prepared) {
        Some(text) => {
            running.book(AskOutcome::Hit);
            if text.is_empty() {
                return Start::Now(None);
            }
            session
                .completions
                .set_shown(Some(Shown::new(uri, &snap.text, cursor, &text)));
            Start::Now(Some(suggestion(&text)))
        }
        None => Start::Ask(Box::new(prepared)),
    }
}

/// A suggestion that neither typeahead nor the cache could give: what asking for it needs.
struct Upstream {
    deadline: tokio::time::Instant,
    debounce: Duration,
    /// Cancelled by an edit of the document, a newer completion there, or `$/cancelRequest`.
    stale: CancellationToken,
    session: Arc<Session>,
    uri: String,
    doc: Rope,
    cursor: usize,
    tier_label: String,
    engine: Arc<crate::engine::Engine>,
    prepared: crate::complete::Prepared,
    running: Running,
}

impl Upstream {
    /// Waits the debounce, then asks, all before the deadline; books how it ended and remembers
    /// the suggestion shown for typeahead.
    async fn ask(self) -> Option<Suggestion> {
        // The whole guard moves in (not only the field assigned below), so it ends with the future.
        let Upstream {
            deadline,
            debounce,
            stale,
            session,
            uri,
            doc,
            cursor,
            tier_label,
            engine,
            prepared,
            mut running,
        } = self;
        let asked = tokio::select! {
            biased;
            () = stale.cancelled() => return None,
            r = tokio::time::timeout_at(deadline, async {
                tokio::time::sleep(debounce).await;
                engine.complete(&prepared).await
            }) => r,
        };
        let asked = match asked {
            Err(_) | Ok(Err(EngineError::Route(RouteError::BudgetExceeded { .. }))) => {
                running.book(AskOutcome::Late);
                tracing::debug!(%uri, "completion dropped: past completion.budget_ms");
                return None;
            }
            Ok(Err(EngineError::Cancelled | EngineError::Route(RouteError::Cancelled))) => {
                return None;
            }
            Ok(Err(e)) => {
                running.book(AskOutcome::Asked);
                tracing::warn!(%uri, "completion failed: {e}");
                if !stale.is_cancelled() {
                    tell_failure(&session, &e).await;
                }
                return None;
            }
            Ok(Ok(asked)) => asked,
        };
        session.completions.succeeded();
        running.book(AskOutcome::Asked);
        tracing::debug!(%uri, stopped_early = asked.stopped_early, shown = asked.text.is_some(), "completion answered");
        let text = asked.text?;
        session
            .completions
            .set_shown(Some(Shown::new(&uri, &doc, cursor, &text)));
        Some(Suggestion {
            text,
            doc,
            cursor,
            tier_label,
        })
    }
}

/// Tells the user once why completions fail: a `window/showMessage` warning for the first
/// failure of each kind since the last completion that succeeded, never one per keystroke.
async fn tell_failure(session: &Session, error: &EngineError) {
    let (kind, consequence) = failure_kind(error);
    if !session.completions.tell_failure(kind, consequence) {
        return;
    }
    if let Some(client) = session.client() {
        let message = format!(
            "codetier: inline completions fail: {error}. (Said once until a completion succeeds.)"
        );
        editor::show_message(client, lsp::MessageType::WARNING, message).await;
    }
}

/// The kind of a completion's failure, for telling each kind once; and whether it only follows
/// from other failures (the breaker pausing a model that kept failing).
fn failure_kind(error: &EngineError) -> (&'static str, bool) {
    use crate::provider::ProviderError as P;
    let kind = match error {
        EngineError::Route(RouteError::CircuitOpen { .. }) => return ("paused", true),
        EngineError::Route(RouteError::Provider(p)) => match p {
            P::MissingKey { .. } | P::InvalidKey { .. } => "key missing",
            P::KeyRejected { .. } => "key rejected",
            P::PaymentRequired => "payment",
            P::UnknownModel { .. } => "model",
            P::UnknownPath { .. }
            | P::NotChatCompletion { .. }
            | P::InsecureUrl { .. }
            | P::BadUrl { .. } => "base url",
            P::Connect { .. } | P::Timeout { .. } | P::StreamReset => "unreachable",
            P::RateLimited { .. } => "rate limited",
            P::Server { .. } => "server",
            P::BadRequest { .. } => "refused",
            _ => "answer",
        },
        EngineError::Route(RouteError::UnknownTier(_)) => "tier",
        _ => "other",
    };
    (kind, false)
}

/// One completion from its start to its end, however it ends: it leaves the session's list of
/// those in flight, and its outcome is booked (stale unless it got further).
struct Running {
    session: Arc<Session>,
    uri: String,
    kind: CompletionKind,
    id: u64,
    ledger: Arc<Ledger>,
    /// `None`: not booked (the file is excluded).
    outcome: Option<AskOutcome>,
}

impl Running {
    fn book(&mut self, outcome: AskOutcome) {
        self.outcome = Some(outcome);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.session.completions.end(&self.uri, self.kind, self.id);
        if let Some(outcome) = self.outcome {
            self.ledger.record_outcome(ACTION, outcome);
        }
    }
}
