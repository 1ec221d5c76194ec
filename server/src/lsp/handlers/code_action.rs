//! `textDocument/codeAction`: the action list, answered from memory; never calls the model.

use std::ops::Range;
use std::sync::Arc;

use ropey::Rope;
use tower_lsp_server::ls_types as lsp;
use tower_lsp_server::ls_types::request::CodeActionRequest;

use super::{done, Handled};
use crate::action::Action;
use crate::config::Config;
use crate::docs::{AnchorState, Snapshot};
use crate::lsp::commands::{ActionArgs, Command};
use crate::lsp::error::LspResult;
use crate::lsp::proto::{self, DiagnosticData};
use crate::lsp::session::{AnswerRecord, ClientFlags, Session};
use crate::prompts::Widening;
use crate::render;
use crate::syntax::Parsed;

/// Kind of every codetier action; clients filter with `only: ["refactor"]` or finer.
pub const KIND_BASE: &str = "refactor.codetier";

pub fn kind(action: Action) -> lsp::CodeActionKind {
    lsp::CodeActionKind::from(format!("{KIND_BASE}.{}", action.as_str()))
}

pub fn kinds() -> Vec<lsp::CodeActionKind> {
    let mut all: Vec<_> = Action::ALL.into_iter().map(kind).collect();
    all.push(lsp::CodeActionKind::QUICKFIX);
    all
}

pub fn handle(session: &Arc<Session>, params: lsp::CodeActionParams) -> Handled<CodeActionRequest> {
    let uri = params.text_document.uri.as_str().to_owned();
    let Some(snap) = session.docs.snapshot(&uri) else {
        tracing::debug!(%uri, "codeAction for a document that is not open");
        return done::<CodeActionRequest>(Ok(None));
    };
    // Stamped with the snapshot: the tree used is the one of exactly this text.
    let Some(stamp) = session.syntax.stamp(&uri) else {
        return done::<CodeActionRequest>(list(session, &params, &snap, None));
    };
    if let Some(tree) = stamp.ready() {
        return done::<CodeActionRequest>(list(session, &params, &snap, Some(&tree)));
    }
    // This version's tree is not parsed yet (the document just opened or changed): wait for
    // it off the dispatcher, so typing is never held up.
    let session = session.clone();
    Box::pin(async move {
        let tree = tokio::task::spawn_blocking(move || stamp.wait())
            .await
            .ok()
            .flatten();
        list(&session, &params, &snap, tree.as_ref())
    })
}

/// The action list for `params` on `snap`, widened by `tree` (the tree of `snap`) when given.
fn list(
    session: &Session,
    params: &lsp::CodeActionParams,
    snap: &Snapshot,
    tree: Option<&Parsed>,
) -> LspResult<Option<lsp::CodeActionResponse>> {
    let uri = snap.uri.as_str();
    let enc = session.encoding();
    let config = session.config();
    let requested = proto::chars(&snap.text, params.range, enc);
    let diagnostics = other_tools(&params.context.diagnostics);
    let only = params.context.only.as_deref();

    let flags = session.flags();
    let mut actions: Vec<lsp::CodeActionOrCommand> = Vec::new();
    // Escalations of an answer whose code failed its check: listed before anything else.
    let mut first: Vec<lsp::CodeActionOrCommand> = Vec::new();
    // A quick fix is an edit, which only a `CodeAction` literal can carry.
    if flags.code_action_literals && wanted(only, &lsp::CodeActionKind::QUICKFIX) {
        let fixes = quick_fixes(
            session,
            uri,
            &snap.text,
            snap.version,
            &params.context.diagnostics,
        );
        actions.extend(fixes.into_iter().map(lsp::CodeActionOrCommand::CodeAction));
    }
    let answers = session.answers(uri);
    // Widened once for every action listed (the block search is the listing's main cost).
    let widening = std::cell::OnceCell::new();
    for action in Action::ALL {
        let kind = kind(action);
        if !wanted(only, &kind) {
            continue;
        }
        let selection = widening
            .get_or_init(|| Widening::new(&snap.text, tree, requested.clone()))
            .of(action)
            .chars;
        let range = proto::lsp_range_of(&snap.text, selection.clone(), enc);
        let args = |tier: Option<&str>, fresh: bool, answer: Option<u64>| ActionArgs {
            uri: uri.to_owned(),
            range,
            tier: tier.map(str::to_owned),
            fresh,
            diagnostics: diagnostics.clone(),
            answer,
        };
        let base = &config.action(action).tier;
        let title = format!(
            "{} ({})",
            Command::Run(action).title(),
            label(&config, base)
        );
        actions.push(command_action(
            &flags,
            title,
            &kind,
            action,
            args(None, false, None),
        ));
        // The latest answer of this action over the selection, if any.
        let answered = answers.iter().rev().find(|a| {
            a.action == action
                && matches!(session.docs.resolve(uri, a.origin), AnchorState::Live(r) if overlaps(&r, &selection))
        });
        if let Some(answer) = answered {
            let listed = Listed {
                flags: &flags,
                kind: &kind,
                action,
            };
            follow_ups(&listed, &config, answer, args, &mut first, &mut actions);
        }
    }
    first.append(&mut actions);
    Ok(Some(first))
}

/// What the entries of one action share.
struct Listed<'a> {
    flags: &'a ClientFlags,
    kind: &'a lsp::CodeActionKind,
    action: Action,
}

impl Listed<'_> {
    fn command(&self, title: String, args: ActionArgs) -> lsp::CodeActionOrCommand {
        command_action(self.flags, title, self.kind, self.action, args)
    }
}

/// The escalations and the regeneration of `answer`; escalations of an answer whose code
/// failed its check go `first`, everything else after the actions listed so far.
fn follow_ups(
    listed: &Listed,
    config: &Config,
    answer: &AnswerRecord,
    args: impl Fn(Option<&str>, bool, Option<u64>) -> ActionArgs,
    first: &mut Vec<lsp::CodeActionOrCommand>,
    actions: &mut Vec<lsp::CodeActionOrCommand>,
) {
    let action = listed.action;
    let id = Some(answer.origin.to_raw());
    let escalations = if answer.verified == Some(false) {
        first
    } else {
        &mut *actions
    };
    for tier in &config.action(action).escalate {
        let title = format!("{} with {}", action.title(), label(config, tier));
        escalations.push(listed.command(title, args(Some(tier), false, id)));
    }
    let title = format!(
        "Regenerate: {} ({})",
        action.title(),
        label(config, &answer.tier)
    );
    actions.push(listed.command(title, args(Some(&answer.tier), true, id)));
}

/// Other tools' diagnostics on the range, as the prompt quotes them (ours left out).
fn other_tools(diagnostics: &[lsp::Diagnostic]) -> Vec<String> {
    diagnostics
        .iter()
        .filter(|d| d.source.as_deref() != Some(super::publish::SOURCE))
        .map(|d| match &d.source {
            Some(src) => format!("{src}: {}", d.message),
            None => d.message.clone(),
        })
        .collect()
}

/// Whether the client's `only` filter lets actions of `kind` through (a kind and its
/// sub-kinds, as the specification says).
fn wanted(only: Option<&[lsp::CodeActionKind]>, kind: &lsp::CodeActionKind) -> bool {
    only.is_none_or(|only| {
        only.iter().any(|o| {
            kind.as_str() == o.as_str() || kind.as_str().starts_with(&format!("{}.", o.as_str()))
        })
    })
}

pub fn label(config: &Config, tier: &str) -> String {
    config
        .tiers
        .get(tier)
        .map(|t| t.label.clone())
        .unwrap_or_else(|| tier.to_owned())
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start <= b.end && b.start <= a.end
}

/// An AI action as the client can take it: a `CodeAction` literal with its kind where the
/// client declared literal support, else the bare `Command`.
fn command_action(
    flags: &ClientFlags,
    title: String,
    kind: &lsp::CodeActionKind,
    action: Action,
    args: ActionArgs,
) -> lsp::CodeActionOrCommand {
    let command = args.command(action, title.clone());
    if !flags.code_action_literals {
        return lsp::CodeActionOrCommand::Command(command);
    }
    lsp::CodeActionOrCommand::CodeAction(lsp::CodeAction {
        title,
        kind: Some(kind.clone()),
        command: Some(command),
        ..Default::default()
    })
}

/// Quick fixes for codetier diagnostics in range: from the `Diagnostic.data` the client sent
/// back, or, for clients that do not echo it (Neovim 0.7), from the note the diagnostic was
/// published for.
fn quick_fixes(
    session: &Session,
    uri: &str,
    text: &Rope,
    version: i32,
    diagnostics: &[lsp::Diagnostic],
) -> Vec<lsp::CodeAction> {
    let enc = session.encoding();
    let flags = session.flags();
    let mut notes = None;
    let mut out = Vec::new();
    for diag in diagnostics {
        if diag.source.as_deref() != Some(super::publish::SOURCE) {
            continue;
        }
        // The client sends the diagnostics at the requested range; trust its choice.
        let chars = proto::chars(text, diag.range, enc);
        let replacement = match DiagnosticData::of(diag) {
            Some(data) => data.replacement,
            None => {
                let notes = notes.get_or_insert_with(|| session.notes(uri));
                notes
                    .iter()
                    .find(|n| {
                        n.kind.message() == diag.message
                            && matches!(session.docs.resolve(uri, n.anchor), AnchorState::Live(r) if r == chars)
                    })
                    .and_then(|n| n.kind.replacement().map(str::to_owned))
            }
        };
        let Some(replacement) = replacement else {
            continue;
        };
        let new_text = render::fit(text, chars.clone(), &replacement);
        let Some(edit) = workspace_edit(
            &flags,
            uri,
            version,
            proto::lsp_range_of(text, chars, enc),
            new_text,
        ) else {
            continue;
        };
        out.push(lsp::CodeAction {
            title: format!("Apply codetier fix: {}", first_line(&diag.message)),
            kind: Some(lsp::CodeActionKind::QUICKFIX),
            diagnostics: Some(vec![diag.clone()]),
            edit: Some(edit),
            is_preferred: flags.is_preferred.then_some(true),
            ..Default::default()
        });
    }
    out
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() > 60 {
        format!("{}…", line.chars().take(60).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// A versioned edit of one document (`documentChanges`), for clients that declared support.
pub fn versioned_edit(
    uri: &str,
    version: i32,
    range: lsp::Range,
    new_text: String,
) -> Option<lsp::WorkspaceEdit> {
    let flags = ClientFlags {
        document_changes: true,
        ..ClientFlags::default()
    };
    workspace_edit(&flags, uri, version, range, new_text)
}

/// One edit of one document as the client can apply it: a versioned `TextDocumentEdit` where
/// `documentChanges` is supported (the client then refuses it if the document moved on), else
/// the plain `changes` map, which the caller must only send for the version it checked.
pub fn workspace_edit(
    flags: &ClientFlags,
    uri: &str,
    version: i32,
    range: lsp::Range,
    new_text: String,
) -> Option<lsp::WorkspaceEdit> {
    let uri = proto::uri(uri)?;
    let edit = lsp::TextEdit { range, new_text };
    if !flags.document_changes {
        return Some(lsp::WorkspaceEdit {
            changes: Some(std::collections::HashMap::from([(uri, vec![edit])])),
            ..Default::default()
        });
    }
    Some(lsp::WorkspaceEdit {
        document_changes: Some(lsp::DocumentChanges::Edits(vec![lsp::TextDocumentEdit {
            text_document: lsp::OptionalVersionedTextDocumentIdentifier {
                uri,
                version: Some(version),
            },
            edits: vec![lsp::OneOf::Left(edit)],
        }])),
        ..Default::default()
    })
}
