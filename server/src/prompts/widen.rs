//! Range widening: a cursor grows to the enclosing function, method or class by the syntax
//! tree where there is one, else to the enclosing block by brackets and indentation, in whole
//! lines; for generate, a partial selection grows to the function it is part of.

use std::ops::Range;

use ropey::Rope;

use crate::action::Action;
use crate::syntax::{self, Block, Parsed};

/// Lines scanned on each side of the cursor: bounds the work on multi-megabyte files, so a
/// code-action request stays well under a millisecond.
const SCAN_LINES: usize = 1000;
/// The most lines a paragraph fallback spans, centred on the cursor.
const MAX_PARAGRAPH_LINES: usize = 400;

/// A selection as an action will use it, and the definition it was widened to (or that it
/// is exactly), which the result names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Widened {
    pub chars: Range<usize>,
    pub block: Option<Block>,
}

/// What `action` works on when the user selected `selection` (chars) of `text`; `tree`, when
/// given, is the syntax tree of exactly `text`.
///
/// - A cursor (an empty or one-character selection) widens to the smallest enclosing function,
///   method or class by the tree ([`syntax::enclosing_block`]); without a tree, or outside
///   any definition, to the block [`widen`] finds by brackets and indentation.
/// - Generate with a longer selection (a stub's signature, its body, a doc comment and the
///   stub) widens to the smallest function, method or class holding it; without one, to its
///   whole lines. Generate always replaces whole lines.
/// - Explain and review keep a longer selection as the user made it: it is what they ask
///   about, and the prompt shows what surrounds it. The block is named only when the
///   selection is exactly one (as when it came widened from the code-action menu).
pub fn widen_selection(
    action: Action,
    text: &Rope,
    tree: Option<&Parsed>,
    selection: Range<usize>,
) -> Widened {
    Widening::new(text, tree, selection).of(action)
}

/// [`widen_selection`] of one selection for any action, the work every action shares (the
/// enclosing block by the tree, a cursor's widening by the heuristics) done once: a
/// code-action listing widens for each action it offers.
pub struct Widening<'a> {
    text: &'a Rope,
    selection: Range<usize>,
    block: Option<Block>,
    /// What a cursor widens to before an action's own rule.
    cursor: Option<Range<usize>>,
}

impl<'a> Widening<'a> {
    pub fn new(text: &'a Rope, tree: Option<&Parsed>, selection: Range<usize>) -> Widening<'a> {
        let len = text.len_chars();
        let (mut start, mut end) = (selection.start.min(len), selection.end.min(len));
        if start > end {
            std::mem::swap(&mut start, &mut end);
        }
        // A tree of another text would point anywhere: callers pass the one of this text, and
        // a length check catches a mix-up cheaply.
        let tree = tree.filter(|t| t.text().len_bytes() == text.len_bytes());
        let block = tree.and_then(|t| syntax::enclosing_block(t, start..end));
        let cursor = (end - start <= 1).then(|| match &block {
            Some(b) => b.chars.clone(),
            None => widen(text, start..end),
        });
        Widening {
            text,
            selection: start..end,
            block,
            cursor,
        }
    }

    /// The selection `action` works on.
    pub fn of(&self, action: Action) -> Widened {
        let (text, block) = (self.text, self.block.clone());
        let generate = action == Action::Generate;
        if let Some(chars) = &self.cursor {
            let chars = if generate {
                whole_lines(text, chars.clone())
            } else {
                chars.clone()
            };
            return Widened { chars, block };
        }
        let (start, end) = (self.selection.start, self.selection.end);
        if generate {
            let lines = whole_lines(text, start..end);
            let chars = match &block {
                Some(b) => lines.start.min(b.chars.start)..lines.end.max(b.chars.end),
                None => lines,
            };
            return Widened {
                chars: whole_lines(text, chars),
                block,
            };
        }
        Widened {
            block: block.filter(|b| b.chars == (start..end)),
            chars: start..end,
        }
    }
}

/// From the start of the first selected line to the end of the last one (a selection ending
/// at the start of a line does not take that line), without the last line's terminator.
pub fn whole_lines(text: &Rope, sel: Range<usize>) -> Range<usize> {
    let len = text.len_chars();
    let (start, end) = (sel.start.min(len), sel.end.min(len));
    let first = text.char_to_line(start);
    let mut last = text.char_to_line(end);
    if end > start && last > first && text.line_to_char(last) == end {
        last -= 1;
    }
    lines_to_chars(text, first, last)
}

/// Widens an empty or one-character selection (char offsets) to the enclosing block.
///
/// Prefers the innermost `{}` / `[]` block whose braces sit on different lines; otherwise the
/// indentation block (the nearest less-indented line above, such as a `def`, through the last
/// line indented deeper); otherwise the paragraph around the cursor, capped at 400 lines.
/// Only the 1000 lines on each side of the cursor are looked at. The result covers whole lines
/// and ends before the last line's terminator. Selections of two or more characters come back
/// unchanged (clamped to the text).
pub fn widen(text: &Rope, selection: Range<usize>) -> Range<usize> {
    let len = text.len_chars();
    let (mut start, mut end) = (selection.start.min(len), selection.end.min(len));
    if start > end {
        std::mem::swap(&mut start, &mut end);
    }
    if end - start >= 2 || len == 0 {
        return start..end;
    }
    let (first, last) = enclosing_lines(text, text.char_to_line(start));
    lines_to_chars(text, first, last)
}

/// The enclosing block of `line` as an inclusive range of 0-based lines.
pub(crate) fn enclosing_lines(text: &Rope, line: usize) -> (usize, usize) {
    let line = line.min(text.len_lines().saturating_sub(1));
    block_in(&Window::scan_block(text, line), line)
}

/// [`enclosing_lines`] as `window` (around `line`) shows it.
fn block_in(window: &Window, line: usize) -> (usize, usize) {
    window
        .brace_block(line)
        .or_else(|| window.indent_block(line))
        .unwrap_or_else(|| window.paragraph(line))
}

/// The header lines (`impl X {`, `fn f() {`, `def g():`) of the blocks that enclose lines
/// `first..=last` and start above them, outermost first, at most `max` of the innermost: what
/// an editor's sticky scroll shows, and what a model needs to know where the code lives.
pub(crate) fn enclosing_headers(text: &Rope, first: usize, last: usize, max: usize) -> Vec<usize> {
    let first = first.min(text.len_lines().saturating_sub(1));
    headers_in(&Window::scan_enclosing(text, first, last), first, last, max)
}

/// [`enclosing_headers`] as `window` (around `first`) shows them.
fn headers_in(window: &Window, first: usize, last: usize, max: usize) -> Vec<usize> {
    let last = last.clamp(first, window.hi());
    let mut headers: Vec<usize> = window
        .pairs
        .iter()
        .filter(|p| p.kind != b'(' && p.open_line < first && p.close_line >= last)
        .map(|p| window.header_start(p.open_line))
        .filter(|h| *h < first)
        .collect();
    if headers.is_empty() {
        // No braces: follow the indentation out, one less-indented line at a time.
        if let Some(mut own) = (first..=last).filter_map(|l| window.indent(l)).min() {
            for l in (window.lo..first).rev() {
                if own == 0 {
                    break;
                }
                if let Some(i) = window.indent(l).filter(|i| *i < own) {
                    headers.push(l);
                    own = i;
                }
            }
        }
    }
    headers.sort_unstable();
    headers.dedup();
    let skip = headers.len().saturating_sub(max);
    headers.split_off(skip)
}

/// Char range from the start of line `first` to the end of line `last`, without its terminator.
pub(crate) fn lines_to_chars(text: &Rope, first: usize, last: usize) -> Range<usize> {
    let start = text.line_to_char(first);
    let end = text.line_to_char(last) + content_len(text, last);
    start..end.max(start)
}

pub(crate) use crate::docs::line_content_len as content_len;

/// A matched bracket pair found by [`Window::scan_with`].
struct Pair {
    kind: u8,
    open: usize,
    open_line: usize,
    close_line: usize,
    /// The closing bracket is the first significant character on its line.
    close_leads_line: bool,
}

/// What one scan of the lines around the cursor learned: each line's indentation and first
/// character, and the bracket pairs. Rope line lookups cost a tree walk each and char
/// iteration decodes UTF-8, so the window is copied out as bytes once and read from there.
struct Window {
    /// The first line of the window.
    lo: usize,
    /// The last line of the window (`lines` may stop earlier, see [`Window::scan_enclosing`]).
    hi: usize,
    /// Indentation width (a tab counts as four) and first non-blank byte; `None` when blank.
    lines: Vec<Option<(usize, u8)>>,
    pairs: Vec<Pair>,
}

impl Window {
    /// The whole window around `line`: every line described, every bracket read. The
    /// shortened scans below are held to it by the tests.
    #[cfg(test)]
    fn scan(text: &Rope, line: usize) -> Window {
        Window::scan_with(text, line, None, None)
    }

    /// The window around `line` (±[`SCAN_LINES`]), as far as [`enclosing_lines`] needs it:
    /// every line is described, but the brackets are read only until, past `line`, no
    /// bracket opened on or above it is still open. A pair found later opens below `line`,
    /// so it can neither enclose `line` nor end the header of a block that does. What
    /// [`block_in`] reads of it is exactly what it reads of the whole window; a cursor
    /// between two items lexes half the window.
    fn scan_block(text: &Rope, line: usize) -> Window {
        Window::scan_with(text, line, None, Some((line + 1, line + 1)))
    }

    /// The window around `first` (±[`SCAN_LINES`]), as far as the blocks that start above
    /// `first` and enclose `first..=last` need it: lines are described up to `last`, and the
    /// brackets are read until, at or past `last`, no bracket opened above `first` is still
    /// open (no later pair could be such a block). What [`enclosing_headers`] reads of it is
    /// exactly what it reads of the whole window; the lines below the selection are skipped.
    fn scan_enclosing(text: &Rope, first: usize, last: usize) -> Window {
        let last = last.max(first);
        Window::scan_with(text, first, Some(last), Some((first, last)))
    }

    /// The window around `line`: its lines described up to `described` (all of them for
    /// `None`), its brackets read as [`bracket_pairs`] reads them with `enclosing`.
    fn scan_with(
        text: &Rope,
        line: usize,
        described: Option<usize>,
        enclosing: Option<(usize, usize)>,
    ) -> Window {
        let lo = line.saturating_sub(SCAN_LINES);
        let hi = (line + SCAN_LINES).min(text.len_lines().saturating_sub(1));
        let described = described.map_or(hi, |last| last.min(hi));
        let begin = text.line_to_char(lo);
        let end = text.line_to_char(hi) + text.line(hi).len_chars();
        let mut bytes = Vec::new();
        for chunk in text.slice(begin..end).chunks() {
            bytes.extend_from_slice(chunk.as_bytes());
        }
        let mut lines = Vec::with_capacity(described - lo + 1);
        let (mut width, mut first, mut at_start) = (0, None, true);
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            let newline = c == b'\n' || (c == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
            if newline {
                lines.push(first.map(|f| (width, f)));
                (width, first, at_start) = (0, None, true);
                if lines.len() > described - lo {
                    break;
                }
            } else if at_start {
                match c {
                    b' ' => width += 1,
                    b'\t' => width += 4,
                    b'\r' => {}
                    _ => (first, at_start) = (Some(c), false),
                }
            } else if c != b'\r' {
                // Past its first character a line says nothing more: on to its break.
                i = line_end(&bytes, i);
                continue;
            }
            i += 1;
        }
        lines.push(first.map(|f| (width, f)));
        // A terminator on the last line described opened an entry for a line past it.
        lines.truncate(described - lo + 1);
        Window {
            lo,
            hi: lo + lines.len().saturating_sub(1) + (hi - described),
            lines,
            pairs: bracket_pairs(&bytes, lo, enclosing),
        }
    }

    fn hi(&self) -> usize {
        self.hi
    }

    /// Indentation of `line`, `None` when blank or outside the window.
    fn indent(&self, line: usize) -> Option<usize> {
        let info = self.lines.get(line.checked_sub(self.lo)?)?;
        info.map(|(w, _)| w)
    }

    fn first_byte(&self, line: usize) -> Option<u8> {
        let info = self.lines.get(line.checked_sub(self.lo)?)?;
        info.map(|(_, c)| c)
    }

    fn is_blank(&self, line: usize) -> bool {
        self.indent(line).is_none()
    }

    fn brace_block(&self, line: usize) -> Option<(usize, usize)> {
        let best = self
            .pairs
            .iter()
            .filter(|p| p.kind != b'(' && p.open_line < p.close_line)
            .filter(|p| p.open_line <= line && line <= p.close_line)
            .max_by_key(|p| p.open)?;
        Some((self.header_start(best.open_line), best.close_line))
    }

    /// Where the header of a block opened on `open_line` starts: a header that spans lines
    /// (`fn f(\n a,\n) {`) starts where its first line is.
    fn header_start(&self, open_line: usize) -> usize {
        let mut start = open_line;
        while let Some(p) = self
            .pairs
            .iter()
            .find(|p| p.close_line == start && p.close_leads_line && p.open_line < start)
        {
            start = p.open_line;
        }
        start
    }

    fn indent_block(&self, line: usize) -> Option<(usize, usize)> {
        let (lo, hi) = (self.lo, self.hi());
        let line = if self.is_blank(line) {
            // Between two lines, the shallower neighbour says which block the blank line is in.
            let prev = (lo..line).rev().find(|&l| !self.is_blank(l));
            let next = (line + 1..=hi).find(|&l| !self.is_blank(l));
            match (prev, next) {
                (Some(p), Some(n)) if self.indent(p) < self.indent(n) => p,
                (_, Some(n)) => n,
                (Some(p), None) => p,
                (None, None) => return None,
            }
        } else {
            line
        };
        let own = self.indent(line)?;
        let next = (line + 1..=hi).find(|&l| !self.is_blank(l));
        let header = if next.and_then(|n| self.indent(n)).is_some_and(|n| n > own) {
            line
        } else if own == 0 {
            return None;
        } else {
            (lo..line)
                .rev()
                .find(|&l| self.indent(l).is_some_and(|i| i < own))?
        };
        let depth = self.indent(header)?;
        let mut end = header;
        for l in header + 1..=hi {
            match self.indent(l) {
                None => continue,
                Some(i) if i > depth => end = l,
                Some(i) => {
                    // A dedented closer (`)`, `]`, `}`) at the header's depth still belongs to it.
                    if i == depth && matches!(self.first_byte(l), Some(b')' | b']' | b'}')) {
                        end = l;
                    }
                    break;
                }
            }
        }
        Some((header, end))
    }

    fn paragraph(&self, line: usize) -> (usize, usize) {
        let hi = self.hi();
        let line = if self.is_blank(line) {
            let below = (line + 1..=hi.min(line + 50)).find(|&l| !self.is_blank(l));
            let above = (line.saturating_sub(50)..line)
                .rev()
                .find(|&l| !self.is_blank(l));
            match below.or(above) {
                Some(l) => l,
                None => return (line, line),
            }
        } else {
            line
        };
        let half = MAX_PARAGRAPH_LINES / 2;
        let mut first = line;
        while first > 0 && line - first < half && !self.is_blank(first - 1) {
            first -= 1;
        }
        let mut last = line;
        while last < hi && last - line < half - 1 && !self.is_blank(last + 1) {
            last += 1;
        }
        (first, last)
    }
}

/// Matched `()`, `[]` and `{}` pairs in `bytes` (whose first line is `lo`), skipping string
/// literals and comments in a simple way that suits C-like languages, Rust, JavaScript, Go
/// and Python. Works on UTF-8 bytes: every character it looks for is ASCII, and the bytes of
/// a multi-byte character are never ASCII.
///
/// With `enclosing = Some((first, last))` it stops at the first line break that reaches
/// line `last` or later while no bracket opened above `first` is still open: every pair it
/// would find after that opens at `first` or below.
///
/// Long on purpose: one lexer loop whose states (strings, comments, brackets) share the
/// position, the line count and the stack; split up, each part would take all of them.
/// The bytes [`bracket_pairs`] acts on (line breaks, comment and string openers, brackets);
/// it passes over every other byte alike, blanks only keeping a line's start as it is.
const SIGNIFICANT: [bool; 256] = {
    let mut table = [false; 256];
    let bytes = b"\n\r/#\"'`([{)]}";
    let mut i = 0;
    while i < bytes.len() {
        table[bytes[i] as usize] = true;
        i += 1;
    }
    table
};

fn bracket_pairs(bytes: &[u8], lo: usize, enclosing: Option<(usize, usize)>) -> Vec<Pair> {
    let at = |i: usize| bytes.get(i).copied().unwrap_or(0);
    let mut pairs = Vec::new();
    let mut stack: Vec<(u8, usize, usize)> = Vec::new();
    let mut line = lo;
    let mut fresh = true;
    let mut i = 0;
    // Skips to the closing `quote` (honouring backslash escapes), counting line breaks.
    let skip_string = |i: usize, quote: &[u8], line: &mut usize| -> usize {
        let mut j = i;
        while j < bytes.len() {
            let c = bytes[j];
            if c == b'\\' {
                j += 2;
                continue;
            }
            if c == b'\n' || (c == b'\r' && at(j + 1) != b'\n') {
                *line += 1;
            }
            if bytes[j..].starts_with(quote) {
                return j + quote.len();
            }
            j += 1;
        }
        j
    };
    let done = |line: usize, stack: &[(u8, usize, usize)]| {
        enclosing.is_some_and(|(first, last)| {
            line >= last
                && stack
                    .first()
                    .is_none_or(|(_, _, open_line)| *open_line >= first)
        })
    };
    while i < bytes.len() {
        let c = bytes[i];
        // Most bytes open, close, quote or break nothing: a run of them is skipped at once,
        // with the blanks in it (a blank leaves `fresh` as it is, and the run has cleared it).
        if !SIGNIFICANT[usize::from(c)] && c != b' ' && c != b'\t' {
            fresh = false;
            i += bytes[i..]
                .iter()
                .position(|&b| SIGNIFICANT[usize::from(b)])
                .unwrap_or(bytes.len() - i);
            continue;
        }
        let leads = fresh;
        match c {
            b'\n' => {
                line += 1;
                fresh = true;
                i += 1;
                if done(line, &stack) {
                    break;
                }
                continue;
            }
            b'\r' => {
                if at(i + 1) != b'\n' {
                    line += 1;
                    fresh = true;
                    if done(line, &stack) {
                        break;
                    }
                }
                i += 1;
                continue;
            }
            b' ' | b'\t' => {
                i += 1;
                continue;
            }
            _ => fresh = false,
        }
        match c {
            b'/' if at(i + 1) == b'/' => i = line_end(bytes, i),
            b'#' if matches!(at(i + 1), b' ' | b'\t' | b'\n' | b'\r' | b'#' | 0) => {
                i = line_end(bytes, i)
            }
            b'/' if at(i + 1) == b'*' => i = skip_string(i + 2, b"*/", &mut line),
            b'"' if at(i + 1) == b'"' && at(i + 2) == b'"' => {
                i = skip_string(i + 3, b"\"\"\"", &mut line);
            }
            b'\'' if at(i + 1) == b'\'' && at(i + 2) == b'\'' => {
                i = skip_string(i + 3, b"\'\'\'", &mut line);
            }
            b'"' => i = skip_string(i + 1, b"\"", &mut line),
            b'`' => i = skip_string(i + 1, b"`", &mut line),
            b'\'' => i = skip_single_quote(bytes, i),
            b'(' | b'[' | b'{' => {
                stack.push((c, i, line));
                i += 1;
            }
            b')' | b']' | b'}' => {
                let want = match c {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                // On a mismatch, close the nearest matching opener and drop the strays above it.
                if let Some(k) = stack.iter().rposition(|(o, _, _)| *o == want) {
                    let (kind, open, open_line) = stack[k];
                    stack.truncate(k);
                    pairs.push(Pair {
                        kind,
                        open,
                        open_line,
                        close_line: line,
                        close_leads_line: leads,
                    });
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    pairs
}

/// Where the line holding byte `i` of `bytes` breaks (its `\n` or `\r`), or the end.
fn line_end(bytes: &[u8], i: usize) -> usize {
    i + memchr::memchr2(b'\n', b'\r', &bytes[i..]).unwrap_or(bytes.len() - i)
}

/// Skips a `'`: a char literal (`'x'`, `'é'`, `'\n'`), a single-quoted string closed on the
/// same line and not followed by an identifier character, or else a lone quote (a Rust
/// lifetime or label).
fn skip_single_quote(bytes: &[u8], i: usize) -> usize {
    let at = |k: usize| bytes.get(k).copied().unwrap_or(0);
    let char_len = match at(i + 1) {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    };
    if at(i + 1) != b'\\' && at(i + 1 + char_len) == b'\'' {
        return i + 2 + char_len;
    }
    let mut j = i + 1;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b'\n' | b'\r' => return i + 1,
            b'\'' => {
                let next = at(j + 1);
                return if next.is_ascii_alphanumeric() || next == b'_' || next >= 0x80 {
                    i + 1
                } else {
                    j + 1
                };
            }
            _ => j += 1,
        }
    }
    i + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::syntax::Lang;

    /// Fixture mini-language: `|` is the cursor (an empty selection), `«` and `»` bracket the
    /// expected widened range. Each fixture is checked as written and with CRLF line endings.
    fn check(fixture: &str) {
        check_one(fixture);
        check_one(&fixture.replace('\n', "\r\n"));
    }

    /// `check`, and the same expectation on the syntax path for `lang`: where the tree finds a
    /// definition it must be that block, and elsewhere the heuristics answer.
    fn check_both(lang: Lang, fixture: &str) {
        check(fixture);
        check_syntax(lang, fixture);
    }

    /// Widening a cursor by the syntax tree of `lang`, as written and with CRLF line endings.
    fn check_syntax(lang: Lang, fixture: &str) {
        for fixture in [fixture.to_owned(), fixture.replace('\n', "\r\n")] {
            let (text, cursor, expected) = parse(&fixture);
            let rope = Rope::from_str(&text);
            let tree = syntax::parse(lang, &rope);
            assert!(tree.is_some(), "{lang:?} parses");
            for action in Action::ALL {
                let got = widen_selection(action, &rope, tree.as_ref(), cursor..cursor).chars;
                assert_eq!(
                    got,
                    expected,
                    "{action:?} on {lang:?}, fixture:\n{fixture}\ngot:\n{:?}",
                    rope.slice(got.clone()).to_string()
                );
            }
        }
    }

    fn check_one(fixture: &str) {
        let (text, cursor, expected) = parse(fixture);
        let rope = Rope::from_str(&text);
        let got = widen(&rope, cursor..cursor);
        assert_eq!(
            got,
            expected,
            "fixture:\n{fixture}\ngot:\n{:?}\nexpected:\n{:?}",
            rope.slice(got.clone()).to_string(),
            rope.slice(expected.clone()).to_string()
        );
        // A one-character selection widens the same way as the cursor.
        if cursor < rope.len_chars() {
            assert_eq!(
                widen(&rope, cursor..cursor + 1),
                expected,
                "1-char: {fixture}"
            );
        }
    }

    fn parse(fixture: &str) -> (String, usize, Range<usize>) {
        let (mut text, mut cursor, mut start, mut end) = (String::new(), None, None, None);
        let mut n = 0;
        for c in fixture.chars() {
            match c {
                '|' => cursor = Some(n),
                '«' => start = Some(n),
                '»' => end = Some(n),
                _ => {
                    text.push(c);
                    n += 1;
                }
            }
        }
        let (Some(cursor), Some(start), Some(end)) = (cursor, start, end) else {
            panic!("fixture needs |, « and »: {fixture}");
        };
        (text, cursor, start..end)
    }

    #[test]
    fn rust_innermost_brace_block() {
        check(
            r#"fn main() {
    let x = 1;
«    if x > 0 {
        print!("{}", x)|;
    }»
}
"#,
        );
    }

    #[test]
    fn rust_function_when_cursor_on_header_or_body() {
        check_both(
            Lang::Rust,
            r#"use std::fmt;

«fn add(a: u32, b: u32) -> u32 {
    let c = a |+ b;
    c
}»

fn other() {}
"#,
        );
        check_both(
            Lang::Rust,
            r#"«fn ad|d(a: u32) -> u32 {
    a
}»
"#,
        );
    }

    #[test]
    fn rust_multi_line_signature_starts_at_the_header() {
        check_both(
            Lang::Rust,
            r#"«pub fn long(
    a: u32,
    b: u32,
) -> u32 {
    a |+ b
}»
"#,
        );
    }

    #[test]
    fn braces_in_strings_comments_and_char_literals_are_ignored() {
        check_both(
            Lang::Rust,
            r#"«fn f<'a>(s: &'a str) -> usize {
    let open = '{';
    let accent = 'é';
    let t = "}}} ünïcödé 日本 not a close";
    // a stray } in a comment
    /* and { in a block */
    s.len() |+ t.len()
}»
"#,
        );
    }

    #[test]
    fn python_indentation_block() {
        check_both(
            Lang::Python,
            r#"import os

«def load(path):
    with open(path) as f:
        data = f.read()
    ret|urn data»

def other():
    pass
"#,
        );
        check(
            r#"def load(path):
«    with open(path) as f:
        data = f.re|ad()
        print('{ not a block')»
    return data
"#,
        );
    }

    #[test]
    fn syntax_takes_the_definition_where_the_heuristics_take_an_inner_block() {
        check_syntax(
            Lang::Rust,
            r#"«fn main() {
    let x = 1;
    if x > 0 {
        print!("{}", x)|;
    }
}»
"#,
        );
        check_syntax(
            Lang::Python,
            r#"«def load(path):
    with open(path) as f:
        data = f.re|ad()
        print('{ not a block')
    return data»
"#,
        );
    }

    #[test]
    fn generate_widens_a_partial_selection_to_its_function_and_others_keep_it() {
        let text = "fn a() {}\n\n/// Largest value.\nfn largest(values: &[i32]) -> i32 {\n    todo!()\n}\n";
        let rope = Rope::from_str(text);
        let tree = syntax::parse(Lang::Rust, &rope);
        let at = |s: &str| text.find(s).unwrap_or(0);
        // The doc comment and the signature, selected: the whole function with its comment.
        let selection = at("/// Largest")..at("-> i32");
        let w = widen_selection(Action::Generate, &rope, tree.as_ref(), selection.clone());
        assert_eq!(w.chars, at("/// Largest")..text.len() - 1);
        assert_eq!(
            w.block.map(|b| b.describe()).as_deref(),
            Some("function `largest` (lines 3–6)")
        );
        // Explain and review keep it, and name no block it is not exactly.
        let w = widen_selection(Action::Review, &rope, tree.as_ref(), selection.clone());
        assert_eq!((w.chars, w.block), (selection, None));
        let exact = at("fn largest")..text.len() - 1;
        let w = widen_selection(Action::Explain, &rope, tree.as_ref(), exact.clone());
        assert_eq!(w.chars, exact);
        assert_eq!(w.block.map(|b| b.kind).as_deref(), Some("function"));
        // Without a tree, generate takes whole lines, as before.
        let w = widen_selection(Action::Generate, &rope, None, at("todo")..at("todo") + 3);
        assert_eq!(w.chars, at("    todo")..at("todo!()") + 7);
        assert!(w.block.is_none());
    }

    #[test]
    fn python_header_line_and_blank_line_inside() {
        check_both(
            Lang::Python,
            r#"«def lo|ad(path):
    x = 1

    return x»
"#,
        );
        check_both(
            Lang::Python,
            r#"«def load(path):
    x = 1
|
    return x»
"#,
        );
    }

    #[test]
    fn python_dedented_closer_belongs_to_the_block() {
        check_both(
            Lang::Python,
            r#"«result = call(
    a|,
    b,
)»
print(result)
"#,
        );
    }

    #[test]
    fn javascript_nested_callback() {
        check_both(
            Lang::JavaScript,
            r#"const app = express();

app.get('/', (req, res) => {
«  items.forEach(item => {
    const s = `${item.name} {`;
    res.wri|te(s);
  });»
});
"#,
        );
    }

    #[test]
    fn top_level_cursor_takes_the_paragraph() {
        check_both(
            Lang::Rust,
            r#"use a;

«use b;
use |c;
use d;»

fn f() {}
"#,
        );
        check_both(
            Lang::Python,
            r#"x = 1
|
«y = 2
z = 3»
"#,
        );
    }

    /// The headers enclosing the `«…»` range of `fixture`, as trimmed line texts.
    fn check_headers(fixture: &str, expected: &[&str]) {
        let (text, _, range) = parse(&format!("|{fixture}"));
        let rope = Rope::from_str(&text);
        let (first, last) = (rope.char_to_line(range.start), rope.char_to_line(range.end));
        let got: Vec<String> = enclosing_headers(&rope, first, last, 3)
            .into_iter()
            .map(|l| rope.line(l).to_string().trim().to_owned())
            .collect();
        assert_eq!(got, expected, "fixture:\n{fixture}");
    }

    #[test]
    fn enclosing_headers_follow_braces_or_indentation() {
        check_headers(
            r#"mod m {
impl Stats {
    pub fn average(
        xs: &[u32],
    ) -> u32 {
        let n = xs.len();
«        sum / n»
    }
}
}
"#,
            &["mod m {", "impl Stats {", "pub fn average("],
        );
        check_headers(
            r#"mod a {
    mod b {
        impl C {
            fn d() {
«                x»
            }
        }
    }
}
"#,
            &["mod b {", "impl C {", "fn d() {"],
        );
        check_headers(
            r#"class Stats:
    def average(self, xs):
        total = sum(xs)
        if xs:
«            return total / len(xs)»
"#,
            &["class Stats:", "def average(self, xs):", "if xs:"],
        );
        check_headers("«top = 1»\nlevel = 2\n", &[]);
    }

    #[test]
    fn paragraph_is_capped_in_a_huge_flat_file() {
        let lines: Vec<String> = (0..5000).map(|i| format!("k{i}: v")).collect();
        let text = Rope::from_str(&lines.join("\n"));
        let cursor = text.line_to_char(2500);
        let got = widen(&text, cursor..cursor);
        let first = text.char_to_line(got.start);
        let last = text.char_to_line(got.end);
        assert!(last - first < MAX_PARAGRAPH_LINES, "{first}..{last}");
        assert!(first <= 2500 && 2500 <= last);
    }

    #[test]
    fn longer_selections_are_unchanged_and_clamped() {
        let text = Rope::from_str("fn f() {\n    body();\n}\n");
        assert_eq!(widen(&text, 13..17), 13..17);
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 17..13;
        assert_eq!(widen(&text, reversed), 13..17);
        assert_eq!(widen(&text, 20..999), 20..text.len_chars());
        assert_eq!(widen(&Rope::new(), 0..0), 0..0);
    }

    /// The headers from the shortened scan against those from the whole window.
    fn same_headers_as_the_whole_window(text: &str) {
        let rope = Rope::from_str(text);
        let lines = rope.len_lines();
        for first in 0..lines {
            for last in [
                first,
                first + 1,
                first + 3,
                first + 40,
                first.saturating_sub(1),
            ] {
                let clamped = first.min(lines.saturating_sub(1));
                let whole = headers_in(&Window::scan(&rope, clamped), clamped, last, 3);
                assert_eq!(
                    enclosing_headers(&rope, first, last, 3),
                    whole,
                    "lines {first}..={last} of:\n{text}"
                );
            }
        }
    }

    /// The block of every line from the shortened scan against the whole window's.
    fn same_blocks_as_the_whole_window(text: &str) {
        let rope = Rope::from_str(text);
        for line in 0..rope.len_lines() {
            assert_eq!(
                enclosing_lines(&rope, line),
                block_in(&Window::scan(&rope, line), line),
                "line {line} of:\n{text}"
            );
        }
    }

    #[test]
    fn shortened_header_scans_match_the_whole_window_on_fixtures() {
        for fixture in [
            "mod m {\n    impl Stats {\n        pub fn average(\n            xs: &[u32],\n        ) -> u32 {\n            let s = \"}\";\n            xs.len() as u32\n        }\n    }\n}\n",
            "class C:\n    def d(self):\n        if x:\n            return 1\n        return 2\n\ndef e():\n    pass\n",
            "function f() {\n  items.forEach((x) => {\n    /* } */ g(x, `${x}}`);\n  });\n}\r\nconst y = [\r\n  1,\r\n];\r\n",
            "fn a() { (\n}\n] fn b() {\n    c();\n}\n",
            "",
            "no brackets\n  indented\n    deeper\n",
        ] {
            same_headers_as_the_whole_window(fixture);
            same_blocks_as_the_whole_window(fixture);
        }
    }

    proptest::proptest! {
        #[test]
        fn shortened_header_scans_match_the_whole_window(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "fn f() {", "}", "{", "(", ")", "[", "]", "\n", "\r\n", "    ", "\t",
                    "\"", "'", "//", "/*", "*/", "#", "x", "def g():", "\"\"\"", "`",
                ]),
                0..80,
            )
        ) {
            same_headers_as_the_whole_window(&pieces.concat());
        }

        #[test]
        fn shortened_block_scans_match_the_whole_window(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "fn f() {", "}", "{", "(", ")", "[", "]", "\n", "\r\n", "\n\n", "    ",
                    "\t", "\"", "'", "//", "/*", "*/", "#", "x", "def g():", "\"\"\"", "`",
                ]),
                0..80,
            )
        ) {
            same_blocks_as_the_whole_window(&pieces.concat());
        }
    }

    #[test]
    fn shortened_header_scans_match_past_the_scan_limit() {
        let mut src = String::from("impl Big {\n");
        for i in 0..1500 {
            src.push_str(&format!("    fn f{i}() {{\n        g({i});\n    }}\n"));
        }
        src.push_str("}\n");
        let rope = Rope::from_str(&src);
        for first in [0, 5, 1001, 2999, 3003, 4400, 4501] {
            let whole = headers_in(&Window::scan(&rope, first), first, first + 2, 3);
            assert_eq!(
                enclosing_headers(&rope, first, first + 2, 3),
                whole,
                "line {first}"
            );
            assert_eq!(
                enclosing_lines(&rope, first),
                block_in(&Window::scan(&rope, first), first),
                "line {first}"
            );
        }
    }
}
