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
use crate::lsp::session::{ClientFlags, Session};
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
    let diagnostics: Vec<String> = params
        .context
        .diagnostics
        .iter()
        .filter(|d| d.source.as_deref() != Some(super::publish::SOURCE))
        .map(|d| match &d.source {
            Some(src) => format!("{src}: {}", d.message),
            None => d.message.clone(),
        })
        .collect();
    let only = params.context.only.clone();
    let wanted = |k: &lsp::CodeActionKind| match &only {
        None => true,
        Some(only) => only.iter().any(|o| {
            k.as_str() == o.as_str() || k.as_str().starts_with(&format!("{}.", o.as_str()))
        }),
    };

    let flags = session.flags();
    let mut actions: Vec<lsp::CodeActionOrCommand> = Vec::new();
    // Escalations of an answer whose code failed its check: listed before anything else.
    let mut first: Vec<lsp::CodeActionOrCommand> = Vec::new();
    // A quick fix is an edit, which only a `CodeAction` literal can carry.
    let fixes = if flags.code_action_literals {
        quick_fixes(
            session,
            uri,
            &snap.text,
            snap.version,
            &params.context.diagnostics,
        )
    } else {
        Vec::new()
    };
    for fix in fixes {
        if wanted(&lsp::CodeActionKind::QUICKFIX) {
            actions.push(lsp::CodeActionOrCommand::CodeAction(fix));
        }
    }
    let answers = session.answers(uri);
    // Widened once for every action listed (the block search is the listing's main cost).
    let widening = std::cell::OnceCell::new();
    for action in Action::ALL {
        let kind = kind(action);
        if !wanted(&kind) {
            continue;
        }
        let selection = widening
            .get_or_init(|| Widening::new(&snap.text, tree, requested.clone()))
            .of(action)
            .chars;
        let range = proto::lsp_range_of(&snap.text, selection.clone(), enc);
        let base = &config.action(action).tier;
        let args = |tier: Option<&str>, fresh: bool, answer: Option<u64>| ActionArgs {
            uri: uri.to_owned(),
            range,
            tier: tier.map(str::to_owned),
            fresh,
            diagnostics: diagnostics.clone(),
            answer,
        };
        actions.push(command_action(
            &flags,
            format!(
                "{} ({})",
                Command::Run(action).title(),
                label(&config, base)
            ),
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
            let id = Some(answer.origin.to_raw());
            let escalations = if answer.verified == Some(false) {
                &mut first
            } else {
                &mut actions
            };
            for tier in &config.action(action).escalate {
                escalations.push(command_action(
                    &flags,
                    format!("{} with {}", action.title(), label(&config, tier)),
                    &kind,
                    action,
                    args(Some(tier), false, id),
                ));
            }
            actions.push(command_action(
                &flags,
                format!(
                    "Regenerate: {} ({})",
                    action.title(),
                    label(&config, &answer.tier)
                ),
                &kind,
                action,
                args(Some(&answer.tier), true, id),
            ));
        }
    }
    first.append(&mut actions);
    Ok(Some(first))
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
