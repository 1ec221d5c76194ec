//! Post-processing of a raw suggestion: its scope (line or block), what duplicates the text after the cursor, brackets the suffix closes, and suggestions not worth showing.

use super::{Scope, Surroundings};

/// How many lines before the cursor a suggestion may not repeat.
const REPEAT_WINDOW: usize = 20;
/// A suggestion shorter than this (trimmed) is never dropped as a repeat: `}` or `end` repeat
/// everywhere and are still right.
const MIN_REPEAT_CHARS: usize = 6;

/// Whether `streamed` (the answer so far) already holds everything its scope can use, so the
/// upstream request can be dropped: the first line break in line scope; in block scope, a
/// complete line that leaves the block (or two blank lines in a row).
pub fn scope_done(streamed: &str, around: &Surroundings) -> bool {
    let text = strip_opening_fence(streamed);
    match around.scope {
        Scope::Line => text.trim_start_matches([' ', '\t']).contains('\n'),
        Scope::Block { .. } => {
            // Only complete lines can be judged: the last one may still grow.
            let complete = match text.rfind('\n') {
                Some(at) => &text[..=at],
                None => return false,
            };
            cut_block(complete, around.scope) < complete.len() || complete.contains("\n\n\n")
        }
    }
}

/// The suggestion to show for the model's `raw` answer, or `None` when nothing is worth
/// showing. Steps, in order: code fences and an echo of the line before the cursor are removed;
/// the text is cut to its scope; trailing lines or characters that the text after the cursor
/// already has are dropped, and so are closing brackets the suffix already closes; then an
/// empty suggestion, or one that repeats the lines just before the cursor, is dropped.
pub fn finish(raw: &str, around: &Surroundings) -> Option<String> {
    let text = strip_fences(raw);
    let text = strip_echo(text, &around.line_before);
    let text = match around.scope {
        Scope::Line => text.split('\n').next().unwrap_or("").trim_end_matches('\r'),
        Scope::Block { .. } => &text[..cut_block(text, around.scope)],
    };
    let text = text.trim_end();
    let text = drop_suffix_overlap(text, around);
    let text = balance_against_suffix(text, &around.after);
    if text.trim().is_empty() || repeats_previous_lines(text, around) {
        return None;
    }
    Some(text.to_owned())
}

/// `raw` without a code fence around it (chat models add one despite being asked not to).
fn strip_fences(raw: &str) -> &str {
    let text = strip_opening_fence(raw);
    match text.trim_end().rsplit_once('\n') {
        Some((body, last)) if last.trim_start().starts_with("```") => body,
        None if text.trim().starts_with("```") => "",
        _ => text,
    }
}

fn strip_opening_fence(raw: &str) -> &str {
    let trimmed = raw.trim_start_matches([' ', '\t', '\n', '\r']);
    if trimmed.starts_with("```") {
        match trimmed.split_once('\n') {
            Some((_, rest)) => rest,
            None => "",
        }
    } else {
        raw
    }
}

/// Chat models often repeat the line up to the cursor before continuing it: drop that echo.
fn strip_echo<'a>(text: &'a str, line_before: &str) -> &'a str {
    let echoed = line_before.trim_start();
    if echoed.chars().count() < 3 {
        return text;
    }
    let start = text.trim_start_matches([' ', '\t']);
    start.strip_prefix(echoed).unwrap_or(text)
}

/// Bytes of `text` (whole lines) that stay in a block scope: the first line always; then lines
/// until one is less indented than the cursor's line, or returns to its indentation after
/// going deeper (a sibling statement: cut, unless it only closes brackets, which ends the
/// block and is kept).
fn cut_block(text: &str, scope: Scope) -> usize {
    let Scope::Block { indent: base } = scope else {
        return text.len();
    };
    let mut at = 0;
    let mut deeper = false;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let body = line.trim_end_matches(['\n', '\r']);
        if i > 0 && !body.trim().is_empty() {
            let indent = indent_of(body);
            if indent < base {
                return at;
            }
            if indent == base && deeper {
                return if closes_only(body) {
                    at + body.len()
                } else {
                    at
                };
            }
            deeper |= indent > base;
        }
        at += line.len();
    }
    text.len()
}

/// Width of the leading whitespace (a tab counts as four).
pub(crate) fn indent_of(line: &str) -> usize {
    line.chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .map(|c| if c == '\t' { 4 } else { 1 })
        .sum()
}

fn closes_only(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && t.chars().all(|c| matches!(c, '}' | ')' | ']' | ';' | ','))
        || matches!(t, "end" | "fi" | "done" | "esac")
}

/// Drops the end of `text` that the text after the cursor already starts with: on the cursor's
/// line, the longest end of the suggestion that begins the rest of the line; in a block, the
/// suggestion's last lines that equal the first lines after the cursor.
fn drop_suffix_overlap<'a>(text: &'a str, around: &Surroundings) -> &'a str {
    let rest = around.line_after.trim_end();
    if !rest.is_empty() && !text.contains('\n') {
        let longest = (1..=rest.len().min(text.len()))
            .rev()
            .filter(|n| rest.is_char_boundary(*n) && text.is_char_boundary(text.len() - n))
            .find(|n| text.ends_with(&rest[..*n]));
        if let Some(n) = longest {
            return &text[..text.len() - n];
        }
        return text;
    }
    let after: Vec<&str> = around
        .after
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(8)
        .collect();
    let lines: Vec<&str> = text.split('\n').collect();
    for k in (1..lines.len().min(after.len()) + 1).rev() {
        let tail = &lines[lines.len() - k..];
        if tail.iter().map(|l| l.trim()).eq(after[..k].iter().copied()) {
            let keep: usize = lines[..lines.len() - k].iter().map(|l| l.len() + 1).sum();
            return text[..keep.saturating_sub(1).min(text.len())].trim_end();
        }
    }
    text
}

/// Drops closing brackets at the end of `text` that nothing in it opened when the text after
/// the cursor closes them already (the editor auto-closed the bracket, or it was there).
fn balance_against_suffix<'a>(text: &'a str, after: &str) -> &'a str {
    let unmatched = unmatched_closers(text);
    let mut next = after.chars().filter(|c| !c.is_whitespace());
    let mut end = text.trim_end().len();
    let mut left = unmatched;
    loop {
        let body = text[..end].trim_end();
        let Some(last) = body.chars().last() else {
            break;
        };
        if left == 0 || !matches!(last, ')' | ']' | '}') || next.next() != Some(last) {
            break;
        }
        end = body.len() - last.len_utf8();
        left -= 1;
    }
    if end == text.trim_end().len() {
        text
    } else {
        text[..end].trim_end()
    }
}

/// How many closing brackets of `text` match no opening one before them in it.
fn unmatched_closers(text: &str) -> usize {
    let mut stack = Vec::new();
    let mut unmatched = 0;
    for c in text.chars() {
        match c {
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.last() == Some(&open) {
                    stack.pop();
                } else {
                    unmatched += 1;
                }
            }
            _ => {}
        }
    }
    unmatched
}

/// Whether the suggestion only repeats lines just before the cursor: its lines, completed with
/// the text before the cursor, appear in a row among the last [`REPEAT_WINDOW`] lines.
fn repeats_previous_lines(text: &str, around: &Surroundings) -> bool {
    let first = format!(
        "{}{}",
        around.line_before,
        text.split('\n').next().unwrap_or("")
    );
    let lines: Vec<String> = std::iter::once(first)
        .chain(text.split('\n').skip(1).map(str::to_owned))
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() || text.trim().chars().count() < MIN_REPEAT_CHARS {
        return false;
    }
    let before: Vec<&str> = around
        .before_lines
        .iter()
        .rev()
        .take(REPEAT_WINDOW)
        .rev()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect();
    before
        .windows(lines.len())
        .any(|w| w.iter().copied().eq(lines.iter().map(String::as_str)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Surroundings of the `|` in `doc`, as `complete::surroundings` reads them.
    fn around(doc: &str) -> Surroundings {
        let at = doc.find('|').expect("a cursor");
        let text = format!("{}{}", &doc[..at], &doc[at + 1..]);
        let rope = ropey::Rope::from_str(&text);
        super::super::surroundings(&rope, text[..at].chars().count())
    }

    fn check(doc: &str, raw: &str, want: Option<&str>) {
        assert_eq!(
            finish(raw, &around(doc)).as_deref(),
            want,
            "{doc:?} + {raw:?}"
        );
    }

    #[test]
    fn scope_is_the_line_mid_line_and_the_block_at_its_end() {
        assert_eq!(around("let x = f(|);\n").scope, Scope::Line);
        assert_eq!(
            around("fn a() {\n    |\n}\n").scope,
            Scope::Block { indent: 4 }
        );
        assert_eq!(around("fn a() {|\n}\n").scope, Scope::Block { indent: 0 });
        check("let x = f(|);\n", "a, b);\nlet y = 2;", Some("a, b"));
        check(
            "let x = |\n",
            "compute(1);\nlet y = 2;",
            Some("compute(1);\nlet y = 2;"),
        );
    }

    #[test]
    fn block_scope_stops_where_the_block_ends() {
        check(
            "fn a() {\n    |\n}\n",
            "let x = 1;\n    x + 1\n}\n\nfn b() {}\n",
            Some("let x = 1;\n    x + 1"),
        );
        check(
            "if x:\n    |\n",
            "y = 1\n    return y\nprint(z)\n",
            Some("y = 1\n    return y"),
        );
        // Back at the cursor's indentation after going deeper: a closer is kept, a sibling cut.
        check(
            "fn a() {|\n",
            "\n    one();\n}\nfn b() {}\n",
            Some("\n    one();\n}"),
        );
        check(
            "    |\n",
            "if a {\n        b();\n    }\n    c();\n",
            Some("if a {\n        b();\n    }"),
        );
    }

    #[test]
    fn what_the_suffix_has_is_dropped() {
        check("print(|)\n", "\"hi\")", Some("\"hi\""));
        check("print(|)\n", ")", None);
        check("x = [1, |]\n", "2, 3]", Some("2, 3"));
        check(
            "fn a() {\n    |\n}\n",
            "let x = 1;\n    x\n}",
            Some("let x = 1;\n    x"),
        );
        // Brackets the suffix closes, on the next lines.
        check("call(\n    |\n)\n", "a, b)", Some("a, b"));
    }

    #[test]
    fn fences_echoes_empties_and_repeats_are_dropped() {
        check("let x = |\n", "```rust\n42;\n```", Some("42;"));
        check("    let total = |\n", "let total = a + b;", Some("a + b;"));
        check("x = 1\n|\n", "   \n\t", None);
        check("x = 1\n|\n", "```\n```", None);
        check("counter += 1\ncounter += 1\n|\n", "counter += 1", None);
        // Short lines repeat everywhere and stay.
        check("}\n|\n", "}", Some("}"));
    }

    #[test]
    fn streaming_stops_once_the_scope_is_complete() {
        let line = around("f(|)\n");
        assert!(!scope_done("a, b", &line));
        assert!(scope_done("a, b)\nmore", &line));
        let block = around("fn a() {\n    |\n}\n");
        assert!(!scope_done("x();\n    y();", &block));
        assert!(!scope_done("x();\n    y();\n", &block));
        assert!(scope_done("x();\n    y();\n}\nfn b", &block));
        assert!(scope_done("x();\n\n\n", &block));
    }

    fn docs() -> impl Strategy<Value = String> {
        // Code-like text: letters, brackets, spaces, tabs and newlines, with one cursor.
        (
            "[a-z(){}\\[\\] \t\n;=]{0,40}",
            "[a-z(){}\\[\\] \t\n;=]{0,40}",
        )
            .prop_map(|(a, b)| format!("{a}|{b}"))
    }

    proptest! {
        #[test]
        fn a_suggestion_is_a_piece_of_the_answer_that_fits_its_scope(
            doc in docs(),
            raw in "[a-z(){}\\[\\] \t\n;=`]{0,60}",
        ) {
            let around = around(&doc);
            if let Some(out) = finish(&raw, &around) {
                prop_assert!(!out.trim().is_empty());
                prop_assert!(raw.contains(out.as_str()), "{out:?} not in {raw:?}");
                match around.scope {
                    Scope::Line => prop_assert!(!out.contains('\n')),
                    Scope::Block { indent } => {
                        for line in out.split('\n').skip(1).filter(|l| !l.trim().is_empty()) {
                            prop_assert!(indent_of(line) >= indent, "{line:?} leaves the block");
                        }
                    }
                }
            }
        }

        #[test]
        fn the_rest_of_the_line_is_never_doubled(
            before in "[a-z =]{0,12}",
            text in "[a-z ,]{1,12}",
            rest in "[a-z)\\];,]{1,6}",
        ) {
            let doc = format!("{before}|{rest}\n");
            let around = around(&doc);
            // The answer went on with the rest of the line: at most `text` is suggested.
            if let Some(out) = finish(&format!("{text}{rest}"), &around) {
                prop_assert!(out.len() <= text.len(), "{out:?} doubles {rest:?}");
            }
        }
    }
}
