//! The result of a review run, its exit code, its text and JSON renderings, and the escaping every text output of the CLI goes through.

use serde_json::{json, Value};

use super::files::Skip;
use super::{exit, FailOn};
use crate::render::{Finding, Severity};

/// What happened to one reviewed file.
#[derive(Clone, Debug, Default)]
pub struct FileReport {
    pub path: String,
    pub tier: String,
    /// Models that answered (more than one after a fallback), in order of first use.
    pub models: Vec<String>,
    /// Sum over its requests; `None` when a price is unknown.
    pub cost_usd: Option<f64>,
    /// Some of its cost rests on estimated tokens (the provider reported no usage).
    pub cost_estimated: bool,
    /// Every chunk was answered from the cache.
    pub cached: bool,
    pub chunks: usize,
    pub findings: Vec<Finding>,
    /// Set when a request for this file failed: the message and its exit code.
    pub error: Option<(String, u8)>,
}

/// Everything a review run produced, in the order the files were given.
#[derive(Clone, Debug)]
pub struct ReviewReport {
    pub files: Vec<FileReport>,
    pub skipped: Vec<Skip>,
    pub notes: Vec<String>,
    pub fail_on: FailOn,
}

/// What `escape` does with line breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breaks {
    /// Multi-line text (a model's message, an answer): keep `\n` and tabs; `\r\n` becomes `\n`.
    Keep,
    /// One-line fields (a file name, an error message): every control character is escaped.
    Escape,
}

/// Makes text from a file name or a model safe to print as CLI text output: nothing in it can
/// forge a line, move the cursor, colour the terminal or speak to the CI runner reading the log.
///
/// - Control characters (C0, DEL, C1 — ESC and CSI among them) and the Unicode characters that
///   reorder or break lines (bidi embeddings, overrides and isolates, U+2028/U+2029) are written
///   as `\u{1b}`; `\n`, `\r` and `\t` as those two characters, except line breaks and tabs
///   kept by `Breaks::Keep`. A lone `\r` is always escaped: it would overwrite the line.
/// - A line whose first non-blank characters are `::` (a GitHub Actions workflow command such as
///   `::error file=...::`) gets a backslash before them, and so does the `[` of `##[` (the
///   runner's older command form, recognised anywhere in a line).
///
/// Backslashes are left alone, so code stays readable. JSON and SARIF output never go through
/// this: they are exact.
pub fn escape(text: &str, breaks: Breaks) -> String {
    let mut out = String::with_capacity(text.len());
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        let line = match breaks {
            Breaks::Keep => line.strip_suffix('\r').unwrap_or(line),
            Breaks::Escape => line,
        };
        let blank = line.len() - line.trim_start_matches(char::is_whitespace).len();
        let (indent, rest) = line.split_at(blank);
        escape_chars(indent, breaks, &mut out);
        if rest.starts_with("::") {
            out.push('\\');
        }
        escape_chars(&rest.replace("##[", "##\\["), breaks, &mut out);
        if lines.peek().is_some() {
            match breaks {
                Breaks::Keep => out.push('\n'),
                Breaks::Escape => out.push_str("\\n"),
            }
        }
    }
    out
}

fn escape_chars(text: &str, breaks: Breaks, out: &mut String) {
    for c in text.chars() {
        match c {
            '\t' if breaks == Breaks::Keep => out.push(c),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() || reorders_or_breaks(c) => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
}

/// Bidi formatting characters ("Trojan Source") and the Unicode line and paragraph separators.
fn reorders_or_breaks(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

pub fn severity_name(s: &Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
        Severity::Hint => "hint",
    }
}

fn rank(s: &Severity) -> u8 {
    match s {
        Severity::Error => 3,
        Severity::Warning => 2,
        Severity::Info => 1,
        Severity::Hint => 0,
    }
}

/// Whether a finding of severity `s` fails the run under `fail_on`.
pub fn fails(s: &Severity, fail_on: FailOn) -> bool {
    match fail_on {
        FailOn::Never => false,
        FailOn::Error => rank(s) >= 3,
        FailOn::Warning => rank(s) >= 2,
        FailOn::Info => rank(s) >= 1,
    }
}

impl ReviewReport {
    /// 3 when a provider request failed, 2 for any other failure, 4 when the review did not
    /// cover what it was given (see `incomplete`), 1 when a finding reaches `--fail-on`, else 0.
    /// A failure or a gap outranks findings: a green run must mean the code was reviewed.
    pub fn exit_code(&self) -> u8 {
        let failures: Vec<u8> = self
            .files
            .iter()
            .filter_map(|f| f.error.as_ref().map(|e| e.1))
            .collect();
        if failures.contains(&exit::PROVIDER) {
            return exit::PROVIDER;
        }
        if !failures.is_empty() {
            return exit::USAGE;
        }
        if self.incomplete().is_some() {
            return exit::INCOMPLETE;
        }
        let failing = self
            .findings()
            .any(|(_, f)| fails(&f.severity, self.fail_on));
        if failing {
            exit::FINDINGS
        } else {
            exit::OK
        }
    }

    /// Every finding with its file, files in order, findings by line.
    pub fn findings(&self) -> impl Iterator<Item = (&FileReport, &Finding)> {
        self.files
            .iter()
            .flat_map(|file| file.findings.iter().map(move |f| (file, f)))
    }

    pub fn total_cost(&self) -> f64 {
        // A fold from +0.0: an empty `sum` of floats is -0.0, which JSON would print as such.
        self.files
            .iter()
            .filter_map(|f| f.cost_usd)
            .fold(0.0, |total, c| total + c)
    }

    /// Whether the total cost rests on estimated tokens anywhere.
    pub fn cost_estimated(&self) -> bool {
        self.files.iter().any(|f| f.cost_estimated)
    }

    fn count(&self, s: &Severity) -> usize {
        self.findings().filter(|(_, f)| &f.severity == s).count()
    }

    /// One line for stderr: what was reviewed, what was found, what it cost.
    pub fn summary(&self) -> String {
        let reviewed = self.files.iter().filter(|f| f.error.is_none()).count();
        let cached = self
            .files
            .iter()
            .filter(|f| f.error.is_none() && f.cached)
            .count();
        let failed = self.files.len() - reviewed;
        let counts: Vec<String> = [
            Severity::Error,
            Severity::Warning,
            Severity::Info,
            Severity::Hint,
        ]
        .iter()
        .map(|s| (self.count(s), severity_name(s)))
        .filter(|(n, _)| *n > 0)
        .map(|(n, name)| format!("{n} {name}{}", if n == 1 { "" } else { "s" }))
        .collect();
        let found = if counts.is_empty() {
            "no findings".to_owned()
        } else {
            counts.join(", ")
        };
        let mut line = format!(
            "codetier: reviewed {reviewed} file{} ({cached} from cache): {found}; cost {} ({})",
            if reviewed == 1 { "" } else { "s" },
            crate::usage::format_usd(self.total_cost(), 6, self.cost_estimated()),
            crate::usage::COST_BASIS
        );
        if failed > 0 {
            line.push_str(&format!("; {failed} failed"));
        }
        if !self.skipped.is_empty() {
            line.push_str(&format!("; {} skipped", self.skipped.len()));
        }
        line
    }

    /// Why the review did not cover what it was given, when it did not: `--max-cost` stopped
    /// it before the end, or every file was skipped.
    pub fn incomplete(&self) -> Option<String> {
        let not_started = self
            .skipped
            .iter()
            .filter(|s| s.reason.starts_with("not started:"))
            .count();
        if not_started > 0 {
            return Some(format!(
                "incomplete: --max-cost stopped the review before {not_started} file(s) (exit {})",
                exit::INCOMPLETE
            ));
        }
        if self.files.is_empty() && !self.skipped.is_empty() {
            return Some(format!(
                "nothing was reviewed: all {} file(s) were skipped (exit {})",
                self.skipped.len(),
                exit::INCOMPLETE
            ));
        }
        None
    }

    /// Lines for stderr about files not reviewed and why.
    pub fn stderr_notes(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .skipped
            .iter()
            .map(|s| {
                format!(
                    "codetier: skipped {}: {}",
                    escape(&s.path, Breaks::Escape),
                    escape(&s.reason, Breaks::Escape)
                )
            })
            .collect();
        out.extend(self.files.iter().filter_map(|f| {
            f.error.as_ref().map(|e| {
                format!(
                    "codetier: {}: {}",
                    escape(&f.path, Breaks::Escape),
                    escape(e.0.trim_start_matches("codetier: "), Breaks::Escape)
                )
            })
        }));
        out.extend(
            self.notes
                .iter()
                .map(|n| format!("codetier: {}", escape(n, Breaks::Escape))),
        );
        out.extend(self.incomplete().map(|why| format!("codetier: {why}")));
        out
    }
}

/// Compiler-style lines `path:line:col: severity: message`, with the proposed replacement
/// indented below. ANSI colour only when `colour`. File names and model text are escaped (see
/// `escape`), so neither can add a line of its own.
pub fn text(report: &ReviewReport, colour: bool) -> String {
    let paint = |code: &str, s: &str| {
        if colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    };
    let mut out = String::new();
    for (file, f) in report.findings() {
        let name = severity_name(&f.severity);
        let colour_code = match f.severity {
            Severity::Error => "1;31",
            Severity::Warning => "1;33",
            Severity::Info => "1;34",
            Severity::Hint => "1;36",
        };
        let path = escape(&file.path, Breaks::Escape);
        let message = escape(&f.message, Breaks::Keep);
        let mut lines = message.lines();
        let first = lines.next().unwrap_or("");
        out.push_str(&format!(
            "{}: {}: {first}\n",
            paint("1", &format!("{path}:{}:1", f.start_line + 1)),
            paint(colour_code, name)
        ));
        for more in lines {
            out.push_str(&format!("    {more}\n"));
        }
        if let Some(replacement) = &f.replacement {
            out.push_str(&format!(
                "  {} replace lines {}-{} with:\n",
                paint("1;32", "help:"),
                f.start_line + 1,
                f.end_line + 1
            ));
            for line in escape(replacement, Breaks::Keep).lines() {
                out.push_str(&format!("    | {line}\n"));
            }
        }
    }
    out
}

/// One JSON document: findings (1-based lines), per-file tier/model/cost/cached, skips, notes, summary.
pub fn json(report: &ReviewReport) -> Value {
    let findings: Vec<Value> = report
        .findings()
        .map(|(file, f)| {
            json!({
                "path": file.path,
                "start_line": f.start_line + 1,
                "end_line": f.end_line + 1,
                "severity": severity_name(&f.severity),
                "message": f.message,
                "replacement": f.replacement,
                "verified": f.verified,
            })
        })
        .collect();
    let files: Vec<Value> = report
        .files
        .iter()
        .map(|f| {
            json!({
                "path": f.path,
                "tier": f.tier,
                "model": f.models.join(", "),
                "cost_usd": f.cost_usd,
                "cost_estimated": f.cost_estimated,
                "cached": f.cached,
                "chunks": f.chunks,
                "findings": f.findings.len(),
                "error": f.error.as_ref().map(|e| e.0.clone()),
            })
        })
        .collect();
    let by_severity: serde_json::Map<String, Value> = [
        Severity::Error,
        Severity::Warning,
        Severity::Info,
        Severity::Hint,
    ]
    .iter()
    .map(|s| (severity_name(s).to_owned(), json!(report.count(s))))
    .collect();
    json!({
        "tool": { "name": "codetier", "version": env!("CARGO_PKG_VERSION") },
        "findings": findings,
        "files": files,
        "skipped": report.skipped,
        "notes": report.notes,
        "summary": {
            "files_reviewed": report.files.iter().filter(|f| f.error.is_none()).count(),
            "files_failed": report.files.iter().filter(|f| f.error.is_some()).count(),
            "files_skipped": report.skipped.len(),
            "files_cached": report.files.iter().filter(|f| f.error.is_none() && f.cached).count(),
            "findings": report.findings().count(),
            "by_severity": by_severity,
            "cost_usd": report.total_cost(),
            "cost_estimated": report.cost_estimated(),
            "exit_code": report.exit_code(),
        },
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn finding(
        line: u32,
        severity: Severity,
        message: &str,
        replacement: Option<&str>,
    ) -> Finding {
        Finding {
            start_line: line,
            end_line: line + 1,
            severity,
            message: message.into(),
            replacement: replacement.map(str::to_owned),
            verified: replacement.map(|_| true),
        }
    }

    pub fn sample(fail_on: FailOn) -> ReviewReport {
        ReviewReport {
            files: vec![
                FileReport {
                    path: "src/a.rs".into(),
                    tier: "flash".into(),
                    models: vec!["deepseek-v4-flash".into()],
                    cost_usd: Some(0.0001),
                    cost_estimated: false,
                    cached: false,
                    chunks: 1,
                    findings: vec![
                        finding(
                            4,
                            Severity::Warning,
                            "unused value\nsecond line",
                            Some("let _x = 1;"),
                        ),
                        finding(9, Severity::Info, "consider a const", None),
                    ],
                    error: None,
                },
                FileReport {
                    path: "src/b.rs".into(),
                    tier: "flash".into(),
                    models: vec!["deepseek-v4-flash".into()],
                    cost_usd: Some(0.0),
                    cost_estimated: false,
                    cached: true,
                    chunks: 2,
                    findings: vec![],
                    error: None,
                },
            ],
            skipped: vec![Skip {
                path: "key.pem".into(),
                reason: "matches privacy.exclude".into(),
            }],
            notes: vec![],
            fail_on,
        }
    }

    #[test]
    fn exit_code_follows_fail_on() {
        assert_eq!(sample(FailOn::Error).exit_code(), exit::OK);
        assert_eq!(sample(FailOn::Warning).exit_code(), exit::FINDINGS);
        assert_eq!(sample(FailOn::Info).exit_code(), exit::FINDINGS);
        assert_eq!(sample(FailOn::Never).exit_code(), exit::OK);
        let mut failed = sample(FailOn::Never);
        failed.files[1].error = Some(("codetier: timeout".into(), exit::PROVIDER));
        assert_eq!(failed.exit_code(), exit::PROVIDER);
        assert!(!fails(&Severity::Hint, FailOn::Info));
    }

    #[test]
    fn text_is_compiler_style_and_plain_without_colour() {
        let out = text(&sample(FailOn::Error), false);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "src/a.rs:5:1: warning: unused value");
        assert_eq!(lines[1], "    second line");
        assert_eq!(lines[2], "  help: replace lines 5-6 with:");
        assert_eq!(lines[3], "    | let _x = 1;");
        assert_eq!(lines[4], "src/a.rs:10:1: info: consider a const");
        assert!(!out.contains('\x1b'));
        assert!(text(&sample(FailOn::Error), true).contains("\x1b[1;33mwarning\x1b[0m"));
    }

    #[test]
    fn escape_neutralises_controls_line_forgery_and_workflow_commands() {
        let check = |input: &str, breaks: Breaks, want: &str| {
            assert_eq!(escape(input, breaks), want, "{input:?} ({breaks:?})");
        };
        use Breaks::{Escape, Keep};
        // File names: one line, whatever they hold.
        check("src/a.rs", Escape, "src/a.rs");
        check(
            "x.rs\nsrc/main.rs:1:1: error: forged",
            Escape,
            "x.rs\\nsrc/main.rs:1:1: error: forged",
        );
        check("a\tb\rc", Escape, "a\\tb\\rc");
        check(
            "::error file=x::boom.rs",
            Escape,
            "\\::error file=x::boom.rs",
        );
        check("\u{1b}[31mred\u{1b}[0m", Escape, "\\u{1b}[31mred\\u{1b}[0m");
        // Model text: line breaks and tabs stay, everything else that steers a terminal goes.
        check("line one\n\tline two", Keep, "line one\n\tline two");
        check("crlf\r\nends", Keep, "crlf\nends");
        check("over\rwritten", Keep, "over\\rwritten");
        check(
            "bell\u{7}del\u{7f}csi\u{9b}2J",
            Keep,
            "bell\\u{7}del\\u{7f}csi\\u{9b}2J",
        );
        check(
            "ok\n::error file=src/a.rs,line=1::pwned\n  ::warning::x",
            Keep,
            "ok\n\\::error file=src/a.rs,line=1::pwned\n  \\::warning::x",
        );
        check("\u{a0}::notice::nbsp", Keep, "\u{a0}\\::notice::nbsp");
        check("say ##[error]boom", Keep, "say ##\\[error]boom");
        // `::` inside a line is ordinary text (a Rust path, say).
        check("use std::io;", Keep, "use std::io;");
        // Trojan Source: bidi overrides and isolates are shown, not obeyed.
        check(
            "a\u{202e}b\u{2066}c\u{2028}d",
            Keep,
            "a\\u{202e}b\\u{2066}c\\u{2028}d",
        );
        check("C:\\path é 😀", Keep, "C:\\path é 😀");
        check("", Keep, "");
        check("trailing\n", Keep, "trailing\n");
    }

    #[test]
    fn text_output_escapes_file_names_and_model_text() {
        let mut report = sample(FailOn::Error);
        report.files[0].path = "evil.rs\nsrc/main.rs:1:1: error: forged".into();
        report.files[0].findings = vec![finding(
            0,
            Severity::Error,
            "\u{1b}]8;;http://x\u{7}link\u{1b}[2J\n::error file=a::b\rhidden",
            Some("\u{1b}[1mcode\u{1b}[0m\n::set-output name=x::y"),
        )];
        report.skipped[0].path = "skip\n::error::x.pem".into();
        let out = text(&report, false);
        assert!(!out.contains('\u{1b}') && !out.contains('\r'), "{out:?}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines.len(),
            5,
            "finding, second message line, help, two code lines: {out}"
        );
        assert!(lines[0].starts_with("evil.rs\\nsrc/main.rs:1:1: error: forged:1:1: error: "));
        for line in &lines {
            assert!(!line.trim_start().starts_with("::"), "{line:?}");
        }
        for line in report.stderr_notes() {
            assert!(!line.contains('\n') && !line.contains("\n::"), "{line:?}");
        }
        // JSON stays exact.
        let v = json(&report);
        assert_eq!(v["findings"][0]["path"], report.files[0].path.as_str());
        assert_eq!(
            v["findings"][0]["message"],
            report.files[0].findings[0].message.as_str()
        );
    }

    #[test]
    fn json_has_findings_files_and_summary() {
        let v = json(&sample(FailOn::Warning));
        assert_eq!(v["findings"][0]["path"], "src/a.rs");
        assert_eq!(v["findings"][0]["start_line"], 5);
        assert_eq!(v["findings"][0]["severity"], "warning");
        assert_eq!(v["findings"][0]["replacement"], "let _x = 1;");
        assert_eq!(v["files"][1]["cached"], true);
        assert_eq!(v["files"][0]["model"], "deepseek-v4-flash");
        assert_eq!(v["skipped"][0]["path"], "key.pem");
        assert_eq!(v["summary"]["findings"], 2);
        assert_eq!(v["summary"]["by_severity"]["warning"], 1);
        assert_eq!(v["summary"]["exit_code"], 1);
        let summary = sample(FailOn::Error).summary();
        assert!(
            summary.contains("reviewed 2 files (1 from cache): 1 warning, 1 info; cost $0.000100"),
            "{summary}"
        );
        assert_eq!(v["summary"]["cost_estimated"], false);
        let mut estimated = sample(FailOn::Error);
        estimated.files[0].cost_estimated = true;
        assert!(
            estimated.summary().contains("cost ~$0.000100"),
            "{}",
            estimated.summary()
        );
        let v = json(&estimated);
        assert_eq!(v["files"][0]["cost_estimated"], true);
        assert_eq!(v["summary"]["cost_estimated"], true);
    }
}
