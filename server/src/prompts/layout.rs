//! What the token budget lets a prompt show, decided on the unmasked text before anything is
//! written: which lines of the selection (and how much of each), its exact part, which
//! definitions, and which lines around it.

use std::ops::Range;

use ropey::Rope;

use super::definitions::{self, Chosen};
use super::widen;
use super::ContextInput;

/// Context lines (not selected ones) longer than this are cut: minified code is noise.
const MAX_CONTEXT_LINE_CHARS: usize = 400;
/// A partial-line selection is also quoted exactly when it is at most this long.
const MAX_EXACT_CHARS: usize = 2000;
/// Chars of selection always sent, even when the fixed parts use up the budget.
const MIN_SELECTION_CHARS: usize = 256;
/// At most this many enclosing block headers are pinned above the context.
const MAX_HEADERS: usize = 4;
/// Headings, fences and line breaks around the code blocks, counted against the budget.
pub(super) const FRAME_CHARS: usize = 300;

/// One row of a code block: the document line and how many of its chars are shown.
pub(super) type Row = (usize, usize);

/// The selection as document lines: char offsets clamped and in order, and its first and
/// last line (a selection ending at the start of a line does not include that line).
pub(super) struct Lines {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) first: usize,
    pub(super) last: usize,
}

impl Lines {
    pub(super) fn of(text: &Rope, selection: &Range<usize>) -> Lines {
        let len = text.len_chars();
        let (mut start, mut end) = (selection.start.min(len), selection.end.min(len));
        if start > end {
            std::mem::swap(&mut start, &mut end);
        }
        let first = text.char_to_line(start);
        let mut last = text.char_to_line(end);
        if end > start && last > first && end == text.line_to_char(last) {
            last -= 1;
        }
        Lines {
            start,
            end,
            first,
            last,
        }
    }
}

/// The plan of a prompt's code blocks.
pub(super) struct Layout {
    /// Width of the line-number column.
    pub(super) width: usize,
    /// Chars of budget not yet given to a block.
    remaining: usize,
    pub(super) selected: Vec<Row>,
    /// The last selected line shown (before `last` when the budget cut the selection).
    pub(super) shown_last: usize,
    /// The marker saying what of the selection was cut; `None` when all of it fits.
    pub(super) truncated: Option<String>,
    /// When even the first selected line did not fit: how many of its chars were shown.
    pub(super) line_cut: Option<usize>,
    /// The exactly selected chars, when the selection covers only part of its lines.
    pub(super) exact: Option<Range<usize>>,
    pub(super) chosen: Vec<Chosen>,
    /// Context rows in line order: enclosing headers and lines above, then lines below.
    pub(super) before: Vec<Row>,
    pub(super) after: Vec<Row>,
    /// The contiguous context sent: lines `up..down`, the selection included.
    up: usize,
    down: usize,
    /// Fewer context lines than asked for were sent on a side that had them.
    pub(super) context_truncated: bool,
}

impl Layout {
    /// Plans the blocks within `budget` chars (what the fixed parts left). Context is
    /// trimmed before the selection is; however small the budget, some of the selection is
    /// kept.
    pub(super) fn plan(
        input: &ContextInput,
        lines: &Lines,
        width: usize,
        last_doc_line: usize,
        budget: usize,
    ) -> Layout {
        let mut layout = Layout {
            width,
            remaining: budget.max(MIN_SELECTION_CHARS),
            selected: Vec::new(),
            shown_last: lines.last,
            truncated: None,
            line_cut: None,
            exact: None,
            chosen: Vec::new(),
            before: Vec::new(),
            after: Vec::new(),
            up: lines.first,
            down: lines.last + 1,
            context_truncated: false,
        };
        layout.selection(input.text, lines);
        if layout.truncated.is_none() {
            layout.exact_part(input.text, lines);
            // A signature says more about a call than a line of context does.
            let (chosen, used) = definitions::choose(
                input.definitions,
                input.file_name,
                layout.remaining / definitions::SHARE_DIVISOR,
            );
            layout.chosen = chosen;
            layout.remaining -= used;
            layout.context(input, lines, last_doc_line);
        }
        let lowest = lines.first.saturating_sub(input.surrounding_lines);
        let highest = last_doc_line.min(lines.last + input.surrounding_lines);
        layout.context_truncated = layout.up > lowest || layout.down <= highest;
        layout
    }

    /// The lines sent around the selection and including it; the selected lines shown when
    /// the selection was cut (no context then).
    pub(super) fn context_lines(&self, lines: &Lines) -> (usize, usize) {
        if self.truncated.is_some() {
            (lines.first, self.shown_last)
        } else {
            (self.up, self.down - 1)
        }
    }

    /// The selected lines while they fit; a first line too long is shown in part.
    fn selection(&mut self, text: &Rope, lines: &Lines) {
        let (first, last) = (lines.first, lines.last);
        for line in first..=last {
            let n = widen::content_len(text, line);
            let cost = row_len(line, self.width, n, n);
            if cost <= self.remaining {
                self.selected.push((line, n));
                self.remaining -= cost;
                continue;
            }
            if line == first {
                let room = self.remaining.saturating_sub(self.width + 4).max(1);
                self.selected.push((line, n.min(room)));
                self.line_cut = Some(n.min(room));
                self.remaining = 0;
                self.shown_last = first;
                self.truncated = Some(if first == last {
                    format!(
                        "[… selection truncated to fit: the rest of line {} is not shown]\n",
                        first + 1
                    )
                } else {
                    format!(
                        "[… selection truncated to fit: the rest of line {} and lines {}-{} are not shown]\n",
                        first + 1,
                        first + 2,
                        last + 1
                    )
                });
            } else {
                self.shown_last = line - 1;
                self.truncated = Some(format!(
                    "[… selection truncated to fit: lines {}-{} are not shown]\n",
                    line + 1,
                    last + 1
                ));
            }
            return;
        }
    }

    /// The exact text, when the selection covers only part of its lines and it fits.
    fn exact_part(&mut self, text: &Rope, lines: &Lines) {
        let whole = widen::lines_to_chars(text, lines.first, lines.last);
        let (start, end) = (lines.start, lines.end);
        if end > start && (start != whole.start || end < whole.end) {
            let part = end - start;
            let cost = part + FRAME_CHARS / 3;
            if part <= MAX_EXACT_CHARS && cost <= self.remaining {
                self.remaining -= cost;
                self.exact = Some(start..end);
            }
        }
    }

    /// First the headers of the enclosing blocks above the surrounding lines (one line each,
    /// they say where the code lives), then the closest lines first, alternating sides,
    /// while the budget lasts.
    fn context(&mut self, input: &ContextInput, lines: &Lines, last_doc_line: usize) {
        let text = input.text;
        let lowest = lines.first.saturating_sub(input.surrounding_lines);
        let highest = last_doc_line.min(lines.last + input.surrounding_lines);
        let width = self.width;
        let remaining = &mut self.remaining;
        let mut take = |line: usize, rows: &mut Vec<Row>| {
            let n = widen::content_len(text, line);
            let shown = n.min(MAX_CONTEXT_LINE_CHARS);
            let cost = row_len(line, width, n, shown) + 2;
            if cost > *remaining {
                return false;
            }
            *remaining -= cost;
            rows.push((line, shown));
            true
        };
        for h in widen::enclosing_headers(text, lines.first, lines.last, MAX_HEADERS) {
            if h < lowest {
                take(h, &mut self.before);
            }
        }
        let (mut up_open, mut down_open) = (true, true);
        while up_open || down_open {
            if up_open {
                up_open = self.up > lowest && take(self.up - 1, &mut self.before);
                if up_open {
                    self.up -= 1;
                }
            }
            if down_open {
                down_open = self.down <= highest && take(self.down, &mut self.after);
                if down_open {
                    self.down += 1;
                }
            }
        }
        self.before.sort_by_key(|(line, _)| *line);
    }
}

/// The length in chars of a row `"{n} | {line}\n"` showing `shown` of the line's `n` chars.
fn row_len(line: usize, width: usize, n: usize, shown: usize) -> usize {
    let number = width.max(digits(line + 1)) + 2;
    let content = if shown > 0 { 1 + shown } else { 0 };
    let marker = if shown < n { 2 } else { 0 };
    number + content + marker + 1
}

pub(super) fn digits(n: usize) -> usize {
    n.to_string().len()
}
