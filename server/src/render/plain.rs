//! Markdown answers as plain text, for editors that declare they cannot render markdown.

/// `markdown` with its markup taken out: fences and heading marks dropped, emphasis and code
/// spans unwrapped, rules become a line of dashes. Code inside fences is kept as it is.
pub fn plain_text(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut in_fence = false;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            out.push_str(line);
        } else if trimmed == "---" || trimmed == "***" {
            out.push_str("----");
        } else {
            let text = trimmed.trim_start_matches('#');
            let text = if text.len() < trimmed.len() {
                text.trim_start()
            } else {
                line
            };
            out.push_str(&unwrap_inline(text));
        }
        out.push('\n');
    }
    if !markdown.ends_with('\n') {
        out.pop();
    }
    out
}

/// Drops `**`, `__` and backticks; single `*` or `_` stay (they are too often part of code).
fn unwrap_inline(line: &str) -> String {
    line.replace("**", "").replace("__", "").replace('`', "")
}

#[cfg(test)]
mod tests {
    use super::plain_text;

    #[test]
    fn markup_is_removed_and_code_kept() {
        let md = "## Fix\n**codetier review (Warning)**: the `sum` overflows\n\n---\n\n```rust\nlet x = a * b;\n```";
        assert_eq!(
            plain_text(md),
            "Fix\ncodetier review (Warning): the sum overflows\n\n----\n\nlet x = a * b;"
        );
        assert_eq!(plain_text("no markup\n"), "no markup\n");
        assert_eq!(plain_text(""), "");
    }
}
