//! Conversions between protocol types and ours, named after the type produced.

use std::ops::Range;

use ropey::Rope;
use tower_lsp_server::ls_types as lsp;

use crate::action::Action;
use crate::docs::{self, PositionEncoding};
use crate::render::Severity;

/// What codetier puts in `Diagnostic.data` and reads back from the code-action context: one
/// type for the writer (`publish`) and the reader (`code_action`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DiagnosticData {
    pub action: Action,
    pub tier: String,
    /// The proposed fix for the diagnostic's range, if the model gave one.
    #[serde(default)]
    pub replacement: Option<String>,
}

impl DiagnosticData {
    /// The data of a diagnostic the client sent back, if it carries ours.
    pub fn of(diagnostic: &lsp::Diagnostic) -> Option<DiagnosticData> {
        serde_json::from_value(diagnostic.data.clone()?).ok()
    }
}

pub fn position(p: lsp::Position) -> docs::Position {
    docs::Position {
        line: p.line,
        character: p.character,
    }
}

pub fn lsp_position(p: docs::Position) -> lsp::Position {
    lsp::Position {
        line: p.line,
        character: p.character,
    }
}

pub fn range(r: lsp::Range) -> docs::Range {
    docs::Range {
        start: position(r.start),
        end: position(r.end),
    }
}

pub fn lsp_range(r: docs::Range) -> lsp::Range {
    lsp::Range {
        start: lsp_position(r.start),
        end: lsp_position(r.end),
    }
}

/// A protocol range as char offsets in `text` (clamped, start <= end).
pub fn chars(text: &Rope, r: lsp::Range, enc: PositionEncoding) -> Range<usize> {
    docs::range_to_chars(text, range(r), enc)
}

pub fn lsp_range_of(text: &Rope, r: Range<usize>, enc: PositionEncoding) -> lsp::Range {
    lsp_range(docs::chars_to_range(text, r, enc))
}

pub fn diagnostic_severity(s: &Severity) -> lsp::DiagnosticSeverity {
    match s {
        Severity::Error => lsp::DiagnosticSeverity::ERROR,
        Severity::Warning => lsp::DiagnosticSeverity::WARNING,
        Severity::Info => lsp::DiagnosticSeverity::INFORMATION,
        Severity::Hint => lsp::DiagnosticSeverity::HINT,
    }
}

pub fn position_encoding_kind(enc: PositionEncoding) -> lsp::PositionEncodingKind {
    match enc {
        PositionEncoding::Utf8 => lsp::PositionEncodingKind::UTF8,
        PositionEncoding::Utf16 => lsp::PositionEncodingKind::UTF16,
    }
}

pub fn uri(s: &str) -> Option<lsp::Uri> {
    s.parse().ok()
}
