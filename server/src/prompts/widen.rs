//! Range widening: an empty or one-character selection grows to the enclosing block, in whole lines.

use std::ops::Range;

use ropey::Rope;

/// Lines scanned on each side of the cursor: bounds the work on multi-megabyte files, so a
/// code-action request stays well under a millisecond.
const SCAN_LINES: usize = 1000;
/// The most lines a paragraph fallback spans, centred on the cursor.
const MAX_PARAGRAPH_LINES: usize = 400;

/// Widens an empty or one-character selection (char offsets) to the enclosing block.
///
/// Prefers the innermost `{}` / `[]` block whose braces sit on different lines; otherwise the
/// indentation block (the nearest less-indented line above, such as a `def`, through the last
/// line indented deeper); otherwise the paragraph around the cursor, capped at 400 lines.
/// The result covers whole lines and ends before the last line's terminator. Selections of two
/// or more characters come back unchanged (clamped to the text).
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
    let line = line.min(last_line(text));
    brace_block(text, line)
        .or_else(|| indent_block(text, line))
        .unwrap_or_else(|| paragraph(text, line))
}

/// Char range from the start of line `first` to the end of line `last`, without its terminator.
pub(crate) fn lines_to_chars(text: &Rope, first: usize, last: usize) -> Range<usize> {
    let start = text.line_to_char(first);
    let end = text.line_to_char(last) + content_len(text, last);
    start..end.max(start)
}

/// Length in chars of a line without its `\n`, `\r\n` or `\r` terminator.
pub(crate) fn content_len(text: &Rope, line: usize) -> usize {
    let slice = text.line(line);
    let mut n = slice.len_chars();
    if n > 0 && slice.char(n - 1) == '\n' {
        n -= 1;
    }
    if n > 0 && slice.char(n - 1) == '\r' {
        n -= 1;
    }
    n
}

fn last_line(text: &Rope) -> usize {
    text.len_lines().saturating_sub(1)
}

/// Leading whitespace width (a tab counts as four), or `None` for a blank line.
fn indent(text: &Rope, line: usize) -> Option<usize> {
    let mut width = 0;
    for c in text.line(line).chars() {
        match c {
            ' ' => width += 1,
            '\t' => width += 4,
            '\n' | '\r' => return None,
            _ => return Some(width),
        }
    }
    None
}

fn is_blank(text: &Rope, line: usize) -> bool {
    indent(text, line).is_none()
}

/// A matched bracket pair found by [`bracket_pairs`].
struct Pair {
    kind: char,
    open: usize,
    open_line: usize,
    close_line: usize,
    /// The closing bracket is the first significant character on its line.
    close_leads_line: bool,
}

fn brace_block(text: &Rope, line: usize) -> Option<(usize, usize)> {
    let lo = line.saturating_sub(SCAN_LINES);
    let hi = (line + SCAN_LINES).min(last_line(text));
    let pairs = bracket_pairs(text, lo, hi);
    let best = pairs
        .iter()
        .filter(|p| p.kind != '(' && p.open_line < p.close_line)
        .filter(|p| p.open_line <= line && line <= p.close_line)
        .max_by_key(|p| p.open)?;
    // A block whose header spans lines (`fn f(\n a,\n) {`) starts where the header starts.
    let mut start = best.open_line;
    while let Some(p) = pairs
        .iter()
        .find(|p| p.close_line == start && p.close_leads_line && p.open_line < start)
    {
        start = p.open_line;
    }
    Some((start, best.close_line))
}

/// Matched `()`, `[]` and `{}` pairs in lines `lo..=hi`, skipping string literals and comments
/// in a simple way that suits C-like languages, Rust, JavaScript, Go and Python.
fn bracket_pairs(text: &Rope, lo: usize, hi: usize) -> Vec<Pair> {
    let begin = text.line_to_char(lo);
    let end = text.line_to_char(hi) + text.line(hi).len_chars();
    let chars: Vec<char> = text.slice(begin..end).chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let mut pairs = Vec::new();
    let mut stack: Vec<(char, usize, usize)> = Vec::new();
    let mut line = lo;
    let mut fresh = true;
    let mut i = 0;
    // Skips to the closing `quote` (honouring backslash escapes), counting line breaks.
    let skip_string = |i: usize, quote: &[char], multiline: bool, line: &mut usize| -> usize {
        let mut j = i;
        while j < chars.len() {
            let c = chars[j];
            if c == '\\' {
                j += 2;
                continue;
            }
            if c == '\n' || (c == '\r' && at(j + 1) != '\n') {
                if !multiline {
                    return j;
                }
                *line += 1;
            }
            if quote.iter().enumerate().all(|(k, q)| at(j + k) == *q) {
                return j + quote.len();
            }
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        let leads = fresh;
        match c {
            '\n' => {
                line += 1;
                fresh = true;
                i += 1;
                continue;
            }
            '\r' => {
                if at(i + 1) != '\n' {
                    line += 1;
                    fresh = true;
                }
                i += 1;
                continue;
            }
            ' ' | '\t' => {
                i += 1;
                continue;
            }
            _ => fresh = false,
        }
        match c {
            '/' if at(i + 1) == '/' => {
                while i < chars.len() && chars[i] != '\n' && chars[i] != '\r' {
                    i += 1;
                }
            }
            '#' if matches!(at(i + 1), ' ' | '\t' | '\n' | '\r' | '#' | '\0') => {
                while i < chars.len() && chars[i] != '\n' && chars[i] != '\r' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                i = skip_string(i + 2, &['*', '/'], true, &mut line);
            }
            '"' if at(i + 1) == '"' && at(i + 2) == '"' => {
                i = skip_string(i + 3, &['"', '"', '"'], true, &mut line);
            }
            '\'' if at(i + 1) == '\'' && at(i + 2) == '\'' => {
                i = skip_string(i + 3, &['\'', '\'', '\''], true, &mut line);
            }
            '"' => i = skip_string(i + 1, &['"'], true, &mut line),
            '`' => i = skip_string(i + 1, &['`'], true, &mut line),
            '\'' => i = skip_single_quote(&chars, i),
            '(' | '[' | '{' => {
                stack.push((c, i, line));
                i += 1;
            }
            ')' | ']' | '}' => {
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
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

/// Skips a `'`: a char literal (`'x'`, `'\n'`), a single-quoted string closed on the same line
/// and not followed by an identifier character, or else a lone quote (a Rust lifetime or label).
fn skip_single_quote(chars: &[char], i: usize) -> usize {
    let at = |k: usize| chars.get(k).copied().unwrap_or('\0');
    if at(i + 1) != '\\' && at(i + 2) == '\'' {
        return i + 3;
    }
    let mut j = i + 1;
    while j < chars.len() {
        match chars[j] {
            '\\' => j += 2,
            '\n' | '\r' => return i + 1,
            '\'' => {
                let next = at(j + 1);
                return if next.is_alphanumeric() || next == '_' {
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

fn indent_block(text: &Rope, line: usize) -> Option<(usize, usize)> {
    let last = last_line(text);
    let line = if is_blank(text, line) {
        // Between two lines, the shallower neighbour says which block the blank line is in.
        let prev = (line.saturating_sub(SCAN_LINES)..line)
            .rev()
            .find(|&l| !is_blank(text, l));
        let next = (line + 1..=last.min(line + SCAN_LINES)).find(|&l| !is_blank(text, l));
        match (prev, next) {
            (Some(p), Some(n)) if indent(text, p) < indent(text, n) => p,
            (_, Some(n)) => n,
            (Some(p), None) => p,
            (None, None) => return None,
        }
    } else {
        line
    };
    let own = indent(text, line)?;
    let next = (line + 1..=last.min(line + SCAN_LINES)).find(|&l| !is_blank(text, l));
    let header = if next.and_then(|n| indent(text, n)).is_some_and(|n| n > own) {
        line
    } else if own == 0 {
        return None;
    } else {
        (line.saturating_sub(SCAN_LINES)..line)
            .rev()
            .find(|&l| indent(text, l).is_some_and(|i| i < own))?
    };
    let depth = indent(text, header)?;
    let mut end = header;
    for l in header + 1..=last.min(header + 2 * SCAN_LINES) {
        match indent(text, l) {
            None => continue,
            Some(i) if i > depth => end = l,
            Some(i) => {
                // A dedented closer (`)`, `]`, `}`) at the header's depth still belongs to it.
                let first = text.line(l).chars().find(|c| !c.is_whitespace());
                if i == depth && matches!(first, Some(')' | ']' | '}')) {
                    end = l;
                }
                break;
            }
        }
    }
    Some((header, end))
}

fn paragraph(text: &Rope, line: usize) -> (usize, usize) {
    let last = last_line(text);
    let line = if is_blank(text, line) {
        let below = (line + 1..=last.min(line + 50)).find(|&l| !is_blank(text, l));
        let above = (line.saturating_sub(50)..line)
            .rev()
            .find(|&l| !is_blank(text, l));
        match below.or(above) {
            Some(l) => l,
            None => return (line, line),
        }
    } else {
        line
    };
    let half = MAX_PARAGRAPH_LINES / 2;
    let mut first = line;
    while first > 0 && line - first < half && !is_blank(text, first - 1) {
        first -= 1;
    }
    let mut last_in = line;
    while last_in < last && last_in - line < half - 1 && !is_blank(text, last_in + 1) {
        last_in += 1;
    }
    (first, last_in)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixture mini-language: `|` is the cursor (an empty selection), `«` and `»` bracket the
    /// expected widened range. Each fixture is checked as written and with CRLF line endings.
    fn check(fixture: &str) {
        check_one(fixture);
        check_one(&fixture.replace('\n', "\r\n"));
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
            assert_eq!(widen(&rope, cursor..cursor + 1), expected, "1-char: {fixture}");
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
        check(
            r#"use std::fmt;

«fn add(a: u32, b: u32) -> u32 {
    let c = a |+ b;
    c
}»

fn other() {}
"#,
        );
        check(
            r#"«fn ad|d(a: u32) -> u32 {
    a
}»
"#,
        );
    }

    #[test]
    fn rust_multi_line_signature_starts_at_the_header() {
        check(
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
        check(
            r#"«fn f<'a>(s: &'a str) -> usize {
    let open = '{';
    let t = "}}} not a close";
    // a stray } in a comment
    /* and { in a block */
    s.len() |+ t.len()
}»
"#,
        );
    }

    #[test]
    fn python_indentation_block() {
        check(
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
    fn python_header_line_and_blank_line_inside() {
        check(
            r#"«def lo|ad(path):
    x = 1

    return x»
"#,
        );
        check(
            r#"«def load(path):
    x = 1
|
    return x»
"#,
        );
    }

    #[test]
    fn python_dedented_closer_belongs_to_the_block() {
        check(
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
        check(
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
        check(
            r#"use a;

«use b;
use |c;
use d;»

fn f() {}
"#,
        );
        check(
            r#"x = 1
|
«y = 2
z = 3»
"#,
        );
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
        assert_eq!(widen(&text, 17..13), 13..17);
        assert_eq!(widen(&text, 20..999), 20..text.len_chars());
        assert_eq!(widen(&Rope::new(), 0..0), 0..0);
    }

    #[test]
    #[ignore = "measurement, run with --ignored --nocapture"]
    #[allow(clippy::print_stdout)]
    fn measure_widen_on_a_large_file() {
        let mut src = String::new();
        for i in 0..20_000 {
            src.push_str(&format!(
                "fn f{i}(x: u32) -> u32 {{\n    let s = \"{{}}\";\n    x + {i}\n}}\n"
            ));
        }
        let text = Rope::from_str(&src);
        let cursor = text.line_to_char(40_001);
        let started = std::time::Instant::now();
        let runs = 200;
        for _ in 0..runs {
            std::hint::black_box(widen(&text, cursor..cursor));
        }
        println!(
            "widen on {} lines: {:?} per call",
            text.len_lines(),
            started.elapsed() / runs
        );
    }
}
