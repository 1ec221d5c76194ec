//! Typeahead: the last suggestion shown in a document, and what is left of it while the user types what it begins with.

use std::hash::{DefaultHasher, Hash, Hasher};

use ropey::Rope;

/// Chars before the cursor's line compared (by hash) to decide the document did not change there.
const CONTEXT_CHARS: usize = 4096;

/// A suggestion shown at a place in a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shown {
    pub uri: String,
    /// Char offset where the suggestion begins.
    pub start: usize,
    /// The line up to `start`.
    line_before: String,
    /// The line after `start` (without its break): typing the suggestion must leave it as it was.
    line_after: String,
    /// Hash of the [`CONTEXT_CHARS`] chars before the line.
    context: u64,
    pub text: String,
}

impl Shown {
    /// The suggestion `text`, shown at `start` of `doc`.
    pub fn new(uri: &str, doc: &Rope, start: usize, text: &str) -> Shown {
        let start = start.min(doc.len_chars());
        let (line_start, line_end) = line_bounds(doc, start);
        Shown {
            uri: uri.to_owned(),
            start,
            line_before: doc.slice(line_start..start).to_string(),
            line_after: doc.slice(start..line_end.max(start)).to_string(),
            context: context_hash(doc, line_start),
            text: text.to_owned(),
        }
    }

    /// What is still to be typed of the suggestion with the cursor at `cursor` of `doc`, when
    /// the user has typed only what the suggestion begins with (line breaks included, so a
    /// suggestion of several lines lasts while they are typed) and nothing else changed: the
    /// suggestion's line still begins as it did, the text after the cursor on its line is what
    /// followed the suggestion, and the text above is the same. `None` otherwise, or when all
    /// of it has been typed.
    pub fn rest(&self, uri: &str, doc: &Rope, cursor: usize) -> Option<&str> {
        if uri != self.uri || cursor > doc.len_chars() || cursor < self.start {
            return None;
        }
        let (line_start, _) = line_bounds(doc, self.start);
        let before_len = self.line_before.chars().count();
        if line_start + before_len != self.start
            || doc.slice(line_start..self.start) != self.line_before.as_str()
        {
            return None;
        }
        let typed = doc.slice(self.start..cursor).to_string();
        if !self.text.starts_with(typed.as_str()) {
            return None;
        }
        let (_, line_end) = line_bounds(doc, cursor);
        if doc.slice(cursor..line_end.max(cursor)) != self.line_after.as_str() {
            return None;
        }
        if context_hash(doc, line_start) != self.context {
            return None;
        }
        let rest = &self.text[typed.len()..];
        (!rest.trim().is_empty()).then_some(rest)
    }
}

/// The char range of the line holding `at`, without its line break.
fn line_bounds(doc: &Rope, at: usize) -> (usize, usize) {
    let line = doc.char_to_line(at);
    let start = doc.line_to_char(line);
    let slice = doc.line(line);
    let mut len = slice.len_chars();
    while len > 0 && matches!(slice.char(len - 1), '\n' | '\r') {
        len -= 1;
    }
    (start, start + len)
}

fn context_hash(doc: &Rope, line_start: usize) -> u64 {
    let mut hasher = DefaultHasher::new();
    for chunk in doc
        .slice(line_start.saturating_sub(CONTEXT_CHARS)..line_start)
        .chunks()
    {
        chunk.hash(&mut hasher);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn typing_any_start_of_the_suggestion_leaves_exactly_the_rest(
            before in "[a-z \n]{0,40}",
            after in "[a-z ]{0,10}",
            suggestion in "[a-z(); ]{1,20}",
            typed in 0usize..20,
        ) {
            let doc = Rope::from_str(&format!("{before}{after}\n"));
            let start = before.chars().count();
            let shown = Shown::new("u", &doc, start, &suggestion);
            let typed = typed.min(suggestion.len());
            let now = Rope::from_str(&format!("{before}{}{after}\n", &suggestion[..typed]));
            let rest = &suggestion[typed..];
            let want = (!rest.trim().is_empty()).then_some(rest);
            prop_assert_eq!(shown.rest("u", &now, start + typed), want);
        }
    }

    #[test]
    fn typing_what_the_suggestion_holds_leaves_the_rest() {
        let doc = Rope::from_str("fn a() {\n    let x = \n}\n");
        let start = "fn a() {\n    let x = ".chars().count();
        let shown = Shown::new("u", &doc, start, "compute(1, 2);");
        assert_eq!(shown.rest("u", &doc, start), Some("compute(1, 2);"));
        let typed = Rope::from_str("fn a() {\n    let x = comp\n}\n");
        assert_eq!(shown.rest("u", &typed, start + 4), Some("ute(1, 2);"));
        // Another document, a different letter, an edit elsewhere on the line or above it.
        assert_eq!(shown.rest("v", &typed, start + 4), None);
        let other = Rope::from_str("fn a() {\n    let x = cx\n}\n");
        assert_eq!(shown.rest("u", &other, start + 2), None);
        let moved = Rope::from_str("fn a() {\n    let y = comp\n}\n");
        assert_eq!(shown.rest("u", &moved, start + 4), None);
        let above = Rope::from_str("fn b() {\n    let x = comp\n}\n");
        assert_eq!(shown.rest("u", &above, start + 4), None);
        // Typing on past a line break the suggestion holds keeps the rest; a different
        // indentation does not.
        let shown = Shown::new("u", &doc, start, "compute(1,\n        2);");
        let broken = Rope::from_str("fn a() {\n    let x = compute(1,\n    \n}\n");
        assert_eq!(shown.rest("u", &broken, start + 15), Some("    2);"));
        let at_break = Rope::from_str("fn a() {\n    let x = compute(1,\n\n}\n");
        assert_eq!(shown.rest("u", &at_break, start + 11), Some("        2);"));
        let indented = Rope::from_str("fn a() {\n    let x = compute(1,\n\t\n}\n");
        assert_eq!(shown.rest("u", &indented, start + 12), None);
        // All of it typed: nothing is left to suggest.
        let all = Rope::from_str("fn a() {\n    let x = compute(1, 2);\n}\n");
        assert_eq!(shown.rest("u", &all, start + 14), None);
    }
}
