//! Prompt building: the context sent to the model for an action, within a token budget and with secrets redacted.

mod exclude;
mod redact;
mod templates;
mod widen;

use std::fmt::Write as _;
use std::ops::Range;

use ropey::Rope;

use crate::engine::Action;
use crate::provider::{Message, Role};

pub use exclude::is_excluded;
pub use redact::redact;
pub use templates::TEMPLATE_VERSION;
pub use widen::widen;

/// The rough size of a token, used to turn a token budget into characters.
pub const CHARS_PER_TOKEN: usize = 4;

/// At most this many diagnostics from other tools go into a prompt, each capped in length.
const MAX_DIAGNOSTICS: usize = 20;
const MAX_DIAGNOSTIC_CHARS: usize = 400;
/// Context lines (not selected ones) longer than this are cut: minified code is noise.
const MAX_CONTEXT_LINE_CHARS: usize = 400;
/// A partial-line selection is also quoted exactly when it is at most this long.
const MAX_EXACT_CHARS: usize = 2000;
/// Chars of selection always sent, even when the fixed parts use up the budget.
const MIN_SELECTION_CHARS: usize = 256;
/// Headings, fences and line breaks around the code blocks, counted against the budget.
const FRAME_CHARS: usize = 300;

/// Everything a prompt is built from; protocol-free so the CLI and the LSP layer share it.
#[derive(Clone, Debug)]
pub struct ContextInput<'a> {
    pub action: Action,
    /// Shown to the model; a workspace-relative path reads best.
    pub file_name: &'a str,
    pub language_id: &'a str,
    pub text: &'a Rope,
    /// Char offsets into `text`; clamped, and swapped when reversed.
    pub selection: Range<usize>,
    /// Messages other servers attached to the selection (from the code-action context).
    pub diagnostics: &'a [String],
    /// Tokens the user message may use (at ~4 chars a token), system prompt included.
    pub token_budget: usize,
    /// Lines of context wanted on each side of the selection, budget permitting.
    pub surrounding_lines: usize,
    /// Redact secrets from everything sent (the user message).
    pub redact: bool,
}

/// The messages for one model request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub messages: Vec<Message>,
    /// How many secrets were replaced by `[REDACTED:…]` markers.
    pub redactions: usize,
    /// 0-based, inclusive document lines of the selection (as used to clamp review findings).
    pub selection_lines: (u32, u32),
}

/// Builds the system and user messages for `input`.
///
/// The user message names the file and language, lists other tools' diagnostics, and shows
/// the selection with absolute 1-based line numbers between the lines before and after it.
/// Context is trimmed before the selection is: context lines are added closest first while
/// the budget lasts; a selection that alone exceeds the budget is cut with a marker, and the
/// task says so.
pub fn build(input: &ContextInput) -> Prompt {
    let text = input.text;
    let len = text.len_chars();
    let (mut start, mut end) = (input.selection.start.min(len), input.selection.end.min(len));
    if start > end {
        std::mem::swap(&mut start, &mut end);
    }
    let first = text.char_to_line(start);
    let mut last = text.char_to_line(end);
    // A selection ending at the start of a line does not include that line.
    if end > start && last > first && end == text.line_to_char(last) {
        last -= 1;
    }
    let last_doc_line = last_content_line(text);
    let lang = fence_lang(input.language_id);
    let width = digits(last.max(last_doc_line.min(last + input.surrounding_lines)) + 1);
    let system = templates::system(input.action);

    let mut header = format!("File: {}\nLanguage: {}\n", input.file_name, input.language_id);
    if !input.diagnostics.is_empty() {
        let _ = writeln!(header, "\n{}", templates::DIAGNOSTICS_HEADING);
        for d in input.diagnostics.iter().take(MAX_DIAGNOSTICS) {
            let _ = writeln!(header, "- {}", cut(d.trim(), MAX_DIAGNOSTIC_CHARS));
        }
        if input.diagnostics.len() > MAX_DIAGNOSTICS {
            let more = input.diagnostics.len() - MAX_DIAGNOSTICS;
            let _ = writeln!(header, "- … and {more} more");
        }
    }
    let task_estimate = templates::task(input.action, first + 1, last + 1);
    let budget = input.token_budget.saturating_mul(CHARS_PER_TOKEN);
    let fixed = chars(system) + chars(&header) + chars(&task_estimate) + FRAME_CHARS;
    // However small the budget, a prompt without its selection is useless: keep a floor.
    let mut remaining = budget.saturating_sub(fixed).max(MIN_SELECTION_CHARS);

    // The selection, whole if it fits.
    let mut selected = String::new();
    let mut shown_last = last;
    let mut truncated = None;
    for line in first..=last {
        let row = numbered(text, line, width, usize::MAX);
        let cost = chars(&row);
        if cost <= remaining {
            selected.push_str(&row);
            remaining -= cost;
            continue;
        }
        if line == first {
            // Even the first line is too long: show what fits of it.
            let room = remaining.saturating_sub(width + 4).max(1);
            selected.push_str(&numbered(text, line, width, room));
            remaining = 0;
            shown_last = first;
            truncated = Some(format!(
                "[… selection truncated to fit: the rest of line {} and lines {}-{} are not shown]\n",
                first + 1,
                first + 2,
                last + 1
            ));
            if first == last {
                truncated = Some(format!(
                    "[… selection truncated to fit: the rest of line {} is not shown]\n",
                    first + 1
                ));
            }
        } else {
            shown_last = line - 1;
            truncated = Some(format!(
                "[… selection truncated to fit: lines {}-{} are not shown]\n",
                line + 1,
                last + 1
            ));
        }
        break;
    }

    // The exact text when the selection covers only part of its lines.
    let whole = widen::lines_to_chars(text, first, last);
    let mut exact = None;
    if truncated.is_none() && end > start && (start != whole.start || end < whole.end) {
        let part = text.slice(start..end).to_string();
        let cost = chars(&part) + FRAME_CHARS / 3;
        if chars(&part) <= MAX_EXACT_CHARS && cost <= remaining {
            remaining -= cost;
            exact = Some(part);
        }
    }

    // Context, closest lines first, alternating sides, while the budget lasts.
    let mut before: Vec<String> = Vec::new();
    let mut after: Vec<String> = Vec::new();
    if truncated.is_none() {
        let lowest = first.saturating_sub(input.surrounding_lines);
        let highest = last_doc_line.min(last + input.surrounding_lines);
        let (mut up, mut down) = (first, last + 1);
        let (mut up_open, mut down_open) = (true, true);
        while up_open || down_open {
            if up_open {
                up_open = up > lowest && {
                    let row = numbered(text, up - 1, width, MAX_CONTEXT_LINE_CHARS);
                    take(&mut remaining, row, &mut before)
                };
                if up_open {
                    up -= 1;
                }
            }
            if down_open {
                down_open = down <= highest && {
                    let row = numbered(text, down, width, MAX_CONTEXT_LINE_CHARS);
                    take(&mut remaining, row, &mut after)
                };
                if down_open {
                    down += 1;
                }
            }
        }
        before.reverse();
    }

    let fence = fence_for(text, first.saturating_sub(before.len()), last + after.len());
    let mut user = header;
    if !before.is_empty() {
        let from = first - before.len() + 1;
        let _ = write!(
            user,
            "\nCode before the selection ({}):\n{fence}{lang}\n{}{fence}\n",
            span(from, first),
            before.concat()
        );
    }
    let _ = write!(
        user,
        "\nSelected code ({}):\n{fence}{lang}\n{selected}{}{fence}\n",
        span(first + 1, last + 1),
        truncated.as_deref().unwrap_or("")
    );
    if let Some(part) = &exact {
        let _ = write!(
            user,
            "\nThe selection covers only part of these lines; exactly selected:\n{fence}{lang}\n{part}\n{fence}\n"
        );
    }
    if !after.is_empty() {
        let _ = write!(
            user,
            "\nCode after the selection ({}):\n{fence}{lang}\n{}{fence}\n",
            span(last + 2, last + 1 + after.len()),
            after.concat()
        );
    }
    let _ = write!(
        user,
        "\n{}\n",
        templates::task(input.action, first + 1, shown_last + 1)
    );
    if truncated.is_some() {
        let _ = writeln!(
            user,
            "The selection was too long and is truncated; work with the part shown and say so."
        );
    }

    let (user, redactions) = if input.redact {
        redact(&user)
    } else {
        (user, 0)
    };
    Prompt {
        messages: vec![
            Message {
                role: Role::System,
                content: system.to_owned(),
            },
            Message {
                role: Role::User,
                content: user,
            },
        ],
        redactions,
        selection_lines: (to_u32(first), to_u32(last)),
    }
}

/// Appends `row` if it fits in `remaining`.
fn take(remaining: &mut usize, row: String, rows: &mut Vec<String>) -> bool {
    let cost = chars(&row);
    if cost > *remaining {
        return false;
    }
    *remaining -= cost;
    rows.push(row);
    true
}

/// `"{n} | {line}\n"` with the 1-based number right-aligned, the line cut to `max` chars.
fn numbered(text: &Rope, line: usize, width: usize, max: usize) -> String {
    let n = widen::content_len(text, line);
    let start = text.line_to_char(line);
    let shown = n.min(max);
    let mut row = format!("{:>width$} | ", line + 1);
    row.extend(text.slice(start..start + shown).chars());
    if shown < n {
        row.push_str(" …");
    }
    row.push('\n');
    row
}

/// The last line that holds text (a trailing newline leaves an empty final line).
fn last_content_line(text: &Rope) -> usize {
    let last = text.len_lines().saturating_sub(1);
    if last > 0 && widen::content_len(text, last) == 0 {
        last - 1
    } else {
        last
    }
}

/// A backtick fence longer than any backtick run in the lines shown, so code that itself
/// contains fences (Markdown) cannot close the block early.
fn fence_for(text: &Rope, first: usize, last: usize) -> String {
    let last = last.min(text.len_lines().saturating_sub(1));
    let (start, end) = (text.line_to_char(first), text.line_to_char(last + 1));
    let (mut run, mut longest) = (0, 0);
    for c in text.slice(start..end).chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat(longest.max(2) + 1)
}

/// The fence info string for a language id; ids that would break the fence are dropped.
fn fence_lang(language_id: &str) -> &str {
    let ok = language_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '#' | '.' | '_'));
    if ok && language_id != "plaintext" {
        language_id
    } else {
        ""
    }
}

fn span(from: usize, to: usize) -> String {
    if from == to {
        format!("line {from}")
    } else {
        format!("lines {from}-{to}")
    }
}

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn digits(n: usize) -> usize {
    n.to_string().len()
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> String {
        let mut s = String::new();
        for i in 1..=40 {
            let _ = writeln!(s, "// filler line {i}");
        }
        s.push_str("fn average(xs: &[u32]) -> u32 {\n"); // line 41
        s.push_str("    let sum: u32 = xs.iter().sum();\n"); // 42
        s.push_str("    sum / xs.len() as u32\n"); // 43
        s.push_str("}\n"); // 44
        for i in 45..=80 {
            let _ = writeln!(s, "// trailing line {i}");
        }
        s
    }

    /// Builds a prompt over `text`, selecting 1-based lines `from..=to` whole.
    fn prompt(action: Action, text: &str, from: usize, to: usize, budget: usize) -> Prompt {
        let rope = Rope::from_str(text);
        let selection = widen::lines_to_chars(&rope, from - 1, to - 1);
        let diagnostics = ["E0277: cannot divide `u32` by `usize`".to_owned()];
        build(&ContextInput {
            action,
            file_name: "src/stats.rs",
            language_id: "rust",
            text: &rope,
            selection,
            diagnostics: &diagnostics,
            token_budget: budget,
            surrounding_lines: 10,
            redact: true,
        })
    }

    fn user(p: &Prompt) -> &str {
        assert_eq!(p.messages.len(), 2);
        assert_eq!(p.messages[0].role, Role::System);
        assert_eq!(p.messages[1].role, Role::User);
        &p.messages[1].content
    }

    fn assert_has(haystack: &str, needles: &[&str]) {
        for n in needles {
            assert!(haystack.contains(n), "missing {n:?} in:\n{haystack}");
        }
    }

    #[test]
    fn review_prompt_shape() {
        let p = prompt(Action::Review, &source(), 41, 44, 4000);
        assert_eq!(p.selection_lines, (40, 43));
        assert!(p.messages[0].content.contains("reviewer"));
        let u = user(&p);
        assert_has(
            u,
            &[
                "File: src/stats.rs\nLanguage: rust\n",
                "Diagnostics reported by other tools:\n- E0277: cannot divide `u32` by `usize`",
                "Code before the selection (lines 31-40):\n```rust\n31 | // filler line 31\n",
                "Selected code (lines 41-44):\n```rust\n41 | fn average(xs: &[u32]) -> u32 {\n42 |",
                "44 | }\n```",
                "Code after the selection (lines 45-54):",
                "```json",
                "\"severity\": \"error\"|\"warning\"|\"info\"|\"hint\"",
                "between 41 and 44",
            ],
        );
        assert!(!u.contains("30 | "), "context is limited to surrounding_lines");
        assert!(!u.contains("55 | "));
        assert_eq!(p.redactions, 0);
    }

    #[test]
    fn explain_and_generate_prompt_shape() {
        let p = prompt(Action::Explain, &source(), 43, 43, 4000);
        assert_has(p.messages[0].content.as_str(), &["explain"]);
        assert_has(
            user(&p),
            &["Selected code (line 43):", "headline", "## Fix", "lines 43-43"],
        );
        let p = prompt(Action::Generate, &source(), 41, 41, 4000);
        assert_has(
            user(&p),
            &["signature, a comment or a stub", "only the code", "one fenced code block"],
        );
        assert_ne!(
            p.messages[0].content,
            prompt(Action::Review, &source(), 41, 41, 4000).messages[0].content
        );
    }

    #[test]
    fn context_is_trimmed_before_the_selection() {
        let full = prompt(Action::Review, &source(), 41, 44, 4000);
        let tight = prompt(Action::Review, &source(), 41, 44, 420);
        let u = user(&tight);
        assert_has(u, &["41 | fn average", "44 | }"]);
        assert!(!u.contains("truncated"), "{u}");
        let context = |p: &Prompt| user(p).matches(" | //").count();
        assert!(context(&tight) < context(&full), "{u}");
        // The closest context lines survive first.
        if context(&tight) > 0 {
            assert!(u.contains("40 | // filler line 40") || u.contains("45 | // trailing"));
        }
    }

    #[test]
    fn an_oversized_selection_is_truncated_with_a_marker() {
        let p = prompt(Action::Review, &source(), 1, 80, 500);
        let u = user(&p);
        assert_has(
            u,
            &["1 | // filler line 1", "selection truncated to fit", "is truncated"],
        );
        assert!(!u.contains("80 | "));
        assert!(chars(u) < 500 * CHARS_PER_TOKEN, "{} chars", chars(u));
        assert_eq!(p.selection_lines, (0, 79));
        // One enormous line is cut too.
        let long = format!("let s = \"{}\";\n", "x".repeat(50_000));
        let p = prompt(Action::Explain, &long, 1, 1, 500);
        assert_has(user(&p), &["selection truncated to fit: the rest of line 1"]);
        assert!(chars(user(&p)) < 500 * CHARS_PER_TOKEN);
    }

    #[test]
    fn secrets_are_redacted_everywhere_in_the_user_message() {
        let mut text = source();
        text = text.replace(
            "// filler line 39",
            "const KEY: &str = \"AKIAIOSFODNN7EXAMPLE\";",
        );
        text = text.replace(
            "    let sum: u32",
            "    let password = \"hunter2\";\n    let sum: u32",
        );
        let p = prompt(Action::Review, &text, 41, 45, 4000);
        let u = user(&p);
        assert!(!u.contains("AKIAIOSFODNN7EXAMPLE") && !u.contains("hunter2"), "{u}");
        assert_has(u, &["[REDACTED:aws-access-key]", "password = \"[REDACTED:secret]\""]);
        assert_eq!(p.redactions, 2);

        let rope = Rope::from_str(&text);
        let plain = build(&ContextInput {
            action: Action::Review,
            file_name: "a.rs",
            language_id: "rust",
            text: &rope,
            selection: 0..rope.len_chars(),
            diagnostics: &[],
            token_budget: 100_000,
            surrounding_lines: 0,
            redact: false,
        });
        assert!(user(&plain).contains("hunter2"));
        assert!(!user(&plain).contains("Diagnostics reported"));
        assert_eq!(plain.redactions, 0);
    }

    #[test]
    fn partial_selections_crlf_and_reversed_ranges() {
        let text = "fn f() {\r\n    let x = compute(1, 2);\r\n}\r\n";
        let rope = Rope::from_str(text);
        let at = text.find("compute").unwrap_or(0);
        let input = ContextInput {
            action: Action::Explain,
            file_name: "f.rs",
            language_id: "rust",
            text: &rope,
            selection: at + "compute(1, 2)".len()..at,
            diagnostics: &[],
            token_budget: 2000,
            surrounding_lines: 5,
            redact: true,
        };
        let p = build(&input);
        let u = user(&p);
        assert_eq!(p.selection_lines, (1, 1));
        assert_has(
            u,
            &[
                "Selected code (line 2):\n```rust\n2 |     let x = compute(1, 2);\n```",
                "exactly selected:\n```rust\ncompute(1, 2)\n```",
                "1 | fn f() {\n```",
            ],
        );
        assert!(!u.contains('\r'));
        // A whole-line selection ending at the next line's start stays on its own lines.
        let p = build(&ContextInput {
            selection: rope.line_to_char(1)..rope.line_to_char(2),
            ..input
        });
        assert_eq!(p.selection_lines, (1, 1));
        assert!(!user(&p).contains("exactly selected"));
    }

    #[test]
    fn markdown_fences_inside_code_get_a_longer_fence() {
        let text = "Intro\n```sh\nrm -rf /\n```\nOutro\n";
        let rope = Rope::from_str(text);
        let p = build(&ContextInput {
            action: Action::Review,
            file_name: "README.md",
            language_id: "markdown",
            text: &rope,
            selection: 0..rope.len_chars(),
            diagnostics: &[],
            token_budget: 1000,
            surrounding_lines: 0,
            redact: false,
        });
        assert_has(user(&p), &["````markdown\n1 | Intro"]);
    }
}
