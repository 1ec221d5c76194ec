//! The prompt templates, in one place and versioned: bump `TEMPLATE_VERSION` whenever a text here changes.

use crate::action::Action;

/// Part of every cache key: changing a template must not serve answers made for the old one.
pub const TEMPLATE_VERSION: u32 = 1;

/// The system prompt of an action.
pub fn system(action: Action) -> &'static str {
    match action {
        Action::Explain => EXPLAIN_SYSTEM,
        Action::Generate => GENERATE_SYSTEM,
        Action::Review => REVIEW_SYSTEM,
    }
}

/// The task, written after the code in the user message. `first` and `last` are the 1-based
/// lines of the selection.
pub fn task(action: Action, first: usize, last: usize) -> String {
    match action {
        Action::Explain => format!(
            "Explain the bug in the selected code (lines {first}-{last}).\n\
             Start with ONE line: a plain-text headline of at most 120 characters that names the \
             problem. Then explain in Markdown: what goes wrong, why, and when.\n\
             If you can propose a fix, add a heading `## Fix` followed by exactly one fenced code \
             block holding the corrected replacement for lines {first}-{last}, without line numbers."
        ),
        Action::Generate => format!(
            "The selected lines {first}-{last} are a signature, a comment or a stub. Write the \
             code they ask for; it replaces those lines.\n\
             Answer with only the code, in exactly one fenced code block: no explanation before \
             or after it, no line numbers. Keep the signature, and match the surrounding style."
        ),
        Action::Review => format!(
            "Review the selected lines {first}-{last} for bugs, security problems and clear \
             mistakes. Do not report style nitpicks unless they hide a bug.\n\
             Answer with a JSON array inside one ```json fenced block, one object per finding:\n\
             {{\"line\": <first line>, \"end_line\": <last line>, \"severity\": \
             \"error\"|\"warning\"|\"info\"|\"hint\", \"message\": \"<one or two sentences>\", \
             \"replacement\": \"<optional corrected code for lines line..end_line: whole lines, \
             indented as in the file>\"}}\n\
             Line numbers are the absolute numbers shown in the code above, between {first} and \
             {last}. Omit `replacement` when you have no exact fix. If there is nothing to \
             report, answer with []."
        ),
    }
}

const EXPLAIN_SYSTEM: &str = "You are a senior engineer helping a colleague inside their editor. \
You explain why a piece of code is wrong, precisely and briefly. You read the numbered code \
carefully, name the exact line and cause, and never invent code that is not shown. \
Line numbers in the prompt are for reference only.";

const GENERATE_SYSTEM: &str = "You are a senior engineer writing code inside a colleague's \
editor. You implement exactly what the selected signature, comment or stub asks for, in the \
file's language and style, using only what the surrounding code shows or the standard library \
offers. You answer with code only. Line numbers in the prompt are for reference only.";

const REVIEW_SYSTEM: &str = "You are a meticulous code reviewer inside a colleague's editor. \
You report real problems in the selected code (bugs, security issues, wrong edge cases, \
misleading names that hide bugs) as structured JSON findings that name exact line numbers. \
You report nothing rather than guess.";

/// Introduces the diagnostics the editor's other tools attached to the selection.
pub const DIAGNOSTICS_HEADING: &str = "Diagnostics reported by other tools:";
