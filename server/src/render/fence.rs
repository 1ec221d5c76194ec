//! Markdown fenced code blocks in model output, tolerant of indentation, CRLF and a missing closing fence.

/// One fenced block; line numbers index `text.lines()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    /// The info string's first word (the language), possibly empty.
    pub lang: String,
    /// The lines between the fences, joined with `\n`, without a trailing newline.
    pub body: String,
    pub open_line: usize,
    /// The closing fence's line, or the last line when the answer was cut off.
    pub close_line: usize,
}

/// All fenced blocks (```` ``` ```` or `~~~`, three or more) in order. A block left open at the
/// end of a truncated answer runs to the end of the text.
pub(crate) fn blocks(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some((marker, len, indent, info)) = opener(lines[i]) else {
            i += 1;
            continue;
        };
        let open_line = i;
        let mut body = Vec::new();
        i += 1;
        let mut close_line = lines.len().saturating_sub(1);
        while i < lines.len() {
            if is_closer(lines[i], marker, len) {
                close_line = i;
                break;
            }
            body.push(strip_indent(lines[i], indent));
            i += 1;
        }
        out.push(Block {
            lang: info.split_whitespace().next().unwrap_or("").to_owned(),
            body: body.join("\n"),
            open_line,
            close_line,
        });
        i = close_line + 1;
    }
    out
}

/// `(fence char, fence length, indentation, info string)` when `line` opens a fence.
fn opener(line: &str) -> Option<(char, usize, usize, &str)> {
    let trimmed = line.trim_start();
    let indent = line.len() - trimmed.len();
    let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = trimmed.chars().take_while(|c| *c == marker).count();
    if len < 3 {
        return None;
    }
    // `len` counts one-byte chars, so it is a byte offset too.
    let info = trimmed[len..].trim();
    if marker == '`' && info.contains('`') {
        return None;
    }
    Some((marker, len, indent, info))
}

fn is_closer(line: &str, marker: char, len: usize) -> bool {
    let t = line.trim();
    t.chars().count() >= len && t.chars().all(|c| c == marker)
}

/// Removes up to `indent` leading spaces, as CommonMark does for an indented fence.
fn strip_indent(line: &str, indent: usize) -> &str {
    let spaces = line.bytes().take(indent).take_while(|b| *b == b' ').count();
    &line[spaces..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_blocks_with_languages_and_unclosed_tails() {
        let text = "Intro\r\n```rust\r\nfn a() {}\r\n```\r\ntext\r\n  ~~~~\r\n  b\r\n   c\r\n  ~~~~\r\n```py\r\nd";
        let got = blocks(text);
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].lang.as_str(), got[0].body.as_str()), ("rust", "fn a() {}"));
        assert_eq!((got[0].open_line, got[0].close_line), (1, 3));
        assert_eq!((got[1].lang.as_str(), got[1].body.as_str()), ("", "b\n c"));
        assert_eq!((got[2].lang.as_str(), got[2].body.as_str()), ("py", "d"));
        assert!(blocks("inline ```code``` only").is_empty());
        assert!(blocks("").is_empty());
    }
}
