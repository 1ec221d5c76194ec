//! Hover over a range codetier explained or reviewed: the full markdown of the answer.

use std::sync::Arc;

use tower_lsp_server::ls_types as lsp;
use tower_lsp_server::ls_types::request::HoverRequest;

use super::{done, Handled};
use crate::docs::{self, AnchorState};
use crate::lsp::proto;
use crate::lsp::session::{NoteKind, Session};

pub fn handle(session: &Arc<Session>, params: lsp::HoverParams) -> Handled<HoverRequest> {
    let uri = params
        .text_document_position_params
        .text_document
        .uri
        .as_str()
        .to_owned();
    let Some(snap) = session.docs.snapshot(&uri) else {
        return done::<HoverRequest>(Ok(None));
    };
    let enc = session.encoding();
    let at = docs::position_to_char(
        &snap.text,
        proto::position(params.text_document_position_params.position),
        enc,
    );
    let mut parts = Vec::new();
    let mut hit = None;
    for note in session.notes(&uri) {
        let AnchorState::Live(r) = session.docs.resolve(&uri, note.anchor) else {
            continue;
        };
        if !(r.start <= at && at <= r.end) {
            continue;
        }
        hit.get_or_insert(r.clone());
        match &note.kind {
            NoteKind::Explanation(e) => parts.push(e.markdown.clone()),
            NoteKind::Finding(f) => {
                let mut text = format!("**codetier review ({:?})**: {}", f.severity, f.message);
                if let Some(rep) = &f.replacement {
                    text.push_str(&format!("\n\nSuggested replacement:\n```\n{rep}\n```"));
                }
                parts.push(text);
            }
        }
    }
    let Some(range) = hit else {
        return done::<HoverRequest>(Ok(None));
    };
    let markdown = parts.join("\n\n---\n\n");
    let contents = if session.flags().hover_markdown {
        lsp::MarkupContent {
            kind: lsp::MarkupKind::Markdown,
            value: markdown,
        }
    } else {
        lsp::MarkupContent {
            kind: lsp::MarkupKind::PlainText,
            value: crate::render::plain_text(&markdown),
        }
    };
    let hover = lsp::Hover {
        contents: lsp::HoverContents::Markup(contents),
        range: Some(proto::lsp_range_of(&snap.text, range, enc)),
    };
    done::<HoverRequest>(Ok(Some(hover)))
}
