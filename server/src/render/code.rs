//! Code from a model's answer: the fenced block (or the bare code without its prose), re-indented to fit its place.

use super::fence;

/// The code in a model's answer, with `\n` line endings and no trailing newline.
///
/// The first fenced block wins (its language tag dropped; an unclosed fence at the end of a
/// truncated answer gives what is there). Without a fence, the whole answer minus the prose
/// lines at its start and end ("Here is the function:", "This runs in O(n).").
pub fn extract_code(output: &str) -> String {
    if let Some(block) = fence::blocks(output).into_iter().next() {
        return trim_blank_lines(&block.body);
    }
    let lines: Vec<&str> = output.lines().collect();
    let (mut from, mut to) = (0, lines.len());
    while from < to && (lines[from].trim().is_empty() || is_prose(lines[from])) {
        from += 1;
    }
    while to > from && (lines[to - 1].trim().is_empty() || is_prose(lines[to - 1])) {
        to -= 1;
    }
    lines[from..to].join("\n")
}

/// Code indented to sit where the char range `range` starts in `text`: the indentation of
/// that line, minus what already precedes the range when it starts mid-line.
pub fn fit(text: &ropey::Rope, range: std::ops::Range<usize>, code: &str) -> String {
    let start = range.start.min(text.len_chars());
    let line = text.char_to_line(start);
    let line_start = text.line_to_char(line);
    let indent: String = text
        .line(line)
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect();
    let fitted = reindent(code.trim_end_matches(['\n', '\r']), &indent);
    if start > line_start {
        // The range starts after the indentation, which stays in the document.
        fitted
            .strip_prefix(indent.as_str())
            .map(str::to_owned)
            .unwrap_or(fitted)
    } else {
        fitted
    }
}

/// Removes the indentation common to all non-blank lines, then prefixes each non-blank line
/// with `indent`; blank lines become empty. Line endings become `\n`; a trailing newline is kept.
pub fn reindent(code: &str, indent: &str) -> String {
    let lines: Vec<&str> = code.lines().collect();
    let common = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| leading_indent(l))
        .reduce(|a, b| {
            let n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
            &a[..n]
        })
        .unwrap_or("");
    let mut out = String::with_capacity(code.len() + lines.len() * indent.len());
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if !line.trim().is_empty() {
            out.push_str(indent);
            out.push_str(&line[common.len()..]);
        }
    }
    if code.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// The spaces and tabs a line starts with.
pub fn leading_indent(line: &str) -> &str {
    let n = line
        .bytes()
        .take_while(|b| *b == b' ' || *b == b'\t')
        .count();
    &line[..n]
}

fn trim_blank_lines(body: &str) -> String {
    let lines: Vec<&str> = body.lines().collect();
    let from = lines.iter().position(|l| !l.trim().is_empty());
    let to = lines.iter().rposition(|l| !l.trim().is_empty());
    match (from, to) {
        (Some(a), Some(b)) => lines[a..=b].join("\n"),
        _ => String::new(),
    }
}

/// Openers models put around bare code.
const PROSE_STARTS: &[&str] = &[
    "here is",
    "here's",
    "sure",
    "certainly",
    "below is",
    "the following",
    "this function",
    "this code",
    "this implementation",
    "i've ",
    "i have ",
    "note:",
    "explanation:",
    "okay",
];

/// A sentence rather than code: a known opener, or a capitalised sentence of several words
/// ending in `:` / `.` / `!` / `?` without code punctuation.
fn is_prose(line: &str) -> bool {
    let t = line.trim();
    let lower = t.to_lowercase();
    if PROSE_STARTS.iter().any(|p| lower.starts_with(p)) {
        return true;
    }
    let words = t.split_whitespace().count();
    let capitalised = t.chars().next().is_some_and(char::is_uppercase);
    let ends = t.ends_with(':')
        || ((t.ends_with('.') || t.ends_with('!') || t.ends_with('?')) && !t.ends_with(".."));
    let codeish = t.contains([';', '{', '}', '=']) || (t.ends_with(':') && t.contains('('));
    capitalised && ends && !codeish && words >= 3
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `output` extracts to `expected`.
    fn check(output: &str, expected: &str) {
        assert_eq!(extract_code(output), expected, "output:\n{output}");
    }

    #[test]
    fn extract_code_cases() {
        check(
            "Here is the function:\n\n```rust\nfn add(a: u32, b: u32) -> u32 {\n    a + b\n}\n```\n\nIt adds.",
            "fn add(a: u32, b: u32) -> u32 {\n    a + b\n}",
        );
        // Any language, the first block, CRLF.
        check(
            "```\r\n\r\n  x = 1\r\n```\r\n```py\r\ny = 2\r\n```",
            "  x = 1",
        );
        // Truncated answer: the fence never closes.
        check(
            "Sure!\n```python\ndef f():\n    return",
            "def f():\n    return",
        );
        // Bare code with prose around it.
        check(
            "Here is the implementation:\ndef f(x):\n    return x * 2\nThis doubles its argument.",
            "def f(x):\n    return x * 2",
        );
        // Bare code alone, Python headers and comments are not prose.
        check(
            "class Foo:\n    def bar(self):\n        pass",
            "class Foo:\n    def bar(self):\n        pass",
        );
        check(
            "// Returns the sum of all items.\nfn sum() -> u32 { 0 }",
            "// Returns the sum of all items.\nfn sum() -> u32 { 0 }",
        );
        check("", "");
        check("```rust\n```", "");
    }

    /// `code` re-indented with `indent` gives `expected`.
    fn check_reindent(code: &str, indent: &str, expected: &str) {
        assert_eq!(reindent(code, indent), expected, "code:\n{code}");
    }

    #[test]
    fn reindent_cases() {
        check_reindent(
            "fn f() {\n    body();\n\n}",
            "    ",
            "    fn f() {\n        body();\n\n    }",
        );
        check_reindent(
            "        a\r\n          b\r\n   \r\n        c\r\n",
            "\t",
            "\ta\n\t  b\n\n\tc\n",
        );
        check_reindent("\tx\n\t\ty", "", "x\n\ty");
        // Mixed tabs and spaces only remove what is truly common.
        check_reindent("\t a\n\t\tb", "", " a\n\tb");
        check_reindent("", "  ", "");
        assert_eq!(leading_indent("  \tx "), "  \t");
    }
}
