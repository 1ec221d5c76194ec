//! Prompt building: the context sent to the model for an action, within a token budget and with secrets redacted.

mod definitions;
mod exclude;
mod layout;
mod mask;
mod redact;
mod templates;
mod widen;

use std::fmt::Write as _;
use std::ops::Range;

use ropey::Rope;

use crate::action::Action;
use crate::provider::{Message, Role};
use layout::{digits, Layout, Lines, Row, FRAME_CHARS};

pub use exclude::{exclusion, is_excluded, Exclusion};
pub use redact::redact;
pub use templates::TEMPLATE_VERSION;
pub use widen::{whole_lines, widen, widen_selection, Widened, Widening};

pub use crate::provider::CHARS_PER_TOKEN;

/// At most this many diagnostics from other tools go into a prompt, each capped in length.
const MAX_DIAGNOSTICS: usize = 20;
const MAX_DIAGNOSTIC_CHARS: usize = 400;
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
    /// Definitions the selection uses from elsewhere (`syntax::definitions_used`), quoted
    /// budget permitting, after the selection and before the lines around it.
    pub definitions: &'a [crate::syntax::Definition],
}

/// The messages for one model request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub messages: Vec<Message>,
    /// How many distinct secrets were replaced by `[REDACTED:…]` markers.
    pub redactions: usize,
    /// 0-based, inclusive document lines of the selection, as asked for.
    pub selection_lines: (u32, u32),
    /// Which lines were sent, and whether the budget cut any.
    pub coverage: Coverage,
    /// The definitions quoted, one line each: `function `helper` (src/util.rs:12)`.
    pub definitions: Vec<String>,
}

/// Which document lines a prompt holds, and whether `context.token_budget` cut the selection
/// or its context. Lines are 0-based and inclusive, as everywhere below the protocol layer.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Coverage {
    /// The lines of the selection that were sent; when `truncated`, fewer than were selected
    /// (a single line sent only in part when even it did not fit).
    pub covered_lines: (u32, u32),
    /// The selection was cut to fit the budget.
    pub truncated: bool,
    /// The lines sent around the selection and including it (enclosing headers further up
    /// aside).
    pub context_lines: (u32, u32),
    /// Fewer context lines than `context.surrounding_lines` were sent on a side that had them.
    pub context_truncated: bool,
    /// What to tell the user when the budget cut something, e.g. "the selection (lines
    /// 1–500,000) was cut to fit context.token_budget: only lines 1–98 were sent".
    #[serde(rename = "coverage_note")]
    pub note: Option<String>,
}

/// The document text in each of `ranges` (chars), masked where it overlaps a secret found on
/// the whole lines the ranges touch (so a secret the cursor cuts is still masked on both sides),
/// and how many secrets were masked. With `redact` false the pieces come back as they are.
/// Completions send their text before and after the cursor through this.
pub fn masked_pieces(text: &Rope, ranges: &[Range<usize>], redact: bool) -> (Vec<String>, usize) {
    let len = text.len_chars();
    let secrets = if redact {
        let mut shown = Vec::new();
        for r in ranges {
            let (a, b) = (r.start.min(len), r.end.min(len));
            for line in text.char_to_line(a)..=text.char_to_line(b) {
                if line < text.len_lines() {
                    shown.push((line, text.line(line).len_chars()));
                }
            }
        }
        mask::scan(text, &shown)
    } else {
        Vec::new()
    };
    let mut masker = mask::Masker::new(text, secrets, redact);
    let pieces = ranges.iter().map(|r| masker.piece(r.clone())).collect();
    (pieces, masker.count())
}

/// Builds the system and user messages for `input`.
///
/// The user message names the file and language, lists other tools' diagnostics, and shows
/// the selection with absolute 1-based line numbers between the lines before and after it.
/// Context is trimmed before the selection is: context lines are added closest first while
/// the budget lasts; a selection that alone exceeds the budget is cut with a marker, and the
/// task says so.
///
/// With `redact`, secrets are found on the whole document lines the prompt shows (see
/// [`mask::scan`]), and every piece is masked where it overlaps one, however the selection
/// cuts it; diagnostics are masked where they hold or quote a secret. The budget is reckoned
/// on the text before masking.
pub fn build(input: &ContextInput) -> Prompt {
    let text = input.text;
    let lines = Lines::of(text, &input.selection);
    let (first, last) = (lines.first, lines.last);
    let last_doc_line = last_content_line(text);
    let width = digits(last.max(last_doc_line.min(last + input.surrounding_lines)) + 1);
    let system = templates::system(input.action);
    let diagnostics: Vec<&str> = input
        .diagnostics
        .iter()
        .take(MAX_DIAGNOSTICS)
        .map(|d| d.trim())
        .collect();
    // The fixed parts are reckoned as they would read unmasked.
    let fixed = chars(system)
        + chars(&header(input, &diagnostics, |d| d.to_owned()))
        + chars(&templates::task(input.action, first + 1, last + 1))
        + FRAME_CHARS;
    let budget = input.token_budget.saturating_mul(CHARS_PER_TOKEN);
    let layout = Layout::plan(
        input,
        &lines,
        width,
        last_doc_line,
        budget.saturating_sub(fixed),
    );

    // Then the secrets on exactly the lines shown, and every piece masked where it overlaps one.
    let secrets = if input.redact {
        let shown: Vec<Row> = layout
            .before
            .iter()
            .chain(&layout.selected)
            .chain(&layout.after)
            .copied()
            .collect();
        mask::scan(text, &shown)
    } else {
        Vec::new()
    };
    let mut masker = mask::Masker::new(text, secrets, input.redact);
    let user = write_user(input, &lines, &layout, &diagnostics, &mut masker);

    let context_lines = layout.context_lines(&lines);
    let truncated = layout.truncated.is_some();
    let note = coverage_note(
        (first, last),
        layout.shown_last,
        layout.line_cut,
        truncated,
        layout.context_truncated,
        context_lines,
    );
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
        redactions: masker.count(),
        selection_lines: (to_u32(first), to_u32(last)),
        coverage: Coverage {
            covered_lines: (to_u32(first), to_u32(layout.shown_last)),
            truncated,
            context_lines: (to_u32(context_lines.0), to_u32(context_lines.1)),
            context_truncated: layout.context_truncated,
            note,
        },
        definitions: layout
            .chosen
            .iter()
            .map(|c| definitions::note(&input.definitions[c.index], input.file_name))
            .collect(),
    }
}

/// The code blocks the layout planned, as masked text.
struct Blocks {
    /// File, language and other tools' diagnostics.
    header: String,
    selected: String,
    before: Vec<(usize, String)>,
    after: Vec<(usize, String)>,
    exact: Option<String>,
    /// Each quoted definition's origin and code.
    defs: Vec<(String, String)>,
}

impl Blocks {
    /// Masks in the order the message was always masked in, so markers keep their numbers.
    fn render(
        input: &ContextInput,
        layout: &Layout,
        diagnostics: &[&str],
        masker: &mut mask::Masker,
    ) -> Blocks {
        let text = input.text;
        let mut row = |(line, shown): Row| {
            let n = widen::content_len(text, line);
            let begin = text.line_to_char(line);
            let mut row = format!("{:>width$} |", line + 1, width = layout.width);
            if shown > 0 {
                row.push(' ');
                row.push_str(&masker.piece(begin..begin + shown));
            }
            if shown < n {
                row.push_str(" …");
            }
            row.push('\n');
            row
        };
        let selected = layout.selected.iter().map(|r| row(*r)).collect();
        let before = layout.before.iter().map(|r| (r.0, row(*r))).collect();
        let after = layout.after.iter().map(|r| (r.0, row(*r))).collect();
        let exact = layout.exact.clone().map(|range| masker.piece(range));
        let header = header(input, diagnostics, |d| masker.other(d));
        // Definitions come from other documents too: masked as text of their own, and for
        // quotes of this document's secrets.
        let defs = layout
            .chosen
            .iter()
            .map(|c| {
                let d = &input.definitions[c.index];
                (
                    definitions::origin(d, input.file_name),
                    masker.other(&definitions::code(d, c.full)),
                )
            })
            .collect();
        Blocks {
            header,
            selected,
            before,
            after,
            exact,
            defs,
        }
    }

    /// A fence longer than any backtick run in the blocks.
    fn fence(&self) -> String {
        fence_for(
            self.before
                .iter()
                .chain(&self.after)
                .map(|(_, row)| row.as_str())
                .chain([self.selected.as_str(), self.exact.as_deref().unwrap_or("")])
                .chain(self.defs.iter().map(|(_, code)| code.as_str())),
        )
    }
}

/// The user message: header, the code blocks the layout planned, the definitions, and the
/// task.
fn write_user(
    input: &ContextInput,
    lines: &Lines,
    layout: &Layout,
    diagnostics: &[&str],
    masker: &mut mask::Masker,
) -> String {
    let (first, last) = (lines.first, lines.last);
    let lang = fence_lang(input.language_id);
    let blocks = Blocks::render(input, layout, diagnostics, masker);
    let fence = blocks.fence();
    let Blocks {
        header,
        selected,
        before,
        after,
        exact,
        defs,
    } = blocks;
    let mut user = header;
    if let Some((from, _)) = before.first() {
        let _ = write!(
            user,
            "\nCode before the selection ({}):\n{fence}{lang}\n{}{fence}\n",
            span(from + 1, first),
            with_gaps(&before)
        );
    }
    let _ = write!(
        user,
        "\nSelected code ({}):\n{fence}{lang}\n{selected}{}{fence}\n",
        span(first + 1, last + 1),
        layout.truncated.as_deref().unwrap_or("")
    );
    if let Some(part) = &exact {
        let _ = write!(
            user,
            "\nThe selection covers only part of these lines; exactly selected:\n{fence}{lang}\n{part}\n{fence}\n"
        );
    }
    if let Some((to, _)) = after.last() {
        let _ = write!(
            user,
            "\nCode after the selection ({}):\n{fence}{lang}\n{}{fence}\n",
            span(last + 2, to + 1),
            with_gaps(&after)
        );
    }
    if !defs.is_empty() {
        let _ = writeln!(user, "\n{}", templates::DEFINITIONS_HEADING);
        for (origin, code) in &defs {
            let _ = write!(user, "\n{origin}:\n{fence}{lang}\n{code}\n{fence}\n");
        }
    }
    let _ = write!(
        user,
        "\n{}\n",
        templates::task(input.action, first + 1, layout.shown_last + 1)
    );
    if layout.truncated.is_some() {
        let _ = writeln!(
            user,
            "The selection was too long and is truncated; work with the part shown and say so."
        );
    }
    user
}

/// The file, the language, and the diagnostics of other tools, each passed through `show`.
fn header(
    input: &ContextInput,
    diagnostics: &[&str],
    mut show: impl FnMut(&str) -> String,
) -> String {
    let mut header = format!(
        "File: {}\nLanguage: {}\n",
        input.file_name, input.language_id
    );
    if !diagnostics.is_empty() {
        let _ = writeln!(header, "\n{}", templates::DIAGNOSTICS_HEADING);
        for d in diagnostics {
            let _ = writeln!(header, "- {}", cut(&show(d), MAX_DIAGNOSTIC_CHARS));
        }
        if input.diagnostics.len() > MAX_DIAGNOSTICS {
            let more = input.diagnostics.len() - MAX_DIAGNOSTICS;
            let _ = writeln!(header, "- … and {more} more");
        }
    }
    header
}

/// What the user is told when the budget cut the selection or its context (1-based lines).
fn coverage_note(
    (first, last): (usize, usize),
    shown_last: usize,
    line_cut: Option<usize>,
    truncated: bool,
    context_truncated: bool,
    (from, to): (usize, usize),
) -> Option<String> {
    let selection = human_span(first + 1, last + 1);
    if truncated {
        let sent = match line_cut {
            Some(chars) => format!(
                "only the first {} characters of line {} were sent",
                grouped(chars),
                grouped(first + 1)
            ),
            None => format!("only {} were sent", human_span(first + 1, shown_last + 1)),
        };
        return Some(format!(
            "the selection ({selection}) was cut to fit context.token_budget: {sent}"
        ));
    }
    if context_truncated {
        let sent = if (from, to) == (first, last) {
            "no lines around it were sent".to_owned()
        } else {
            format!("{} were sent", human_span(from + 1, to + 1))
        };
        return Some(format!(
            "the context around the selection ({selection}) was cut to fit context.token_budget: {sent}"
        ));
    }
    None
}

/// `line 7` or `lines 1–500,000`, for people.
fn human_span(from: usize, to: usize) -> String {
    if from == to {
        format!("line {}", grouped(from))
    } else {
        format!("lines {}–{}", grouped(from), grouped(to))
    }
}

/// `500000` as `500,000`.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Rows in line order, with `⋮` where lines are skipped.
fn with_gaps(rows: &[(usize, String)]) -> String {
    let mut out = String::new();
    let mut previous: Option<usize> = None;
    for (line, row) in rows {
        if previous.is_some_and(|p| p + 1 < *line) {
            out.push_str("⋮\n");
        }
        out.push_str(row);
        previous = Some(*line);
    }
    out
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

/// A backtick fence longer than any backtick run in the code shown, so code that itself
/// contains fences (Markdown) cannot close the block early.
fn fence_for<'a>(shown: impl Iterator<Item = &'a str>) -> String {
    let mut longest = 0;
    for text in shown {
        let mut run = 0;
        for c in text.chars() {
            run = if c == '`' { run + 1 } else { 0 };
            longest = longest.max(run);
        }
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
            definitions: &[],
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
        assert!(
            !u.contains("30 | "),
            "context is limited to surrounding_lines"
        );
        assert!(!u.contains("55 | "));
        assert_eq!(p.redactions, 0);
    }

    #[test]
    fn explain_and_generate_prompt_shape() {
        let p = prompt(Action::Explain, &source(), 43, 43, 4000);
        assert_has(p.messages[0].content.as_str(), &["explain"]);
        assert_has(
            user(&p),
            &[
                "Selected code (line 43):",
                "headline",
                "## Fix",
                "lines 43-43",
            ],
        );
        let p = prompt(Action::Generate, &source(), 41, 41, 4000);
        assert_has(
            user(&p),
            &[
                "signature, a comment or a stub",
                "only the code",
                "one fenced code block",
            ],
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
    fn enclosing_headers_are_pinned_above_the_context() {
        let mut text = String::from("impl Stats {\n    pub fn average(xs: &[u32]) -> u32 {\n");
        for i in 3..=30 {
            let _ = writeln!(text, "        step({i});");
        }
        text.push_str("        done()\n    }\n}\n");
        let rope = Rope::from_str(&text);
        let p = build(&ContextInput {
            action: Action::Review,
            file_name: "a.rs",
            language_id: "rust",
            text: &rope,
            selection: widen::lines_to_chars(&rope, 24, 24),
            diagnostics: &[],
            token_budget: 4000,
            surrounding_lines: 2,
            redact: false,
            definitions: &[],
        });
        assert_has(
            user(&p),
            &[
                "Code before the selection (lines 1-24):\n```rust\n 1 | impl Stats {\n 2 |     pub fn average(xs: &[u32]) -> u32 {\n⋮\n23 |         step(23);\n24 |         step(24);\n```",
                "Selected code (line 25):",
                "Code after the selection (lines 26-27):",
            ],
        );
    }

    #[test]
    fn an_oversized_selection_is_truncated_with_a_marker() {
        let p = prompt(Action::Review, &source(), 1, 80, 500);
        let u = user(&p);
        assert_has(
            u,
            &[
                "1 | // filler line 1",
                "selection truncated to fit",
                "is truncated",
            ],
        );
        assert!(!u.contains("80 | "));
        assert!(chars(u) < 500 * CHARS_PER_TOKEN, "{} chars", chars(u));
        assert_eq!(p.selection_lines, (0, 79));
        // One enormous line is cut too.
        let long = format!("let s = \"{}\";\n", "x".repeat(50_000));
        let p = prompt(Action::Explain, &long, 1, 1, 500);
        assert_has(
            user(&p),
            &["selection truncated to fit: the rest of line 1"],
        );
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
        assert!(
            !u.contains("AKIAIOSFODNN7EXAMPLE") && !u.contains("hunter2"),
            "{u}"
        );
        assert_has(
            u,
            &[
                "[REDACTED:aws-access-key]",
                "password = \"[REDACTED:secret]\"",
            ],
        );
        assert_eq!(p.redactions, 2);

        let rope = Rope::from_str(&text);
        let plain_input = |rope| ContextInput {
            action: Action::Review,
            file_name: "a.rs",
            language_id: "rust",
            text: rope,
            selection: 0..rope.len_chars(),
            diagnostics: &[],
            token_budget: 100_000,
            surrounding_lines: 0,
            redact: false,
            definitions: &[],
        };
        let plain = build(&plain_input(&rope));
        assert!(user(&plain).contains("hunter2"));
        // Diagnostics leave the machine too.
        let leaky = ["expected token, found ghp_0123456789abcdefghijklmnopqrstuvwxyzAB".to_owned()];
        let p = build(&ContextInput {
            diagnostics: &leaky,
            redact: true,
            definitions: &[],
            ..plain_input(&rope)
        });
        assert_has(user(&p), &["found [REDACTED:github-token]"]);
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
            definitions: &[],
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
            definitions: &[],
        });
        assert_has(user(&p), &["````markdown\n1 | Intro"]);
    }

    /// A prompt over `text` selecting chars `selection`, redacting, with a generous budget.
    fn cut_prompt(text: &str, selection: Range<usize>, diagnostics: &[String]) -> Prompt {
        let rope = Rope::from_str(text);
        build(&ContextInput {
            action: Action::Explain,
            file_name: "src/db.rs",
            language_id: "rust",
            text: &rope,
            selection,
            diagnostics,
            token_budget: 4000,
            surrounding_lines: 5,
            redact: true,
            definitions: &[],
        })
    }

    /// The char range of `needle` in `text`.
    fn chars_of(text: &str, needle: &str) -> Range<usize> {
        let at = text.find(needle).expect("needle in text");
        let start = text[..at].chars().count();
        start..start + needle.chars().count()
    }

    #[test]
    fn a_selection_cutting_a_secret_sends_none_of_it() {
        // The issue's cases: only the value selected, the password of a URL, a token's tail.
        let text = "fn connect() {\n    let db_password = \"Tr0ub4dor&3-x\";\n    let url = \"postgres://app:s3cr3tPa55@db:5432/app\";\n    let gh = \"ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8\";\n}\n";
        for (selected, secret) in [
            ("Tr0ub4dor&3-x", "Tr0ub4dor&3-x"),
            ("r3tPa55@db", "s3cr3tPa55"),
            (
                "e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
                "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
            ),
        ] {
            let p = cut_prompt(text, chars_of(text, selected), &[]);
            let u = user(&p);
            assert!(u.contains("exactly selected"), "{u}");
            for w in secret.as_bytes().windows(8) {
                let w = std::str::from_utf8(w).unwrap_or_default();
                assert!(!u.contains(w), "{w:?} of {secret:?} was sent:\n{u}");
            }
            assert_eq!(
                p.redactions, 3,
                "all three lines are shown, each secret once: {u}"
            );
        }
        let p = cut_prompt(text, chars_of(text, "Tr0ub4dor&3-x"), &[]);
        assert_has(
            user(&p),
            &[
                "exactly selected:\n```rust\n[REDACTED:secret]\n```",
                "2 |     let db_password = \"[REDACTED:secret]\";",
                "3 |     let url = \"postgres://app:[REDACTED:password]@db:5432/app\";",
            ],
        );
        // The same selection unredacted sends it as it is.
        let rope = Rope::from_str(text);
        let plain = build(&ContextInput {
            action: Action::Explain,
            file_name: "src/db.rs",
            language_id: "rust",
            text: &rope,
            selection: chars_of(text, "Tr0ub4dor&3-x"),
            diagnostics: &[],
            token_budget: 4000,
            surrounding_lines: 5,
            redact: false,
            definitions: &[],
        });
        assert!(user(&plain).contains("Tr0ub4dor&3-x") && plain.redactions == 0);
    }

    #[test]
    fn a_pem_key_is_masked_from_any_line_of_it_and_diagnostics_quoting_secrets_too() {
        let mut text = String::from("const KEY: &str = \"\n-----BEGIN PRIVATE KEY-----\n");
        for i in 0..20 {
            let _ = writeln!(
                text,
                "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC{i:02}xyzXYZ0123456789abcdefABCDEFGH"
            );
        }
        text.push_str("-----END PRIVATE KEY-----\n\";\nfn main() {}\n");
        // Line 12, in the middle of the body, far from both markers with no context around.
        let rope = Rope::from_str(&text);
        let line = widen::lines_to_chars(&rope, 12, 12);
        let diagnostics = ["unexpected `9w0BAQEFAASC10xyz`: did you mean `Tr0ub`?".to_owned()];
        let p = build(&ContextInput {
            action: Action::Review,
            file_name: "src/key.rs",
            language_id: "rust",
            text: &rope,
            selection: line.start + 5..line.end - 3,
            diagnostics: &diagnostics,
            token_budget: 4000,
            surrounding_lines: 0,
            redact: true,
            definitions: &[],
        });
        let u = user(&p);
        assert!(
            !u.contains("xyzXYZ0123456789") && !u.contains("9w0BAQEF"),
            "{u}"
        );
        assert_has(
            u,
            &[
                "13 | [REDACTED:private-key]\n",
                "- unexpected `[REDACTED:secret]`",
            ],
        );
        assert_eq!(p.redactions, 1, "one key, quoted or not: {u}");
    }

    #[test]
    fn the_result_says_which_lines_a_cut_selection_covered() {
        let lines = 500_000;
        let text: String = (1..=lines)
            .map(|i| format!("let value_{i} = {i};\n"))
            .collect();
        let rope = Rope::from_str(&text);
        let p = build(&ContextInput {
            action: Action::Review,
            file_name: "big.rs",
            language_id: "rust",
            text: &rope,
            selection: 0..rope.len_chars(),
            diagnostics: &[],
            token_budget: 3000,
            surrounding_lines: 20,
            redact: true,
            definitions: &[],
        });
        let c = &p.coverage;
        assert!(c.truncated);
        assert_eq!(p.selection_lines, (0, lines as u32 - 1));
        let sent = c.covered_lines.1 as usize + 1;
        assert!(c.covered_lines.0 == 0 && sent > 10 && sent < 1000, "{c:?}");
        let u = user(&p);
        assert!(
            u.contains(&format!("{sent:>6} | let value_{sent} ")),
            "the last line sent"
        );
        assert!(
            !u.contains(&format!("let value_{} ", sent + 1)),
            "and not the next"
        );
        assert_eq!(
            c.note.as_deref(),
            Some(
                format!(
                    "the selection (lines 1–500,000) was cut to fit context.token_budget: only lines 1–{sent} were sent"
                )
                .as_str()
            )
        );
        // One enormous line: the note says how much of it.
        let long = format!("let s = \"{}\";\nnext();\n", "x".repeat(50_000));
        let p = prompt(Action::Explain, &long, 1, 2, 500);
        assert_eq!(p.coverage.covered_lines, (0, 0));
        let note = p.coverage.note.unwrap_or_default();
        assert!(
            note.starts_with(
                "the selection (lines 1–2) was cut to fit context.token_budget: only the first "
            ) && note.ends_with(" characters of line 1 were sent"),
            "{note}"
        );
    }

    #[test]
    fn definitions_are_quoted_with_their_origin_masked_and_within_the_budget() {
        use crate::syntax::{self, Lang, Source};
        let text = "fn run(x: u32) -> u32 {\n    helper(x) + LIMIT\n}\n\nconst LIMIT: u32 = 3;\n";
        let other = "pub fn helper(x: u32) -> u32 {\n    let token = \"ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8\";\n    x * 2\n}\n";
        let rope = Rope::from_str(text);
        let tree = syntax::parse(Lang::Rust, &rope).expect("parses");
        let others = [Source {
            name: "src/util.rs".into(),
            parsed: syntax::parse(Lang::Rust, &Rope::from_str(other)).expect("parses"),
        }];
        let selection = 0..text.find("\n}").unwrap_or(0) + 2;
        let defs = syntax::definitions_used(&tree, selection.clone(), &others);
        let input = |budget| ContextInput {
            action: Action::Review,
            file_name: "src/run.rs",
            language_id: "rust",
            text: &rope,
            selection: selection.clone(),
            diagnostics: &[],
            token_budget: budget,
            surrounding_lines: 0,
            redact: true,
            definitions: &defs,
        };
        let p = build(&input(3000));
        let u = user(&p);
        assert_has(
            u,
            &[
                templates::DEFINITIONS_HEADING,
                "function `helper`, from src/util.rs, line 1:\n```rust\npub fn helper(x: u32) -> u32 {",
                "constant `LIMIT`, from this file, src/run.rs, line 5:\n```rust\nconst LIMIT: u32 = 3;\n```",
                "let token = \"[REDACTED:",
            ],
        );
        assert!(!u.contains("ghp_a1B2c3"), "{u}");
        assert_eq!(p.redactions, 1);
        assert_eq!(
            p.definitions,
            [
                "function `helper` (src/util.rs:1)",
                "constant `LIMIT` (src/run.rs:5)"
            ]
        );
        // A tight budget keeps the selection and sends signatures, or nothing, of the rest.
        let tight = build(&input(160));
        let u = user(&tight);
        assert!(u.contains("helper(x) + LIMIT"), "{u}");
        assert!(!u.contains("x * 2"), "no body at this budget: {u}");
    }

    #[test]
    fn the_result_says_which_context_lines_a_tight_budget_left() {
        let full = prompt(Action::Review, &source(), 41, 44, 4000);
        assert!(!full.coverage.truncated && !full.coverage.context_truncated);
        assert_eq!(full.coverage.context_lines, (30, 53));
        assert_eq!(full.coverage.covered_lines, (40, 43));
        assert_eq!(full.coverage.note, None);
        let tight = prompt(Action::Review, &source(), 41, 44, 420);
        let c = &tight.coverage;
        assert!(!c.truncated && c.context_truncated, "{c:?}");
        assert!(c.context_lines.0 > 30 && c.context_lines.1 < 53, "{c:?}");
        let (from, to) = (c.context_lines.0 + 1, c.context_lines.1 + 1);
        assert_eq!(
            c.note.as_deref(),
            Some(format!(
                "the context around the selection (lines 41–44) was cut to fit context.token_budget: lines {from}–{to} were sent"
            ).as_str())
        );
        // The lines the coverage names are the ones in the prompt.
        let u = user(&tight);
        assert!(
            u.contains(&format!("{from} | ")) && u.contains(&format!("{to} | ")),
            "{u}"
        );
        assert!(!u.contains(&format!("{} | ", from - 1)) && !u.contains(&format!("{} | ", to + 1)));
        // A selection at the top of a file has no context above it to cut.
        let top = prompt(Action::Review, &source(), 1, 2, 4000);
        assert!(!top.coverage.context_truncated, "{:?}", top.coverage);
        assert_eq!(top.coverage.context_lines, (0, 11));
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(999), "999");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// One line of code holding a secret, and the secret itself (what must not leave).
    const SHAPES: &[(&str, &str)] = &[
        ("    let db_password = \"Tr0ub4dor&3-x\";", "Tr0ub4dor&3-x"),
        ("    url = \"postgres://app:s3cr3tPa55w0rd@db.internal:5432/app\"", "s3cr3tPa55w0rd"),
        ("    let gh = \"ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8\";", "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"),
        ("    aws(\"AKIAIOSFODNN7EXAMPLE\")", "AKIAIOSFODNN7EXAMPLE"),
        ("    stripe.webhook(\"whsec_5f1e2d3c4b5a69788796a5b4c3d2e1f0\")", "whsec_5f1e2d3c4b5a69788796a5b4c3d2e1f0"),
        ("    gitlab = glpat-Xy9_aB3cD4eF5gH6iJ7kL8m;", "glpat-Xy9_aB3cD4eF5gH6iJ7kL8m"),
        ("    mail(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)", "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"),
        ("    conn = \"AccountName=a;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;EndpointSuffix=x\"", "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="),
        ("    curl -H 'Authorization: Basic dXNlcjpwYXNzd29yZA==' https://api", "dXNlcjpwYXNzd29yZA=="),
        ("    jdbc = \"jdbc:mysql://db/app?user=app&password=plainWordsPass&ssl=1\"", "plainWordsPass"),
        ("    jdbc = \"jdbc:sqlserver://db;user=sa;password=Tr0ub&4dorMore;encrypt=true\"", "Tr0ub&4dorMore"),
        ("    github_token: 3f9a8c7e6d5b4a3c2b1a0f9e8d7c6b5a4f3e2d1c", "3f9a8c7e6d5b4a3c2b1a0f9e8d7c6b5a4f3e2d1c"),
        ("    client_secret = 8a7B6c5D4e3F2a1B0c9D", "8a7B6c5D4e3F2a1B0c9D"),
        ("    api_key = 'Zk39fQ0pLm82xVb7Tn4w'", "Zk39fQ0pLm82xVb7Tn4w"),
        ("    slack = \"xoxb-1234567890-abcdefghijKLMN\"", "xoxb-1234567890-abcdefghijKLMN"),
        ("    openai(\"sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t\")", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"),
        ("    maps(\"AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW\")", "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"),
        ("    stripe(\"sk_live_4eC39HqLyjWDarjtT1zdp7dc\")", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
        ("    auth = \"Bearer 4f9a8c7e6d5b4a3c2b1a0f9e8d7c6b5a\"", "4f9a8c7e6d5b4a3c2b1a0f9e8d7c6b5a"),
        ("    jwt = eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
        ("export DB_PASSWORD=hunter22horse", "hunter22horse"),
        ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"),
    ];

    /// A document with `shape` on line 4 (0-based 3); a PEM body line sits inside its block.
    fn secret_document(shape: &str) -> String {
        let mut text = String::from("// config\nfn settings() {\n    let retries = 3;\n");
        if shape.starts_with("MII") {
            text = String::from("// key\nconst KEY: &str = \"\n-----BEGIN RSA PRIVATE KEY-----\n");
        }
        text.push_str(shape);
        text.push('\n');
        if shape.starts_with("MII") {
            text.push_str("AoIBAQC7VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictG\n-----END RSA PRIVATE KEY-----\n\";\n");
        }
        text.push_str("    let timeout = 30;\n}\n");
        text
    }

    /// Every 8-char window of `secret` that is in `sent`.
    fn leaks(secret: &str, sent: &str) -> Vec<String> {
        let chars: Vec<char> = secret.chars().collect();
        chars
            .windows(8)
            .map(|w| w.iter().collect::<String>())
            .filter(|w| sent.contains(w.as_str()))
            .collect()
    }

    fn sent(
        shape: usize,
        a: usize,
        b: usize,
        around: usize,
        budget: usize,
        quote: bool,
    ) -> (String, String) {
        let (line, secret) = SHAPES[shape];
        let text = secret_document(line);
        let rope = Rope::from_str(&text);
        let start = rope.line_to_char(3);
        let len = line.chars().count();
        let (a, b) = (a % (len + 1), b % (len + 1));
        let (a, b) = (a.min(b), a.max(b).max(a.min(b) + 1));
        let selection = start + a..start + b;
        // Another tool's diagnostic quoting the selected text.
        let diagnostics = if quote {
            vec![format!("unused value `{}`", rope.slice(selection.clone()))]
        } else {
            Vec::new()
        };
        let p = build(&ContextInput {
            action: Action::Explain,
            file_name: "src/settings.rs",
            language_id: "rust",
            text: &rope,
            selection,
            diagnostics: &diagnostics,
            token_budget: budget,
            surrounding_lines: around,
            redact: true,
            definitions: &[],
        });
        let all = p
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        (all, secret.to_owned())
    }

    #[test]
    fn every_cut_through_every_secret_shape_sends_none_of_it() {
        // Exhaustive over the cuts that start or end inside the secret, for each shape.
        for (shape, (line, secret)) in SHAPES.iter().enumerate() {
            let at = line.find(secret).expect("secret on its line");
            let (s, e) = (
                line[..at].chars().count(),
                line[..at].chars().count() + secret.chars().count(),
            );
            let len = line.chars().count();
            for a in s.saturating_sub(1)..=e {
                for b in [
                    a + 1,
                    a + 2,
                    a + 8,
                    a + 9,
                    (s + e) / 2,
                    e - 1,
                    e,
                    e + 1,
                    len,
                ] {
                    if b <= a || b > len {
                        continue;
                    }
                    let (all, secret) = sent(shape, a, b, 2, 2000, true);
                    let leaked = leaks(&secret, &all);
                    assert!(
                        leaked.is_empty(),
                        "shape {shape}, cut {a}..{b}: {leaked:?} sent in\n{all}"
                    );
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn build_never_panics(
            text in "(?s)[ \t\r\na-zé{}()\"'`#/*=:@-]{0,300}",
            a in 0usize..400, b in 0usize..400, budget in 0usize..2000, around in 0usize..20,
        ) {
            let rope = Rope::from_str(&text);
            let p = build(&ContextInput {
                action: Action::Review,
                file_name: "f",
                language_id: "x",
                text: &rope,
                selection: a..b,
                diagnostics: &["d".to_owned()],
                token_budget: budget,
                surrounding_lines: around,
                redact: true,
                definitions: &[],
            });
            prop_assert!(p.selection_lines.0 <= p.selection_lines.1);
            prop_assert!((p.selection_lines.1 as usize) < rope.len_lines());
        }

        #[test]
        fn no_eight_chars_of_a_secret_reach_the_prompt(
            shape in 0..SHAPES.len(), a in 0usize..200, b in 0usize..200,
            around in 0usize..4, budget in prop_oneof![Just(60usize), Just(400), Just(4000)],
            quote: bool,
        ) {
            let (all, secret) = sent(shape, a, b, around, budget, quote);
            let leaked = leaks(&secret, &all);
            prop_assert!(leaked.is_empty(), "{:?} sent in\n{}", leaked, all);
        }

        #[test]
        fn redacting_twice_changes_nothing_more(
            text in "(?s)(password = \"[a-z]{0,9}\"|AKIA[A-Z0-9]{16}|https://u:p@h|Bearer [a-z0-9]{20}|[ a-zA-Z0-9=:\"'\n]){0,40}",
        ) {
            let (once, _) = redact(&text);
            let (twice, _) = redact(&once);
            prop_assert_eq!(once, twice);
        }
    }
}
