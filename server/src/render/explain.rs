//! Explanations from a model's answer: a one-line headline, the full markdown, and an optional fix.

use serde::{Deserialize, Serialize};

use super::fence;

/// A parsed explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// One plain-text line for a diagnostic or a message, at most ~200 chars.
    pub headline: String,
    /// The whole answer (trimmed, `\n` line endings), for hover.
    pub markdown: String,
    /// Code replacing the selection, when the answer proposes one.
    pub fix: Option<String>,
}

const MAX_HEADLINE_CHARS: usize = 200;

/// Parses an explanation. The headline is the first line of prose stripped of markdown
/// markers (`#`, `**`, `>`, "Headline:"); the fix is the code block under a heading that says
/// "Fix", or else the last code block when the answer talks about a fix.
pub fn parse_explanation(output: &str) -> Explanation {
    let markdown = output.trim().replace("\r\n", "\n");
    let blocks = fence::blocks(&markdown);
    let in_block = |i: usize| blocks.iter().any(|b| b.open_line <= i && i <= b.close_line);
    let lines: Vec<&str> = markdown.lines().collect();

    let headline = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| !in_block(*i))
        .map(|(_, l)| strip_markers(l))
        .find(|l| !l.is_empty())
        .map(|l| cap(&l))
        .unwrap_or_else(|| "The model returned no explanation.".to_owned());

    let fix_heading = lines
        .iter()
        .enumerate()
        .position(|(i, l)| !in_block(i) && is_fix_heading(l));
    let fix_block = match fix_heading {
        Some(h) => blocks.iter().find(|b| b.open_line > h),
        None if mentions_fix(&markdown) => blocks.last(),
        None => None,
    };
    let fix = fix_block
        .map(|b| b.body.trim_end().to_owned())
        .filter(|b| !b.trim().is_empty());
    Explanation {
        headline,
        markdown,
        fix,
    }
}

/// Removes heading, quote, list and emphasis markers and a "Headline:"-style label.
fn strip_markers(line: &str) -> String {
    let mut s = line.trim().to_owned();
    loop {
        let before = s.clone();
        for prefix in ["#", ">", "- ", "* ", "**", "__"] {
            if let Some(rest) = s.strip_prefix(prefix) {
                s = rest.trim_start().to_owned();
            }
        }
        for suffix in ["**", "__"] {
            if let Some(rest) = s.strip_suffix(suffix) {
                s = rest.trim_end().to_owned();
            }
        }
        for label in ["headline:", "summary:", "tl;dr:", "tldr:"] {
            if s.len() >= label.len()
                && s.is_char_boundary(label.len())
                && s[..label.len()].eq_ignore_ascii_case(label)
            {
                s = s[label.len()..].trim_start().to_owned();
            }
        }
        if s == before {
            return s;
        }
    }
}

/// `## Fix`, `**Suggested fix:**`, `Fix:` — a short line that is a heading and names a fix.
fn is_fix_heading(line: &str) -> bool {
    let t = line.trim();
    let heading = t.starts_with('#')
        || (t.starts_with("**") && t.ends_with("**") && t.len() > 4)
        || (t.ends_with(':') && t.split_whitespace().count() <= 4);
    heading && t.chars().count() <= 80 && mentions_fix(t)
}

/// Whether the text uses the word "fix" (`fixed`, `fixes` count; `prefix`, `suffix` do not).
fn mentions_fix(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.match_indices("fix").any(|(at, _)| {
        !lower[..at]
            .chars()
            .next_back()
            .is_some_and(char::is_alphabetic)
    })
}

fn cap(s: &str) -> String {
    match s.char_indices().nth(MAX_HEADLINE_CHARS) {
        Some((at, _)) => format!("{}…", s[..at].trim_end()),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `output` parses to `headline` and `fix`; the markdown is always the trimmed answer.
    fn check(output: &str, headline: &str, fix: Option<&str>) {
        let e = parse_explanation(output);
        assert_eq!(e.headline, headline, "output:\n{output}");
        assert_eq!(e.fix.as_deref(), fix, "output:\n{output}");
        assert_eq!(e.markdown, output.trim().replace("\r\n", "\n"));
    }

    #[test]
    fn headline_and_fix_under_a_heading() {
        check(
            "Division by zero when `xs` is empty\n\n`xs.len()` is 0 for an empty slice.\n\n```rust\nsum / xs.len()\n```\n\n## Fix\n\n```rust\nif xs.is_empty() {\n    return 0;\n}\n```\n",
            "Division by zero when `xs` is empty",
            Some("if xs.is_empty() {\n    return 0;\n}"),
        );
    }

    #[test]
    fn markdown_markers_are_stripped_from_the_headline() {
        check("# Off-by-one in the loop bound\nbody", "Off-by-one in the loop bound", None);
        check("**Headline:** The lock is never released\n", "The lock is never released", None);
        check("\n\n> **Summary:** Race on `count`", "Race on `count`", None);
        check("Headline:\nThe real headline", "The real headline", None);
        check("```rust\nlet x = 1;\n```\nThen the prose", "Then the prose", None);
    }

    #[test]
    fn fix_headings_in_other_shapes_and_the_last_block_fallback() {
        check(
            "Bug\r\n\r\n**Suggested fix:**\r\n```py\r\nreturn a // b\r\n```\r\n",
            "Bug",
            Some("return a // b"),
        );
        check(
            "Null deref\nFix:\n~~~\nif p.is_null() { return; }\n~~~",
            "Null deref",
            Some("if p.is_null() { return; }"),
        );
        check(
            "Wrong operator\n```c\na = b\n```\nThis is fixed by comparing:\n```c\na == b\n```",
            "Wrong operator",
            Some("a == b"),
        );
        // A block with no fix mentioned is just a quote of the code; `prefix` is not "fix".
        check("Bad prefix handling\n```rust\nx\n```", "Bad prefix handling", None);
        // A truncated answer with the fix block cut off still yields what is there.
        check("Overflow\n## Fix\n```rust\nlet y = x.checked_add(1)", "Overflow", Some("let y = x.checked_add(1)"));
    }

    #[test]
    fn empty_and_long_answers() {
        check("", "The model returned no explanation.", None);
        let e = parse_explanation(&"é".repeat(500));
        assert_eq!(e.headline.chars().count(), MAX_HEADLINE_CHARS + 1);
    }
}
