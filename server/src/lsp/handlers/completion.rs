//! `textDocument/completion` with `completion.menu = true`: the inline suggestion as one menu item, for editors without inline completion (Helix, Neovim before 0.12).

use std::sync::Arc;

use futures::future::FutureExt;
use tokio_util::sync::CancellationToken;
use tower_lsp_server::ls_types as lsp;
use tower_lsp_server::ls_types::request::Completion;

use super::inline_completion::{suggest, Suggestion};
use super::{done, Handled};
use crate::lsp::proto;
use crate::lsp::session::{CompletionKind, Session};

/// Characters of the suggestion shown in the item's label.
const LABEL_CHARS: usize = 60;

pub fn handle(
    session: &Arc<Session>,
    params: lsp::CompletionParams,
    cancel: CancellationToken,
) -> Handled<Completion> {
    if !session.config().completion.menu {
        return done::<Completion>(Ok(None));
    }
    let at = params.text_document_position;
    let uri = at.text_document.uri.as_str();
    let work = suggest(session, uri, at.position, CompletionKind::Menu, cancel);
    let enc = session.encoding();
    async move {
        let Some(s) = work.await else {
            return Ok(None);
        };
        Ok(Some(lsp::CompletionResponse::Array(vec![item(&s, enc)])))
    }
    .boxed()
}

/// The one item: it replaces the word before the cursor with that word and the suggestion, so
/// the menu's filtering on the typed word keeps it (`filterText`); its label names codetier and
/// the tier, since a menu mixes it with the other servers' items.
fn item(s: &Suggestion, enc: crate::docs::PositionEncoding) -> lsp::CompletionItem {
    let line_start = s.doc.line_to_char(s.doc.char_to_line(s.cursor));
    let before: Vec<char> = s.doc.slice(line_start..s.cursor).chars().collect();
    let word_len = before
        .iter()
        .rev()
        .take_while(|c| c.is_alphanumeric() || **c == '_')
        .count();
    let word: String = before[before.len() - word_len..].iter().collect();
    let first_line = s.text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut preview: String = first_line.trim().chars().take(LABEL_CHARS).collect();
    if first_line.trim().chars().count() > LABEL_CHARS || s.text.trim().contains('\n') {
        preview.push('…');
    }
    let new_text = format!("{word}{}", s.text);
    let range = proto::lsp_range_of(&s.doc, s.cursor - word_len..s.cursor, enc);
    let source = format!("codetier ({})", s.tier_label);
    lsp::CompletionItem {
        label: format!("{word}{preview} · {source}"),
        kind: Some(lsp::CompletionItemKind::TEXT),
        detail: Some(source),
        documentation: Some(lsp::Documentation::MarkupContent(lsp::MarkupContent {
            kind: lsp::MarkupKind::Markdown,
            value: format!("```\n{new_text}\n```"),
        })),
        filter_text: Some(format!("{word}{first_line}")),
        sort_text: Some("0".into()),
        insert_text_format: Some(lsp::InsertTextFormat::PLAIN_TEXT),
        text_edit: Some(lsp::CompletionTextEdit::Edit(lsp::TextEdit {
            range,
            new_text,
        })),
        ..Default::default()
    }
}
