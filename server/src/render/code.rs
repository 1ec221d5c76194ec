//! Code from a model's answer: the fenced block (or the bare code without its prose), re-indented to fit its place.

use std::collections::HashSet;
use std::ops::Range;

use ropey::Rope;

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

/// What the selected `selection` of `text` becomes when generated `code` replaces the function
/// it asked for: the replacement text for the whole selection.
///
/// Only the definition the model wrote is replaced: the selection is split into top-level items
/// (comments, attributes, blank lines, definitions with their bodies) and the item that is
/// replaced is the definition whose name the model's code defines (else one whose body looks
/// like a stub, else the first definition). Everything else in the selection is kept as it was:
/// a spec comment or doc comment above the stub, other code selected by accident, lines after
/// the function. Leading comments and whole definitions the model repeated from that kept text
/// are not inserted a second time. A selection of comments only (a spec with no stub) keeps the
/// comments and gets the code on the lines below them.
pub fn fit_generated(text: &Rope, selection: Range<usize>, code: &str) -> String {
    let len = text.len_chars();
    let (mut start, mut end) = (selection.start.min(len), selection.end.min(len));
    if start > end {
        std::mem::swap(&mut start, &mut end);
    }
    let selected = text.slice(start..end).to_string();
    let sel_lines = Lines::of(&selected);
    let sel_items = items(&sel_lines.content);
    let code_lines: Vec<&str> = code.lines().collect();
    let code_items = items(&code_lines);
    let code_keys: Vec<&str> = code_items.iter().filter_map(|i| i.key.as_deref()).collect();
    let code_texts: HashSet<String> = code_items
        .iter()
        .filter(|i| i.kind == Kind::Code)
        .map(|i| normalised(&code_lines[i.lines.clone()]))
        .collect();
    let stub = choose_stub(&sel_items, &sel_lines.content, &code_keys, &code_texts);
    let kept = Kept::new(&sel_items, &sel_lines.content, stub);
    let matched = stub
        .and_then(|s| sel_items[s].key.as_deref())
        .and_then(|key| {
            code_items
                .iter()
                .position(|i| i.key.as_deref() == Some(key))
        })
        .or_else(|| code_items.iter().position(|i| i.kind == Kind::Code));
    let code = without_repeats(&code_items, &code_lines, matched, &kept);
    if code.trim().is_empty() {
        // The model only repeated what is there: nothing to replace the stub with.
        return selected;
    }
    let Some(stub) = stub.map(|s| &sel_items[s]) else {
        // Comments only: they stay, and the code goes on the lines below them.
        let indent = sel_lines
            .content
            .iter()
            .find(|l| !l.trim().is_empty())
            .map_or("", |l| leading_indent(l));
        let mut out = selected.trim_end_matches(['\n', '\r']).to_owned();
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&reindent(&code, indent));
        out.push_str(&selected[selected.trim_end_matches(['\n', '\r']).len()..]);
        return out;
    };
    let (from, to) = (
        sel_lines.start[stub.lines.start],
        sel_lines.start[stub.lines.end - 1] + sel_lines.content[stub.lines.end - 1].len(),
    );
    let at = start + selected[..from].chars().count();
    let mut out = selected[..from].to_owned();
    out.push_str(&fit(text, at..at, &code));
    out.push_str(&selected[to..]);
    out
}

/// The lines of a text: each line's content (without its terminator) and its byte offset.
struct Lines<'a> {
    content: Vec<&'a str>,
    start: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn of(text: &'a str) -> Lines<'a> {
        let (mut content, mut start, mut at) = (Vec::new(), Vec::new(), 0);
        for line in text.split_inclusive('\n') {
            start.push(at);
            content.push(line.trim_end_matches(['\n', '\r']));
            at += line.len();
        }
        Lines { content, start }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Blank,
    Comment,
    /// `#[derive(..)]`, `@decorator`, `@Override`.
    Attribute,
    /// A definition or statement with its body.
    Code,
}

/// A top-level piece of a selection or of the model's code: `lines` index its lines.
#[derive(Debug)]
struct Item {
    kind: Kind,
    lines: Range<usize>,
    /// For code: the name it defines (`largest` for `pub fn largest<T>(v: &[T]) -> T {`).
    key: Option<String>,
}

/// Splits `lines` into top-level items. Consecutive line comments are one item each; a block
/// comment is one item; a definition runs to its closing brace (counted outside strings and
/// comments), or, after a header ending in `:` (Python), over the lines indented deeper.
fn items(lines: &[&str]) -> Vec<Item> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim();
        let (kind, next) = if t.is_empty() {
            (Kind::Blank, i + 1)
        } else if t.starts_with("/*") {
            let close = (i..lines.len())
                .find(|&j| {
                    let l = if j == i { &t[2..] } else { lines[j] };
                    l.contains("*/")
                })
                .unwrap_or(lines.len() - 1);
            (Kind::Comment, close + 1)
        } else if t.starts_with("#[") || t.starts_with("#![") || is_decorator(t) {
            (Kind::Attribute, i + 1)
        } else if is_line_comment(t) {
            (Kind::Comment, i + 1)
        } else {
            (Kind::Code, code_end(lines, i) + 1)
        };
        let key = (kind == Kind::Code).then(|| definition_name(t)).flatten();
        out.push(Item {
            kind,
            lines: i..next,
            key,
        });
        i = next;
    }
    out
}

fn is_line_comment(t: &str) -> bool {
    t.starts_with("//") || t.starts_with("--") || t.starts_with(';') || t.starts_with('#')
}

fn is_decorator(t: &str) -> bool {
    t.strip_prefix('@')
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_alphabetic() || c == '_'))
}

/// The last line (index) of the code item starting at `first`.
fn code_end(lines: &[&str], first: usize) -> usize {
    let header_indent = indent_width(lines[first]);
    let (mut depth, mut seen_brace, mut in_comment) = (0i64, false, false);
    for i in first..lines.len() {
        let (delta, braces) = bracket_delta(lines[i], &mut in_comment);
        depth += delta;
        seen_brace |= braces;
        if depth > 0 {
            continue;
        }
        let t = strip_trailing_comment(lines[i]).trim_end();
        if !seen_brace && t.ends_with(':') {
            // A Python-style header: the block is what is indented deeper below it.
            let mut last = i;
            for (j, line) in lines.iter().enumerate().skip(i + 1) {
                if line.trim().is_empty() {
                    continue;
                }
                if indent_width(line) <= header_indent {
                    break;
                }
                last = j;
            }
            return last;
        }
        if !seen_brace && !t.ends_with(';') && !t.ends_with(',') {
            // A signature whose brace opens on the next line (Allman style).
            let next = lines[i + 1..].iter().position(|l| !l.trim().is_empty());
            if let Some(n) = next {
                if lines[i + 1 + n].trim_start().starts_with('{') {
                    continue;
                }
            }
        }
        return i;
    }
    lines.len() - 1
}

/// Net change of bracket depth over one line, and whether it holds a curly brace; strings,
/// character literals and comments are skipped. `in_comment` carries an open `/* */` comment
/// from line to line.
fn bracket_delta(line: &str, in_comment: &mut bool) -> (i64, bool) {
    let chars: Vec<char> = line.chars().collect();
    let (mut depth, mut braces, mut i) = (0i64, false, 0);
    while i < chars.len() {
        if *in_comment {
            if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                *in_comment = false;
                i += 1;
            }
            i += 1;
            continue;
        }
        match chars[i] {
            '/' if chars.get(i + 1) == Some(&'/') => break,
            '/' if chars.get(i + 1) == Some(&'*') => {
                *in_comment = true;
                i += 1;
            }
            // A `# comment` (Python, shell); `#[attr]` and `#include` are not comments.
            '#' if (i == 0 || chars[i - 1].is_whitespace())
                && chars.get(i + 1).is_none_or(|c| c.is_whitespace()) =>
            {
                break
            }
            '"' | '`' => {
                let quote = chars[i];
                i += 1;
                while i < chars.len() && chars[i] != quote {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
            }
            '\'' => {
                // A char literal ('{', '\n'); a Rust lifetime ('a) has no closing quote next.
                if chars.get(i + 1) == Some(&'\\') {
                    i += 3;
                } else if chars.get(i + 2) == Some(&'\'') {
                    i += 2;
                }
            }
            '{' => {
                depth += 1;
                braces = true;
            }
            '(' | '[' => depth += 1,
            '}' => {
                depth -= 1;
                braces = true;
            }
            ')' | ']' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    (depth, braces)
}

fn strip_trailing_comment(line: &str) -> &str {
    match line.find(" //").or_else(|| line.find(" # ")) {
        Some(at) => &line[..at],
        None => line,
    }
}

fn indent_width(line: &str) -> usize {
    leading_indent(line)
        .chars()
        .map(|c| if c == '\t' { 4 } else { 1 })
        .sum()
}

/// Words before a `(` that are not the name of what is defined.
const NOT_NAMES: &[&str] = &[
    "fn", "def", "func", "function", "fun", "if", "for", "while", "switch", "match", "return",
    "catch", "elif", "with", "sizeof", "typeof", "await", "new", "async", "lambda", "print",
];

/// Keywords after which the defined name follows, for definitions without parentheses.
const DEFINERS: &[&str] = &[
    "class",
    "struct",
    "enum",
    "trait",
    "impl",
    "interface",
    "type",
    "union",
    "mod",
    "module",
    "namespace",
    "object",
    "const",
    "let",
    "var",
    "val",
    "static",
];

/// The name a line defines: the identifier before its first meaningful `(` (skipping generics
/// and keywords, so `func (r *T) Name(` gives `Name`), or the word after `const`/`let`/`class`
/// and the like.
fn definition_name(line: &str) -> Option<String> {
    let words: Vec<&str> = line
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| !w.is_empty())
        .collect();
    // `const largest = (values) => …`, `let f = |x| …`, `class Foo:`, `struct Foo {`.
    if let Some(at) = words.iter().position(|w| DEFINERS.contains(w)) {
        let assigns = line.contains('=') && !line.contains("==");
        let parens_first = line
            .find('(')
            .is_some_and(|p| line.find('=').is_none_or(|e| p < e));
        if (assigns || !line.contains('(')) && !parens_first {
            if let Some(name) = words[at + 1..].iter().find(|w| !DEFINERS.contains(w)) {
                return Some((*name).to_owned());
            }
        }
    }
    let bytes: Vec<char> = line.chars().collect();
    for (i, c) in bytes.iter().enumerate() {
        if *c != '(' {
            continue;
        }
        let mut j = i;
        while j > 0 && bytes[j - 1].is_whitespace() {
            j -= 1;
        }
        if j > 0 && bytes[j - 1] == '>' {
            // Generic parameters: `largest<T: Ord>(`.
            let mut depth = 0;
            while j > 0 {
                j -= 1;
                match bytes[j] {
                    '>' => depth += 1,
                    '<' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
        let end = j;
        while j > 0
            && (bytes[j - 1].is_alphanumeric() || bytes[j - 1] == '_' || bytes[j - 1] == '$')
        {
            j -= 1;
        }
        let name: String = bytes[j..end].iter().collect();
        if !name.is_empty() && !NOT_NAMES.contains(&name.as_str()) {
            return Some(name);
        }
    }
    None
}

/// Text a body is left as when it waits to be written.
const STUB_MARKERS: &[&str] = &[
    "todo!",
    "unimplemented!",
    "TODO",
    "pass",
    "...",
    "NotImplemented",
    "not implemented",
    "panic(\"not",
];

/// The selection item the generated code replaces: the definition the code defines too (one
/// the code changed before one it repeats word for word), else the first that looks like a
/// stub, else the first definition; `None` when there is none.
fn choose_stub(
    items: &[Item],
    lines: &[&str],
    code_keys: &[&str],
    code_texts: &HashSet<String>,
) -> Option<usize> {
    let named =
        |i: &Item| i.kind == Kind::Code && i.key.as_deref().is_some_and(|k| code_keys.contains(&k));
    items
        .iter()
        .position(|i| named(i) && !code_texts.contains(&normalised(&lines[i.lines.clone()])))
        .or_else(|| items.iter().position(named))
        .or_else(|| {
            items.iter().position(|i| {
                i.kind == Kind::Code
                    && lines[i.lines.clone()]
                        .iter()
                        .any(|l| STUB_MARKERS.iter().any(|m| l.contains(m)))
            })
        })
        .or_else(|| items.iter().position(|i| i.kind == Kind::Code))
}

/// What of the selection stays besides the stub, to recognise it in the model's code.
struct Kept {
    /// Trimmed comment and attribute lines.
    lines: HashSet<String>,
    /// Whole code items, each line trimmed, joined by `\n`.
    code: HashSet<String>,
}

impl Kept {
    fn new(items: &[Item], lines: &[&str], stub: Option<usize>) -> Kept {
        let mut kept = Kept {
            lines: HashSet::new(),
            code: HashSet::new(),
        };
        for (n, item) in items.iter().enumerate() {
            if Some(n) == stub {
                continue;
            }
            match item.kind {
                Kind::Comment | Kind::Attribute => {
                    kept.lines.extend(
                        lines[item.lines.clone()]
                            .iter()
                            .map(|l| l.trim().to_owned()),
                    );
                }
                Kind::Code => {
                    kept.code.insert(normalised(&lines[item.lines.clone()]));
                }
                Kind::Blank => {}
            }
        }
        kept
    }
}

fn normalised(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The model's code without what it repeated from the kept part of the selection: comment and
/// attribute items whose every line is kept already, and code items equal to a kept one. The
/// item the stub becomes (`matched`) always stays. Blank runs left behind shrink to one line.
fn without_repeats(items: &[Item], lines: &[&str], matched: Option<usize>, kept: &Kept) -> String {
    let mut out: Vec<&str> = Vec::with_capacity(lines.len());
    for (n, item) in items.iter().enumerate() {
        let text = &lines[item.lines.clone()];
        let repeated = Some(n) != matched
            && match item.kind {
                Kind::Comment | Kind::Attribute => text
                    .iter()
                    .all(|l| l.trim().is_empty() || kept.lines.contains(l.trim())),
                Kind::Code => kept.code.contains(&normalised(text)),
                Kind::Blank => false,
            };
        if repeated {
            continue;
        }
        if item.kind == Kind::Blank && out.last().is_none_or(|l| l.trim().is_empty()) {
            continue;
        }
        out.extend_from_slice(text);
    }
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    out.join("\n")
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

#[cfg(test)]
mod generated_tests {
    use proptest::prelude::*;
    use ropey::Rope;

    use super::fit_generated;

    /// `doc` holds the selection between `«` and `»`; the model answered `code`. The document
    /// after the selection is replaced by `fit_generated`'s text must read `expected`.
    fn check(doc: &str, code: &str, expected: &str) {
        let from = doc.find('«').expect("« marks the selection");
        let to = doc.find('»').expect("» ends the selection");
        let plain = doc.replace(['«', '»'], "");
        let text = Rope::from_str(&plain);
        let (start, end) = (doc[..from].chars().count(), doc[..to].chars().count() - 1);
        let replacement = fit_generated(&text, start..end, code);
        let mut after = text.clone();
        after.remove(start..end);
        after.insert(start, &replacement);
        assert_eq!(
            after.to_string(),
            expected,
            "document:\n{doc}\ncode:\n{code}"
        );
    }

    #[test]
    fn a_doc_comment_above_the_stub_is_kept_when_the_code_leaves_it_out() {
        check(
            "«/// The largest value; panics when empty.\nfn largest(values: &[i32]) -> i32 {\n    todo!()\n}»\n",
            "fn largest(values: &[i32]) -> i32 {\n    *values.iter().max().unwrap()\n}",
            "/// The largest value; panics when empty.\nfn largest(values: &[i32]) -> i32 {\n    *values.iter().max().unwrap()\n}\n",
        );
    }

    #[test]
    fn comments_the_code_repeats_are_not_doubled_and_the_others_stay() {
        check(
            "«// spec: ignore NaN\n/// Largest value.\nfn largest(v: &[f64]) -> f64 {\n    todo!()\n}»\n",
            "/// Largest value.\nfn largest(v: &[f64]) -> f64 {\n    v.iter().copied().filter(|x| !x.is_nan()).fold(f64::MIN, f64::max)\n}",
            "// spec: ignore NaN\n/// Largest value.\nfn largest(v: &[f64]) -> f64 {\n    v.iter().copied().filter(|x| !x.is_nan()).fold(f64::MIN, f64::max)\n}\n",
        );
        // A new doc comment of the model's own is kept too: it is the model's answer.
        check(
            "«// spec: the sum\nfn sum(v: &[u32]) -> u32 { todo!() }»\n",
            "/// Adds them up.\nfn sum(v: &[u32]) -> u32 {\n    v.iter().sum()\n}",
            "// spec: the sum\n/// Adds them up.\nfn sum(v: &[u32]) -> u32 {\n    v.iter().sum()\n}\n",
        );
    }

    #[test]
    fn python_comment_and_decorator_stay() {
        check(
            "«# Return the list doubled.\n@cache\ndef double(xs):\n    pass»\n\nprint(double([1]))\n",
            "def double(xs):\n    return [x * 2 for x in xs]",
            "# Return the list doubled.\n@cache\ndef double(xs):\n    return [x * 2 for x in xs]\n\nprint(double([1]))\n",
        );
        // The decorator repeated by the model is not doubled.
        check(
            "«@cache\ndef double(xs):\n    pass»\n",
            "@cache\ndef double(xs):\n    return [x * 2 for x in xs]",
            "@cache\ndef double(xs):\n    return [x * 2 for x in xs]\n",
        );
    }

    #[test]
    fn a_jsdoc_block_stays_once() {
        check(
            "«/**\n * Largest of the values.\n * @param {number[]} values\n */\nexport function largest(values) {}»\n",
            "/**\n * Largest of the values.\n * @param {number[]} values\n */\nexport function largest(values) {\n  return Math.max(...values);\n}",
            "/**\n * Largest of the values.\n * @param {number[]} values\n */\nexport function largest(values) {\n  return Math.max(...values);\n}\n",
        );
        check(
            "«/** Largest of the values. */\nconst largest = (values) => {\n  throw new Error(\"not implemented\");\n};»\n",
            "const largest = (values) => Math.max(...values);",
            "/** Largest of the values. */\nconst largest = (values) => Math.max(...values);\n",
        );
    }

    #[test]
    fn code_outside_the_stub_is_never_deleted() {
        let doc = "«fn average(v: &[i32]) -> i32 {\n    v.iter().sum::<i32>() / v.len() as i32\n}\n\n/// Largest.\nfn largest(v: &[i32]) -> i32 {\n    todo!()\n}\n\nfn main() {\n    largest(&[1]);\n}»\n";
        let done = "fn average(v: &[i32]) -> i32 {\n    v.iter().sum::<i32>() / v.len() as i32\n}\n\n/// Largest.\nfn largest(v: &[i32]) -> i32 {\n    *v.iter().max().unwrap()\n}\n\nfn main() {\n    largest(&[1]);\n}\n";
        check(
            doc,
            "fn largest(v: &[i32]) -> i32 {\n    *v.iter().max().unwrap()\n}",
            done,
        );
        // The model repeated the neighbours word for word: they are not inserted twice.
        check(
            doc,
            "fn average(v: &[i32]) -> i32 {\n    v.iter().sum::<i32>() / v.len() as i32\n}\n\n/// Largest.\nfn largest(v: &[i32]) -> i32 {\n    *v.iter().max().unwrap()\n}\n\nfn main() {\n    largest(&[1]);\n}",
            done,
        );
    }

    #[test]
    fn a_spec_comment_alone_gets_the_code_below_it() {
        check(
            "fn a() {}\n«// largest(values): the largest value, None when empty»\nfn b() {}\n",
            "fn largest(values: &[i32]) -> Option<i32> {\n    values.iter().copied().max()\n}",
            "fn a() {}\n// largest(values): the largest value, None when empty\nfn largest(values: &[i32]) -> Option<i32> {\n    values.iter().copied().max()\n}\nfn b() {}\n",
        );
        // The model only repeated the comment: nothing changes.
        check("«// a spec»\n", "// a spec", "// a spec\n");
    }

    #[test]
    fn methods_keep_their_indentation_and_attributes() {
        check(
            "impl Stats {\n«    /// Mean.\n    #[inline]\n    pub fn mean(&self) -> f64 {\n        todo!()\n    }»\n}\n",
            "pub fn mean(&self) -> f64 {\n    self.sum / self.n as f64\n}",
            "impl Stats {\n    /// Mean.\n    #[inline]\n    pub fn mean(&self) -> f64 {\n        self.sum / self.n as f64\n    }\n}\n",
        );
        check(
            "«// Name is the user's name.\nfunc (u *User) Name() string {\n\tpanic(\"not implemented\")\n}»\n",
            "func (u *User) Name() string {\n\treturn u.name\n}",
            "// Name is the user's name.\nfunc (u *User) Name() string {\n\treturn u.name\n}\n",
        );
    }

    #[test]
    fn brace_on_its_own_line_and_braces_in_strings_and_chars() {
        check(
            "«/* Sum. */\nint sum(int *v, int n)\n{\n    return 0; /* } */\n}\nint other(void) { return '}'; }»\n",
            "int sum(int *v, int n)\n{\n    int s = 0;\n    for (int i = 0; i < n; i++) s += v[i];\n    return s;\n}",
            "/* Sum. */\nint sum(int *v, int n)\n{\n    int s = 0;\n    for (int i = 0; i < n; i++) s += v[i];\n    return s;\n}\nint other(void) { return '}'; }\n",
        );
        check(
            "«// Braces.\nfn braces() -> &'static str {\n    \"}}}\"\n}\nfn after() {}»\n",
            "fn braces() -> &'static str {\n    \"{}\"\n}",
            "// Braces.\nfn braces() -> &'static str {\n    \"{}\"\n}\nfn after() {}\n",
        );
    }

    #[test]
    fn a_renamed_function_still_replaces_the_one_stub() {
        check(
            "«// The biggest.\nfn largest(v: &[i32]) -> i32 { todo!() }»\n",
            "fn max_of(v: &[i32]) -> i32 {\n    *v.iter().max().unwrap()\n}",
            "// The biggest.\nfn max_of(v: &[i32]) -> i32 {\n    *v.iter().max().unwrap()\n}\n",
        );
    }

    #[test]
    fn kept_text_is_reproduced_byte_for_byte() {
        check(
            "«// CRLF spec\r\n\r\nfn f() {\r\n    todo!()\r\n}»\r\n",
            "fn f() {\n    1\n}",
            "// CRLF spec\r\n\r\nfn f() {\n    1\n}\r\n",
        );
        // A selection that starts mid-line keeps what precedes it.
        check("let x = «todo!()»;\n", "compute()", "let x = compute();\n");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn never_panics(doc in "(?s)[ \t\r\na-z{}()\\[\\]\"'`/#*@:;=<>!\\\\]{0,200}", code in "(?s)[ \na-z{}()/#*:]{0,120}", x in 0usize..220, y in 0usize..220) {
            let text = Rope::from_str(&doc);
            let _ = fit_generated(&text, x..y, &code);
        }

        /// Comment lines above the stub and code below it survive, in order, whatever the
        /// model left out or repeated.
        #[test]
        fn comments_and_code_around_the_stub_survive(
            comments in proptest::collection::vec("[A-Za-z ]{1,20}", 0..4),
            repeat in proptest::collection::vec(any::<bool>(), 4),
            after in proptest::option::of("[a-z]{1,8}"),
            indent in "( {4}|\t)?",
        ) {
            let comment_lines: Vec<String> = comments.iter().map(|c| format!("{indent}// {c}")).collect();
            let stub = format!("{indent}fn stub() {{\n{indent}    todo!()\n{indent}}}");
            let tail = after.as_ref().map(|a| format!("{indent}fn {a}_tail() {{}}"));
            let mut selected: Vec<String> = comment_lines.clone();
            selected.push(stub);
            selected.extend(tail.clone());
            let doc = format!("{}\n", selected.join("\n"));
            let text = Rope::from_str(&doc);
            let mut code: Vec<String> = comments
                .iter()
                .zip(&repeat)
                .filter(|(_, r)| **r)
                .map(|(c, _)| format!("// {c}"))
                .collect();
            code.push("fn stub() {\n    42\n}".into());
            let out = fit_generated(&text, 0..doc.chars().count() - 1, &code.join("\n"));
            let lines: Vec<&str> = out.lines().collect();
            let mut at = 0;
            for want in comment_lines.iter().chain(tail.iter()) {
                let found = lines[at..].iter().position(|l| l == want);
                prop_assert!(found.is_some(), "{want:?} missing from\n{out}");
                at += found.unwrap_or(0) + 1;
            }
            prop_assert!(out.contains("42") && !out.contains("todo!()"), "{out}");
            // Each comment as often as the document has it (two equal comments stay two).
            for c in &comment_lines {
                let wanted = comment_lines.iter().filter(|l| *l == c).count();
                prop_assert_eq!(lines.iter().filter(|l| *l == c).count(), wanted, "{} doubled in\n{}", c, out);
            }
        }
    }
}
