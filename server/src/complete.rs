//! Inline completions without the protocol: the text around the cursor, the chat and fill-in-the-middle prompts, the streamed ask that stops once its scope is complete, post-processing and typeahead.
//!
//! The LSP layer drives it (`lsp/handlers/inline_completion.rs`): it debounces, cancels stale
//! requests and enforces `completion.budget_ms`; the engine prepares the prompt under the same
//! privacy rules as the actions and caches the suggestion.

mod pace;
mod post;
mod typeahead;

use std::ops::Range;

use ropey::Rope;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::provider::{FimPrompt, Message, Role, Upstream, CHARS_PER_TOKEN};
use crate::router::{Event, RouteError, RouteRequest, Router};

pub use pace::Pace;
pub use post::{finish, scope_done};
pub use typeahead::Shown;

/// The name completions are booked and cached under.
pub const ACTION: &str = "complete";
/// Version of the completion prompts, part of the cache key.
pub const TEMPLATE_VERSION: u32 = 1;
/// Share of the character budget that goes to the text before the cursor.
const PREFIX_SHARE: f64 = 0.75;
/// Characters of the text after the cursor kept for post-processing (suffix overlap, brackets).
const AFTER_CHARS: usize = 2000;
/// Lines before the cursor's line kept for post-processing (repeats).
const BEFORE_LINES: usize = 20;

/// How far a suggestion may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The cursor is mid-line (text follows it on its line): the rest of the line only.
    Line,
    /// Nothing follows the cursor on its line: up to the end of the block, whose lines are at
    /// least `indent` wide (the cursor line's indentation).
    Block { indent: usize },
}

/// What post-processing needs to know of the text around the cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Surroundings {
    pub scope: Scope,
    /// The cursor's line up to the cursor.
    pub line_before: String,
    /// The cursor's line after the cursor (without the line break).
    pub line_after: String,
    /// The document after the cursor, its first [`AFTER_CHARS`] characters.
    pub after: String,
    /// The lines before the cursor's line, the last [`BEFORE_LINES`] of them.
    pub before_lines: Vec<String>,
}

/// Reads the surroundings of `cursor` (a char offset, clamped) in `text`.
pub fn surroundings(text: &Rope, cursor: usize) -> Surroundings {
    let cursor = cursor.min(text.len_chars());
    let line = text.char_to_line(cursor);
    let line_start = text.line_to_char(line);
    let line_end = line_start + line_len(text, line);
    let line_before = text.slice(line_start..cursor).to_string();
    let line_after = text.slice(cursor..line_end.max(cursor)).to_string();
    let after_end = (cursor + AFTER_CHARS).min(text.len_chars());
    let before_lines = (line.saturating_sub(BEFORE_LINES)..line)
        .map(|l| {
            let start = text.line_to_char(l);
            text.slice(start..start + line_len(text, l)).to_string()
        })
        .collect();
    let scope = if line_after.trim().is_empty() {
        let indent = if line_before.trim().is_empty() {
            post::indent_of(&line_before)
        } else {
            let whole = text.slice(line_start..line_end).to_string();
            post::indent_of(&whole)
        };
        Scope::Block { indent }
    } else {
        Scope::Line
    };
    Surroundings {
        scope,
        line_before,
        line_after,
        after: text.slice(cursor..after_end).to_string(),
        before_lines,
    }
}

/// Chars of line `line` without its line break.
fn line_len(text: &Rope, line: usize) -> usize {
    let slice = text.line(line);
    let mut len = slice.len_chars();
    while len > 0 && matches!(slice.char(len - 1), '\n' | '\r') {
        len -= 1;
    }
    len
}

/// The char ranges sent before and after the cursor: within `token_budget` tokens (about
/// [`CHARS_PER_TOKEN`] characters each), three quarters before the cursor, and cut at line
/// starts (before) and line ends (after) when a line boundary lies inside the budget.
pub fn window(text: &Rope, cursor: usize, token_budget: usize) -> (Range<usize>, Range<usize>) {
    let len = text.len_chars();
    let cursor = cursor.min(len);
    let chars = token_budget.saturating_mul(CHARS_PER_TOKEN);
    let before = (chars as f64 * PREFIX_SHARE) as usize;
    let after = chars.saturating_sub(before);
    let mut start = cursor.saturating_sub(before);
    if start > 0 {
        // From the next line start, when there is one before the cursor.
        let next = text.line_to_char(text.char_to_line(start) + 1);
        if next <= cursor {
            start = next;
        }
    }
    let mut end = (cursor + after).min(len);
    if end < len {
        let line_start = text.line_to_char(text.char_to_line(end));
        if line_start > cursor {
            end = line_start;
        }
    }
    (start..cursor, cursor..end)
}

/// One completion to ask for, as the engine builds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    pub tier: String,
    pub model: String,
    /// `fim` mode: the request goes to `/completions`.
    pub fim: Option<FimPrompt>,
    /// `chat` mode: the messages (empty in `fim` mode).
    pub messages: Vec<Message>,
    pub max_tokens: u32,
    pub around: Surroundings,
    /// Secrets masked in what is sent.
    pub redactions: usize,
    /// What the cache key is made of: the mode and everything sent.
    pub cache_text: String,
}

/// The masked text before and after the cursor, as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub prefix: String,
    pub suffix: String,
    pub redactions: usize,
}

/// Builds the request for `sent` on the configured tier and mode.
pub fn prepare(
    config: &Config,
    file_name: &str,
    language_id: &str,
    sent: Sent,
    around: Surroundings,
) -> Prepared {
    let c = &config.completion;
    let model = config
        .tiers
        .get(&c.tier)
        .map(|t| t.model.clone())
        .unwrap_or_default();
    let (fim, messages, cache_text) = if c.mode == "fim" {
        let cache_text = format!("fim\u{0}{}\u{0}{}", sent.prefix, sent.suffix);
        let fim = FimPrompt {
            prompt: sent.prefix,
            suffix: sent.suffix,
        };
        (Some(fim), Vec::new(), cache_text)
    } else {
        let messages = chat_messages(file_name, language_id, &sent, around.scope);
        let cache_text = serde_json::to_string(&messages).unwrap_or_default();
        (None, messages, cache_text)
    };
    Prepared {
        tier: c.tier.clone(),
        model,
        fim,
        messages,
        max_tokens: c.max_tokens,
        around,
        redactions: sent.redactions,
        cache_text,
    }
}

/// Where the cursor is in the chat prompt.
pub const CURSOR_MARKER: &str = "<CURSOR>";

/// The chat prompt: the file's text before and after the cursor, and the request for the
/// missing text only.
fn chat_messages(file_name: &str, language_id: &str, sent: &Sent, scope: Scope) -> Vec<Message> {
    let reach = match scope {
        Scope::Line => "Complete the current line only.",
        Scope::Block { .. } => "Complete at most the current statement or block.",
    };
    let system = format!(
        "You are a code completion engine. Reply with only the text to insert at {CURSOR_MARKER}: \
         no explanation, no code fence, nothing that is already before or after it. {reach} \
         Reply with nothing if nothing fits."
    );
    let user = format!(
        "File: {file_name} ({language_id})\n\n{}{CURSOR_MARKER}{}",
        sent.prefix, sent.suffix
    );
    vec![
        Message {
            role: Role::System,
            content: system,
        },
        Message {
            role: Role::User,
            content: user,
        },
    ]
}

/// What one ask gave.
#[derive(Clone, Debug, PartialEq)]
pub struct Asked {
    /// The suggestion after post-processing; `None` when nothing was worth showing.
    pub text: Option<String>,
    /// The upstream request was dropped once the scope was complete.
    pub stopped_early: bool,
}

/// Asks `router` for `prepared`, reading the stream until the suggestion is complete for its
/// scope; then the request is dropped, which closes the upstream connection (and books what
/// arrived).
pub async fn ask<U: Upstream>(
    router: &Router<U>,
    prepared: &Prepared,
) -> Result<Asked, RouteError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let request = RouteRequest {
        tier: prepared.tier.clone(),
        messages: prepared.messages.clone(),
        max_tokens: Some(prepared.max_tokens),
        fim: prepared.fim.clone(),
        action: Some(ACTION),
    };
    let mut asking = Box::pin(router.ask(request, Some(tx)));
    let mut streamed = String::new();
    let (raw, stopped_early) = loop {
        tokio::select! {
            biased;
            Some(event) = rx.recv() => {
                if let Event::Token(piece) = event {
                    streamed.push_str(&piece);
                    if scope_done(&streamed, &prepared.around) {
                        break (streamed, true);
                    }
                }
            }
            answer = &mut asking => break (answer?.answer.text, false),
        }
    };
    drop(asking);
    Ok(Asked {
        text: finish(&raw, &prepared.around),
        stopped_early,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_window_meets_at_the_cursor_within_the_budget(
            text in "[a-z \n]{0,300}",
            at in 0usize..320,
            budget in 1usize..60,
        ) {
            let rope = Rope::from_str(&text);
            let cursor = at.min(rope.len_chars());
            let (before, after) = window(&rope, cursor, budget);
            prop_assert_eq!(before.end, cursor);
            prop_assert_eq!(after.start, cursor);
            let chars = budget * CHARS_PER_TOKEN;
            prop_assert!(before.len() + after.len() <= chars, "{before:?} {after:?} over {chars}");
            prop_assert!(after.end <= rope.len_chars());
        }
    }

    #[test]
    fn the_window_keeps_whole_lines_within_the_budget() {
        let text: String = (0..100).map(|i| format!("line {i:03}\n")).collect();
        let rope = Rope::from_str(&text);
        let cursor = text.find("line 050").unwrap() + 4;
        // 10 tokens: 30 chars before, 10 after.
        let (before, after) = window(&rope, cursor, 10);
        let shown = rope.slice(before.clone()).to_string();
        assert_eq!(shown, "line 048\nline 049\nline");
        assert_eq!(rope.slice(after).to_string(), " 050\n");
        // At the start and end of the document nothing is cut.
        let (before, _) = window(&rope, 3, 10);
        assert_eq!(before, 0..3);
        let (_, after) = window(&rope, rope.len_chars(), 10);
        assert!(after.is_empty());
    }

    #[test]
    fn chat_prompts_mark_the_cursor_and_fim_sends_both_sides() {
        let sent = Sent {
            prefix: "fn a() {\n    ".into(),
            suffix: "\n}\n".into(),
            redactions: 0,
        };
        let around = surroundings(&Rope::from_str("fn a() {\n    \n}\n"), 13);
        let mut config = Config::default();
        let chat = prepare(&config, "src/a.rs", "rust", sent.clone(), around.clone());
        assert!(chat.fim.is_none());
        assert_eq!(chat.model, "deepseek-v4-flash");
        assert!(chat.messages[1]
            .content
            .ends_with("fn a() {\n    <CURSOR>\n}\n"));
        assert!(chat.messages[0].content.contains("statement or block"));
        config.completion.mode = "fim".into();
        let fim = prepare(&config, "src/a.rs", "rust", sent, around);
        assert!(fim.messages.is_empty());
        let prompt = fim.fim.as_ref().unwrap();
        assert_eq!(
            (prompt.prompt.as_str(), prompt.suffix.as_str()),
            ("fn a() {\n    ", "\n}\n")
        );
        assert_ne!(fim.cache_text, chat.cache_text);
    }
}
