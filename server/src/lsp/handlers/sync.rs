//! didOpen / didChange / didClose, applied synchronously in arrival order by the dispatcher.

use serde_json::Value;
use tower_lsp_server::ls_types as lsp;
use tower_lsp_server::ls_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, Notification,
};

use crate::docs::Change;
use crate::lsp::proto;
use crate::lsp::session::Session;

/// The notifications applied here, before any handler future is queued.
pub fn is_sync(method: &str) -> bool {
    [
        DidOpenTextDocument::METHOD,
        DidChangeTextDocument::METHOD,
        DidCloseTextDocument::METHOD,
    ]
    .contains(&method)
}

pub fn apply(session: &Session, method: &str, params: Value) {
    match method {
        DidOpenTextDocument::METHOD => {
            match serde_json::from_value::<lsp::DidOpenTextDocumentParams>(params) {
                Ok(p) => {
                    let doc = p.text_document;
                    let uri = doc.uri.as_str();
                    session
                        .docs
                        .open(uri, &doc.language_id, doc.version, &doc.text);
                    session.warm_up();
                    // The tree is parsed off this path; this only records the document.
                    if let Some(snap) = session.docs.snapshot(uri) {
                        session
                            .syntax
                            .open(uri, &snap.language_id, snap.version, &snap.text);
                    }
                }
                Err(e) => tracing::warn!("ignoring malformed didOpen: {e}"),
            }
        }
        DidChangeTextDocument::METHOD => {
            match serde_json::from_value::<lsp::DidChangeTextDocumentParams>(params) {
                Ok(p) => {
                    let uri = p.text_document.uri.as_str();
                    // Any edit makes the document's completion in flight stale.
                    session.completions.document_changed(uri);
                    let changes: Vec<Change> = p
                        .content_changes
                        .into_iter()
                        .map(|c| Change {
                            range: c.range.map(proto::range),
                            text: c.text,
                        })
                        .collect();
                    match session.docs.change(
                        uri,
                        p.text_document.version,
                        &changes,
                        session.encoding(),
                    ) {
                        Ok(report) => {
                            // Recorded for the background parser; nothing is parsed here.
                            session
                                .syntax
                                .edited(uri, report.version, &report.edits, || {
                                    session.docs.snapshot(uri).map(|s| s.text)
                                });
                            if session.has_notes(uri)
                                && (!report.invalidated.is_empty() || !report.moved.is_empty())
                            {
                                session.prune_notes(uri);
                                session.republish(uri);
                            }
                        }
                        Err(e) => tracing::warn!("didChange not applied: {e}"),
                    }
                }
                Err(e) => tracing::warn!("ignoring malformed didChange: {e}"),
            }
        }
        DidCloseTextDocument::METHOD => {
            match serde_json::from_value::<lsp::DidCloseTextDocumentParams>(params) {
                Ok(p) => {
                    let uri = p.text_document.uri.as_str();
                    session.completions.document_changed(uri);
                    session.syntax.close(uri);
                    if session.docs.close(uri) && session.has_notes(uri) {
                        session.forget_document(uri);
                        session.republish(uri);
                    }
                    session.forget_document(uri);
                }
                Err(e) => tracing::warn!("ignoring malformed didClose: {e}"),
            }
        }
        _ => {}
    }
}
