//! Review findings from a model's answer, parsed tolerantly: JSON array or object, JSON lines, fenced or bare.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{code::extract_code, fence};

/// How bad a finding is; serialised lowercase, as the review prompt asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
    Hint,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
            Severity::Hint => "hint",
        }
    }

    /// Maps the many words models use: critical/high → Error, medium/warn → Warning,
    /// low/note/info → Info, style/hint/nit → Hint; LSP's numbers 1–4 too.
    pub fn parse_loose(word: &str) -> Option<Severity> {
        let w = word.trim().to_ascii_lowercase();
        let has = |keys: &[&str]| keys.iter().any(|k| w.contains(k));
        match w.as_str() {
            "1" => return Some(Severity::Error),
            "2" => return Some(Severity::Warning),
            "3" => return Some(Severity::Info),
            "4" => return Some(Severity::Hint),
            _ => {}
        }
        if has(&[
            "crit", "high", "error", "fatal", "severe", "blocker", "major", "bug",
        ]) {
            Some(Severity::Error)
        } else if has(&["med", "warn", "moderate"]) {
            Some(Severity::Warning)
        } else if has(&["low", "note", "info", "minor"]) {
            Some(Severity::Info)
        } else if has(&["style", "hint", "nit", "suggest", "trivial"]) {
            Some(Severity::Hint)
        } else {
            None
        }
    }
}

/// One review finding on 0-based, inclusive document lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub start_line: u32,
    pub end_line: u32,
    pub severity: Severity,
    pub message: String,
    /// Replacement text for lines `start_line..=end_line`, when the model proposed one.
    pub replacement: Option<String>,
    /// `false` when the proposed replacement did not parse where it would stand (it was then
    /// dropped; the finding stays), `true` when it did or there was none, `None` when nothing
    /// was checked (no grammar, `--no-verify`).
    #[serde(default)]
    pub verified: Option<bool>,
}

/// The chars a finding covers in the reviewed `text`: its lines, within the `selection` that
/// was reviewed, without the last line's terminator. Its replacement replaces exactly these.
pub fn finding_range(
    text: &ropey::Rope,
    selection: &std::ops::Range<usize>,
    finding: &Finding,
) -> std::ops::Range<usize> {
    let lines = text.len_lines().max(1);
    let first = (finding.start_line as usize).min(lines - 1);
    let last = (finding.end_line as usize).clamp(first, lines - 1);
    let start = text.line_to_char(first).max(selection.start);
    let line = text.line(last);
    let mut end = text.line_to_char(last) + line.len_chars();
    while end > start && matches!(text.char(end - 1), '\n' | '\r') {
        end -= 1;
    }
    start..end.min(selection.end).max(start)
}

/// A message longer than this is cut (a whole answer that failed to parse, say).
const MAX_MESSAGE_CHARS: usize = 2000;

/// Parses review findings from `output`. `selection_lines` are the 0-based, inclusive lines
/// the review covered; the model's absolute 1-based line numbers are converted to 0-based and
/// clamped into them.
///
/// Accepted: a JSON array, an object holding a `findings` (or `issues`, `problems`) array, a
/// single finding object, JSON lines; fenced or bare, trailing commas forgiven. An empty array
/// means no findings. Anything else becomes one Info finding over the selection carrying the
/// answer's text, so the user still sees what the model said.
pub fn parse_findings(output: &str, selection_lines: (u32, u32)) -> Vec<Finding> {
    let (a, b) = selection_lines;
    let sel = (a.min(b), a.max(b));
    let text = output.trim();
    if text.is_empty() {
        return vec![fallback("The model's answer was empty.", sel)];
    }
    for candidate in candidates(text) {
        let parsed = serde_json::from_str::<Value>(&candidate)
            .or_else(|_| serde_json::from_str::<Value>(&without_trailing_commas(&candidate)));
        if let Some(found) = parsed.ok().and_then(|v| from_value(&v, sel)) {
            return found;
        }
    }
    let lines: Vec<Finding> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim().trim_end_matches(',');
            let v: Value = serde_json::from_str(l).ok()?;
            finding(v.as_object()?, sel)
        })
        .collect();
    if !lines.is_empty() {
        return lines;
    }
    vec![fallback(text, sel)]
}

/// Texts that may hold the JSON, most specific first: fenced bodies, the whole answer, and
/// the span from the first `[` (or `{`) to the last `]` (or `}`).
fn candidates(text: &str) -> Vec<Cow<'_, str>> {
    let mut out: Vec<Cow<'_, str>> = fence::blocks(text)
        .into_iter()
        .filter(|b| !b.body.trim().is_empty())
        .map(|b| Cow::Owned(b.body))
        .collect();
    out.push(Cow::Borrowed(text));
    for (open, close) in [('[', ']'), ('{', '}')] {
        if let (Some(s), Some(e)) = (text.find(open), text.rfind(close)) {
            if s < e {
                out.push(Cow::Borrowed(&text[s..=e]));
            }
        }
    }
    out
}

/// Removes commas directly before `]` or `}` outside strings.
fn without_trailing_commas(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    let chars: Vec<char> = json.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if c == '"' {
            in_string = true;
        } else if c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some(']' | '}')) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Findings from a parsed value, or `None` when it does not have a findings shape.
fn from_value(v: &Value, sel: (u32, u32)) -> Option<Vec<Finding>> {
    match v {
        Value::Array(items) if items.is_empty() => Some(Vec::new()),
        Value::Array(items) => {
            let found: Vec<Finding> = items
                .iter()
                .filter_map(|item| match item {
                    Value::Object(o) => finding(o, sel),
                    Value::String(s) if !s.trim().is_empty() => Some(Finding {
                        start_line: sel.0,
                        end_line: sel.1,
                        severity: Severity::Warning,
                        message: cap(s.trim()),
                        replacement: None,
                        verified: None,
                    }),
                    _ => None,
                })
                .collect();
            (!found.is_empty()).then_some(found)
        }
        Value::Object(o) => {
            let list = ["findings", "issues", "problems", "results", "comments"]
                .iter()
                .find_map(|k| o.get(*k).filter(|v| v.is_array()));
            match list {
                Some(list) => from_value(list, sel),
                None => finding(o, sel).map(|f| vec![f]),
            }
        }
        _ => None,
    }
}

fn finding(o: &Map<String, Value>, sel: (u32, u32)) -> Option<Finding> {
    let message = first_string(
        o,
        &[
            "message",
            "msg",
            "description",
            "text",
            "issue",
            "problem",
            "explanation",
            "title",
            "comment",
        ],
    )?;
    let start = first_line(
        o,
        &[
            "line",
            "start_line",
            "startLine",
            "line_start",
            "start",
            "from",
            "line_number",
            "lines",
        ],
    );
    let end = first_line(o, &["end_line", "endLine", "line_end", "end", "to"]);
    let (start_line, end_line) = match (start, end) {
        (None, _) => sel,
        (Some((s, range_end)), end) => {
            let s = clamp(s, sel);
            let e = end
                .map(|(e, _)| e)
                .or(range_end)
                .map_or(s, |e| clamp(e, sel));
            (s, e.max(s))
        }
    };
    let severity = ["severity", "level", "priority", "type", "kind", "category"]
        .iter()
        .filter_map(|k| match o.get(*k)? {
            Value::String(s) => Severity::parse_loose(s),
            Value::Number(n) => Severity::parse_loose(&n.to_string()),
            _ => None,
        })
        .next()
        .unwrap_or(Severity::Warning);
    let replacement = first_string(
        o,
        &[
            "replacement",
            "fix",
            "suggestion",
            "suggested_code",
            "suggestedCode",
            "corrected_code",
            "code",
        ],
    )
    .map(|r| {
        if r.contains("```") {
            extract_code(&r)
        } else {
            r
        }
    });
    Some(Finding {
        start_line,
        end_line,
        severity,
        message: cap(message.trim()),
        replacement,
        verified: None,
    })
}

/// The first of `keys` holding a non-blank string (untrimmed: replacement code keeps its indentation).
fn first_string(o: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .filter_map(|k| o.get(*k)?.as_str())
        .find(|s| !s.trim().is_empty())
        .map(str::to_owned)
}

/// A 1-based line and an optional range end from a number, `"12"`, `"12-14"`, `"L12"` or `[12, 14]`.
fn first_line(o: &Map<String, Value>, keys: &[&str]) -> Option<(i64, Option<i64>)> {
    keys.iter().find_map(|k| line_value(o.get(*k)?))
}

fn line_value(v: &Value) -> Option<(i64, Option<i64>)> {
    match v {
        // `as` saturates for floats out of range, which the clamp then bounds.
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(|n| (n, None)),
        Value::String(s) => {
            let mut numbers = s
                .split(|c: char| !c.is_ascii_digit())
                .filter(|p| !p.is_empty())
                .filter_map(|p| p.parse::<i64>().ok());
            let first = numbers.next()?;
            Some((first, numbers.next()))
        }
        Value::Array(items) => {
            let first = line_value(items.first()?)?.0;
            Some((first, items.get(1).and_then(line_value).map(|v| v.0)))
        }
        _ => None,
    }
}

/// A 1-based line number as a 0-based line inside the selection.
fn clamp(line: i64, sel: (u32, u32)) -> u32 {
    let zero_based = line.saturating_sub(1);
    let clamped = zero_based.clamp(i64::from(sel.0), i64::from(sel.1));
    u32::try_from(clamped).unwrap_or(sel.1)
}

fn fallback(text: &str, sel: (u32, u32)) -> Finding {
    Finding {
        start_line: sel.0,
        end_line: sel.1,
        severity: Severity::Info,
        message: cap(text),
        replacement: None,
        verified: None,
    }
}

fn cap(s: &str) -> String {
    match s.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `output` for a selection on 0-based lines 9..=19 (1-based 10-20) and compares a
    /// compact rendering: `start-end severity message [=> replacement]`, one finding a line.
    fn check(output: &str, expected: &str) {
        let got: Vec<String> = parse_findings(output, (9, 19))
            .iter()
            .map(|f| {
                let mut s = format!(
                    "{}-{} {} {}",
                    f.start_line,
                    f.end_line,
                    f.severity.as_str(),
                    f.message
                );
                if let Some(r) = &f.replacement {
                    s.push_str(&format!(" => {r:?}"));
                }
                s
            })
            .collect();
        assert_eq!(got.join("\n"), expected.trim(), "output:\n{output}");
    }

    #[test]
    fn json_array_in_a_fence() {
        check(
            r#"Findings:
```json
[
  {"line": 12, "end_line": 13, "severity": "error", "message": "Division by zero when xs is empty", "replacement": "    if xs.is_empty() { return 0; }\n"},
  {"line": 15, "severity": "hint", "message": "Name could be clearer"}
]
```"#,
            r#"
11-12 error Division by zero when xs is empty => "    if xs.is_empty() { return 0; }\n"
14-14 hint Name could be clearer"#,
        );
    }

    #[test]
    fn object_with_findings_bare_and_loose_severities() {
        check(
            r#"{"findings": [
              {"line": "14", "severity": "CRITICAL", "message": "a"},
              {"start_line": 11, "endLine": 12, "level": "medium", "msg": "b"},
              {"line": "L16-18", "priority": "low", "description": "c"},
              {"lines": [17, 19], "severity": "style", "issue": "d"},
              {"line": 10, "severity": "banana", "message": "e", "fix": "```rust\nlet x = 1;\n```"},
              {"line": 11, "severity": 1, "message": "f"},
            ]}"#,
            r#"
13-13 error a
10-11 warning b
15-17 info c
16-18 hint d
9-9 warning e => "let x = 1;"
10-10 error f"#,
        );
    }

    #[test]
    fn line_numbers_are_clamped_into_the_selection() {
        check(
            r#"[{"line": 1, "message": "before"}, {"line": 500, "end_line": 2, "message": "after"}, {"message": "no line"}, {"line": -4, "end_line": 1e99, "message": "wild"}]"#,
            r#"
9-9 warning before
19-19 warning after
9-19 warning no line
9-19 warning wild"#,
        );
    }

    #[test]
    fn json_lines_and_prose_wrapped_json() {
        check(
            "{\"line\": 10, \"severity\": \"warning\", \"message\": \"x\"}\n{\"line\": 11, \"severity\": \"note\", \"message\": \"y\"}\n",
            "9-9 warning x\n10-10 info y",
        );
        check(
            "Sure, here you go: [{\"line\": 20, \"severity\": \"high\", \"message\": \"z\"}] Hope it helps.",
            "19-19 error z",
        );
        check(
            r#"{"line": 13, "message": "single object"}"#,
            "12-12 warning single object",
        );
        check(
            r#"["plain string finding"]"#,
            "9-19 warning plain string finding",
        );
    }

    #[test]
    fn empty_results_mean_no_findings() {
        check("[]", "");
        check("```json\n[]\n```", "");
        check(r#"{"findings": []}"#, "");
    }

    #[test]
    fn unparseable_output_becomes_one_info_finding() {
        check(
            "  The code looks fine to me.\nNo issues found.  ",
            "9-19 info The code looks fine to me.\nNo issues found.",
        );
        check("[1, 2, 3]", "9-19 info [1, 2, 3]");
        check(
            "```json\n[{\"line\": 3, \"message\": \"cut off",
            "9-19 info ```json\n[{\"line\": 3, \"message\": \"cut off",
        );
        check("", "9-19 info The model's answer was empty.");
        let long = "word ".repeat(2000);
        let f = parse_findings(&long, (0, 0));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].message.chars().count(), MAX_MESSAGE_CHARS + 1);
        // A reversed selection is ordered.
        assert_eq!(
            parse_findings("[{\"line\": 3, \"message\": \"m\"}]", (5, 1))[0].start_line,
            2
        );
    }

    #[test]
    fn severity_serialises_lowercase() {
        let json = serde_json::to_string(&Severity::Warning).unwrap_or_default();
        assert_eq!(json, "\"warning\"");
    }
}
