//! Per-connection state: documents, configuration, in-flight work and the notes (findings,
//! explanations) the server has attached to documents.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use dashmap::DashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower_lsp_server::Client;

use super::ServeOptions;
use crate::config::{self, Config};
use crate::docs::{AnchorId, AnchorState, PositionEncoding, Store};
use crate::engine::{Action, Engine, Job};
use crate::render::{Explanation, Finding};

/// Client capabilities resolved once at `initialize`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientFlags {
    /// The client accepts `window/workDoneProgress/create`.
    pub work_done_progress: bool,
    /// The client can apply `workspace/applyEdit`.
    pub apply_edit: bool,
    /// Workspace edits may use `documentChanges` (versioned edits); otherwise `changes`.
    pub document_changes: bool,
    /// The client renders markdown in hover; otherwise hover is plain text.
    pub hover_markdown: bool,
    /// `textDocument/codeAction` may answer `CodeAction` literals; otherwise only `Command`s.
    pub code_action_literals: bool,
    /// `CodeAction.isPreferred` is understood.
    pub is_preferred: bool,
    /// The client echoes `Diagnostic.data` back in the code-action context.
    pub diagnostic_data: bool,
    /// The client declares `textDocument.inlineCompletion` (VS Code, Neovim 0.12).
    pub inline_completion: bool,
}

/// Which request a completion answers: inline completions and the menu item are in flight apart,
/// so an editor that sends both for one keystroke does not cancel one with the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompletionKind {
    Inline,
    Menu,
}

/// The completions of a session: the one in flight per document and kind, and the last
/// suggestion shown.
#[derive(Default)]
pub struct Completions {
    /// Per document and kind: the id of the completion in flight and its cancellation.
    running: DashMap<(String, CompletionKind), (u64, CancellationToken)>,
    next_id: AtomicU64,
    /// The last suggestion shown, for typeahead.
    shown: Mutex<Option<crate::complete::Shown>>,
    /// The kinds of failure the user was told of since the last completion that succeeded.
    told: Mutex<Vec<&'static str>>,
    /// The pace of the requests per kind, for the adaptive debounce.
    pace: Mutex<[crate::complete::Pace; 2]>,
}

impl Completions {
    /// Registers a new completion of `kind` in `uri`: the one of that kind in flight there (now
    /// stale) is cancelled.
    pub fn begin(
        &self,
        uri: &str,
        kind: CompletionKind,
        parent: &CancellationToken,
    ) -> (u64, CancellationToken) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let token = parent.child_token();
        let older = self
            .running
            .insert((uri.to_owned(), kind), (id, token.clone()));
        if let Some((_, older)) = older {
            older.cancel();
        }
        (id, token)
    }

    /// The completion `id` of `kind` in `uri` is over.
    pub fn end(&self, uri: &str, kind: CompletionKind, id: u64) {
        self.running
            .remove_if(&(uri.to_owned(), kind), |_, (running, _)| *running == id);
    }

    /// The document changed: its completions in flight are stale.
    pub fn document_changed(&self, uri: &str) {
        for kind in [CompletionKind::Inline, CompletionKind::Menu] {
            if let Some((_, (_, token))) = self.running.remove(&(uri.to_owned(), kind)) {
                token.cancel();
            }
        }
    }

    pub fn shown(&self) -> Option<crate::complete::Shown> {
        self.shown.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_shown(&self, shown: Option<crate::complete::Shown>) {
        *self.shown.lock().unwrap_or_else(|e| e.into_inner()) = shown;
    }

    /// Whether the user is to be told of a failure of `kind`: the first of each kind since the
    /// last completion that succeeded. `consequence` marks a kind that follows from others (the
    /// breaker opening after repeated failures): it is told only when nothing else was.
    pub fn tell_failure(&self, kind: &'static str, consequence: bool) -> bool {
        let mut told = self.told.lock().unwrap_or_else(|e| e.into_inner());
        if told.contains(&kind) || (consequence && !told.is_empty()) {
            return false;
        }
        told.push(kind);
        true
    }

    /// How long a completion of `kind` arriving now waits before it asks (see
    /// [`crate::complete::Pace`]).
    pub fn debounce(
        &self,
        kind: CompletionKind,
        configured: std::time::Duration,
    ) -> std::time::Duration {
        let mut pace = self.pace.lock().unwrap_or_else(|e| e.into_inner());
        let i = match kind {
            CompletionKind::Inline => 0,
            CompletionKind::Menu => 1,
        };
        pace[i].debounce(std::time::Instant::now(), configured)
    }

    /// A completion succeeded: the next failure of any kind is told again.
    pub fn succeeded(&self) {
        self.told.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// What the server attached to a range of a document.
#[derive(Clone, Debug)]
pub enum NoteKind {
    Finding(Finding),
    Explanation(Explanation),
}

impl NoteKind {
    /// The fix the model proposed for the note's range, if any.
    pub fn replacement(&self) -> Option<&str> {
        match self {
            NoteKind::Finding(f) => f.replacement.as_deref(),
            NoteKind::Explanation(e) => e.fix.as_deref(),
        }
    }

    /// The diagnostic message the note is published with.
    pub fn message(&self) -> &str {
        match self {
            NoteKind::Finding(f) => &f.message,
            NoteKind::Explanation(e) => &e.headline,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Note {
    pub anchor: AnchorId,
    /// The action run that produced it; a new run on the same range replaces it.
    pub origin: AnchorId,
    pub action: Action,
    pub tier: String,
    pub kind: NoteKind,
}

/// An answer that exists for a range, so escalations can be offered there.
#[derive(Clone, Debug)]
pub struct AnswerRecord {
    /// Where the answer is now: the selection for explain and review, the inserted code
    /// for generate.
    pub origin: AnchorId,
    pub action: Action,
    pub tier: String,
    /// The request that produced it, so an escalation asks the same prompt again.
    pub job: Job,
    /// Whether its code passed its check (`None`: not checked); an unverified answer lists its
    /// escalations first.
    pub verified: Option<bool>,
}

#[derive(Default, Debug)]
pub struct DocNotes {
    pub notes: Vec<Note>,
    pub answers: Vec<AnswerRecord>,
}

/// Bound on answers remembered per document (oldest dropped).
const MAX_ANSWERS_PER_DOC: usize = 256;

pub struct Session {
    pub options: ServeOptions,
    client: OnceLock<Client>,
    pub docs: Store,
    /// Syntax trees of the open documents with a grammar, following `docs`.
    pub syntax: crate::syntax::Trees,
    utf8: AtomicBool,
    initialized: AtomicBool,
    /// `shutdown` was received (the exit code of a later `exit` depends on it).
    shutdown_requested: AtomicBool,
    exit_received: AtomicBool,
    flags: OnceLock<ClientFlags>,
    engine: OnceLock<Arc<Engine>>,
    pub loader: Mutex<config::Loader>,
    /// Cancellation of requests we handle, by JSON-RPC id.
    requests: DashMap<String, CancellationToken>,
    /// Cancellation of running commands, by work-done progress token.
    progress: DashMap<String, CancellationToken>,
    notes: DashMap<String, DocNotes>,
    publish_tx: mpsc::UnboundedSender<String>,
    publish_rx: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    pub waiting_commands: AtomicUsize,
    /// Completions in flight and the last one shown.
    pub completions: Completions,
    next_token: AtomicU64,
    shutdown: CancellationToken,
    /// Messages for the user found before the editor could be told (configuration, provider),
    /// shown at `initialized`.
    pub startup_errors: Mutex<Vec<(tower_lsp_server::ls_types::MessageType, String)>>,
    /// The disk cache and the provider's connection were got ready (see [`Session::warm_up`]).
    warmed: AtomicBool,
}

impl Session {
    pub fn new(options: ServeOptions) -> Session {
        let (publish_tx, publish_rx) = mpsc::unbounded_channel();
        Session {
            options,
            client: OnceLock::new(),
            docs: Store::new(),
            syntax: crate::syntax::Trees::new(),
            utf8: AtomicBool::new(false),
            initialized: AtomicBool::new(false),
            shutdown_requested: AtomicBool::new(false),
            exit_received: AtomicBool::new(false),
            flags: OnceLock::new(),
            engine: OnceLock::new(),
            loader: Mutex::new(config::Loader::new()),
            requests: DashMap::new(),
            progress: DashMap::new(),
            notes: DashMap::new(),
            publish_tx,
            publish_rx: Mutex::new(Some(publish_rx)),
            waiting_commands: AtomicUsize::new(0),
            completions: Completions::default(),
            next_token: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
            startup_errors: Mutex::new(Vec::new()),
            warmed: AtomicBool::new(false),
        }
    }

    /// Opens the disk cache and the provider's connection off the request path, once: at the
    /// first document, so they are ready before its first action, and a server that is never
    /// given a document (an editor starts one per workspace) touches neither. The cache's
    /// warning, if any, is shown once it is open.
    pub fn warm_up(&self) {
        if self.warmed.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(engine) = self.engine().cloned() else {
            return;
        };
        let client = self.client().cloned();
        tokio::spawn(async move {
            let cache = engine.cache();
            let _ = tokio::task::spawn_blocking(move || cache.wait_open()).await;
            if let Some(client) = &client {
                super::editor::show_cache_warning(client, &engine).await;
            }
            engine.warm_up().await;
        });
    }

    pub fn attach_client(self: &Arc<Self>, client: Client) {
        let _ = self.client.set(client);
    }

    pub fn client(&self) -> Option<&Client> {
        self.client.get()
    }

    /// The receiving end of the publish queue, for the one publisher task (`None` once taken).
    pub fn take_publish_queue(&self) -> Option<mpsc::UnboundedReceiver<String>> {
        self.publish_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Cancelled when the session shuts down; background tasks stop on it.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn shutdown_background(&self) {
        self.shutdown.cancel();
        for entry in self.requests.iter() {
            entry.value().cancel();
        }
        for entry in self.progress.iter() {
            entry.value().cancel();
        }
    }

    pub fn set_encoding(&self, encoding: PositionEncoding) {
        self.utf8
            .store(encoding == PositionEncoding::Utf8, Ordering::SeqCst);
    }

    pub fn encoding(&self) -> PositionEncoding {
        if self.utf8.load(Ordering::SeqCst) {
            PositionEncoding::Utf8
        } else {
            PositionEncoding::Utf16
        }
    }

    /// Records that `shutdown` arrived: from now on only `exit` is served.
    pub fn mark_shutdown_requested(&self) {
        self.shutdown_requested.store(true, Ordering::SeqCst);
    }

    /// Records that `exit` arrived.
    pub fn mark_exit(&self) {
        self.exit_received.store(true, Ordering::SeqCst);
    }

    pub fn exit_received(&self) -> bool {
        self.exit_received.load(Ordering::SeqCst)
    }

    pub fn shutdown_requested(&self) -> bool {
        self.shutdown_requested.load(Ordering::SeqCst)
    }

    pub fn set_initialized(&self, flags: ClientFlags) {
        let _ = self.flags.set(flags);
        self.initialized.store(true, Ordering::SeqCst);
    }

    pub fn is_initialized(&self) -> bool {
        self.initialized.load(Ordering::SeqCst)
    }

    pub fn flags(&self) -> ClientFlags {
        self.flags.get().copied().unwrap_or_default()
    }

    pub fn set_engine(&self, engine: Arc<Engine>) {
        let _ = self.engine.set(engine);
    }

    pub fn engine(&self) -> Option<&Arc<Engine>> {
        self.engine.get()
    }

    pub fn config(&self) -> Arc<Config> {
        match self.engine.get() {
            Some(e) => e.config(),
            None => Arc::new(Config::default()),
        }
    }

    // ---- cancellation -------------------------------------------------------------

    pub fn register_request(&self, id: String) -> CancellationToken {
        let token = self.shutdown.child_token();
        self.requests.insert(id, token.clone());
        token
    }

    pub fn finish_request(&self, id: &str) {
        self.requests.remove(id);
    }

    /// `$/cancelRequest`: acted on the moment it arrives, not when a slot frees.
    pub fn cancel_request(&self, id: &str) {
        if let Some((_, token)) = self.requests.remove(id) {
            tracing::debug!(id, "request cancelled by the client");
            token.cancel();
        }
    }

    pub fn new_progress_token(&self) -> String {
        format!(
            "codetier/{}",
            self.next_token.fetch_add(1, Ordering::Relaxed)
        )
    }

    pub fn register_progress(&self, token: &str, cancel: CancellationToken) {
        self.progress.insert(token.to_owned(), cancel);
    }

    pub fn finish_progress(&self, token: &str) {
        self.progress.remove(token);
    }

    /// `window/workDoneProgress/cancel`: the cancel button of the progress notification.
    pub fn cancel_progress(&self, token: &str) {
        if let Some((_, cancel)) = self.progress.remove(token) {
            tracing::debug!(token, "command cancelled from its progress notification");
            cancel.cancel();
        }
    }

    // ---- notes --------------------------------------------------------------------

    /// Asks the publisher to send the document's diagnostics again.
    pub fn republish(&self, uri: &str) {
        let _ = self.publish_tx.send(uri.to_owned());
    }

    pub fn has_notes(&self, uri: &str) -> bool {
        self.notes.get(uri).is_some_and(|n| !n.notes.is_empty())
    }

    /// Replaces the notes an earlier run of `action` attached to the same range.
    pub fn replace_notes(&self, uri: &str, action: Action, origin: Range<usize>, new: Vec<Note>) {
        let mut entry = self.notes.entry(uri.to_owned()).or_default();
        let docs = &self.docs;
        let mut released = Vec::new();
        entry.notes.retain(|n| {
            let same = n.action == action
                && matches!(docs.resolve(uri, n.origin), AnchorState::Live(r) if r == origin);
            let dead = !matches!(docs.resolve(uri, n.anchor), AnchorState::Live(_));
            if same || dead {
                released.push(n.anchor);
                released.push(n.origin);
            }
            !(same || dead)
        });
        entry.notes.extend(new);
        // An origin stays while a note or an answer still refers to it.
        released.retain(|id| {
            !entry
                .notes
                .iter()
                .any(|n| n.origin == *id || n.anchor == *id)
                && !entry.answers.iter().any(|a| a.origin == *id)
        });
        drop(entry);
        for anchor in released {
            self.docs.release(uri, anchor);
        }
    }

    pub fn notes(&self, uri: &str) -> Vec<Note> {
        self.notes
            .get(uri)
            .map(|n| n.notes.clone())
            .unwrap_or_default()
    }

    /// Drops notes and answers whose range was edited, releasing their anchors; returns
    /// whether any note was dropped.
    pub fn prune_notes(&self, uri: &str) -> bool {
        let Some(mut entry) = self.notes.get_mut(uri) else {
            return false;
        };
        let before = entry.notes.len();
        let docs = &self.docs;
        let live = |id: AnchorId| matches!(docs.resolve(uri, id), AnchorState::Live(_));
        let mut dead = Vec::new();
        entry.notes.retain(|n| {
            let keep = live(n.anchor);
            if !keep {
                dead.push(n.anchor);
            }
            keep
        });
        entry.answers.retain(|a| {
            let keep = live(a.origin);
            if !keep {
                dead.push(a.origin);
            }
            keep
        });
        for n in &entry.notes {
            if !live(n.origin) {
                dead.push(n.origin);
            }
        }
        let dropped = before != entry.notes.len();
        drop(entry);
        for id in dead {
            self.docs.release(uri, id);
        }
        dropped
    }

    pub fn record_answer(&self, uri: &str, record: AnswerRecord) {
        let mut entry = self.notes.entry(uri.to_owned()).or_default();
        let docs = &self.docs;
        let origin = docs.resolve(uri, record.origin);
        let mut released = Vec::new();
        entry.answers.retain(|a| {
            let replaced = a.action == record.action && docs.resolve(uri, a.origin) == origin;
            if replaced {
                released.push(a.origin);
            }
            !replaced
        });
        entry.answers.push(record);
        if entry.answers.len() > MAX_ANSWERS_PER_DOC {
            released.push(entry.answers.remove(0).origin);
        }
        drop(entry);
        let in_use = |id: AnchorId| {
            self.notes
                .get(uri)
                .is_some_and(|e| e.notes.iter().any(|n| n.origin == id))
        };
        for id in released {
            if !in_use(id) {
                self.docs.release(uri, id);
            }
        }
    }

    /// The answer recorded at `origin` and its live range, if it is still there.
    pub fn answer(&self, uri: &str, origin: AnchorId) -> Option<(AnswerRecord, Range<usize>)> {
        let entry = self.notes.get(uri)?;
        let record = entry.answers.iter().find(|a| a.origin == origin)?.clone();
        drop(entry);
        match self.docs.resolve(uri, origin) {
            AnchorState::Live(range) => Some((record, range)),
            _ => None,
        }
    }

    pub fn answers(&self, uri: &str) -> Vec<AnswerRecord> {
        self.notes
            .get(uri)
            .map(|n| n.answers.clone())
            .unwrap_or_default()
    }

    pub fn forget_document(&self, uri: &str) {
        self.notes.remove(uri);
    }
}
