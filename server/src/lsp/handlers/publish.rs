//! Turns a document's notes (review findings, explanations) into published diagnostics.

use std::collections::HashSet;
use std::sync::Arc;

use tower_lsp_server::ls_types as lsp;

use crate::action::Action;
use crate::docs::AnchorState;
use crate::lsp::proto::{self, DiagnosticData};
use crate::lsp::session::{NoteKind, Session};

pub const SOURCE: &str = "codetier";

/// The diagnostics of `uri` as they stand now; `None` when the document is closed.
pub fn diagnostics(session: &Session, uri: &str) -> Option<(i32, Vec<lsp::Diagnostic>)> {
    let snap = session.docs.snapshot(uri)?;
    let enc = session.encoding();
    let mut out = Vec::new();
    for note in session.notes(uri) {
        let AnchorState::Live(chars) = session.docs.resolve(uri, note.anchor) else {
            continue;
        };
        let range = proto::lsp_range_of(&snap.text, chars, enc);
        let (severity, message, action) = match &note.kind {
            NoteKind::Finding(f) => (
                proto::diagnostic_severity(&f.severity),
                f.message.clone(),
                Action::Review,
            ),
            NoteKind::Explanation(e) => (
                lsp::DiagnosticSeverity::INFORMATION,
                e.headline.clone(),
                Action::Explain,
            ),
        };
        let data = DiagnosticData {
            action,
            tier: note.tier.clone(),
            replacement: note.kind.replacement().map(str::to_owned),
        };
        out.push(lsp::Diagnostic {
            range,
            severity: Some(severity),
            source: Some(SOURCE.into()),
            message,
            data: serde_json::to_value(data).ok(),
            ..Default::default()
        });
    }
    Some((snap.version, out))
}

/// Starts the task that publishes diagnostics, in order, one document at a time.
pub fn start(session: &Arc<Session>) {
    let Some(mut rx) = session.take_publish_queue() else {
        return;
    };
    let weak = Arc::downgrade(session);
    let stop = session.shutdown_token();
    tokio::spawn(async move {
        loop {
            let first = tokio::select! {
                () = stop.cancelled() => return,
                uri = rx.recv() => match uri { Some(u) => u, None => return },
            };
            // Coalesce a burst of edits into one publish per document.
            let mut uris = HashSet::from([first]);
            while let Ok(uri) = rx.try_recv() {
                uris.insert(uri);
            }
            let Some(session) = weak.upgrade() else {
                return;
            };
            for uri in uris {
                publish(&session, &uri).await;
            }
        }
    });
}

pub async fn publish(session: &Session, uri: &str) {
    let Some(client) = session.client() else {
        return;
    };
    let Some(lsp_uri) = proto::uri(uri) else {
        return;
    };
    match diagnostics(session, uri) {
        Some((version, diags)) => {
            client
                .publish_diagnostics(lsp_uri, diags, Some(version))
                .await
        }
        None => client.publish_diagnostics(lsp_uri, Vec::new(), None).await,
    }
}
