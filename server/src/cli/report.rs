//! The result of a review run, its exit code, and its text and JSON renderings.

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
    /// 3 when a provider request failed, 2 for any other failure, 1 when a finding reaches
    /// `--fail-on`, else 0. A failure outranks findings: the review is incomplete.
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
        self.files.iter().filter_map(|f| f.cost_usd).sum()
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
            "codetier: reviewed {reviewed} file{} ({cached} from cache): {found}; cost ${:.6}",
            if reviewed == 1 { "" } else { "s" },
            self.total_cost()
        );
        if failed > 0 {
            line.push_str(&format!("; {failed} failed"));
        }
        if !self.skipped.is_empty() {
            line.push_str(&format!("; {} skipped", self.skipped.len()));
        }
        line
    }

    /// Lines for stderr about files not reviewed and why.
    pub fn stderr_notes(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .skipped
            .iter()
            .map(|s| format!("codetier: skipped {}: {}", s.path, s.reason))
            .collect();
        out.extend(self.files.iter().filter_map(|f| {
            f.error.as_ref().map(|e| {
                format!(
                    "codetier: {}: {}",
                    f.path,
                    e.0.trim_start_matches("codetier: ")
                )
            })
        }));
        out.extend(self.notes.iter().map(|n| format!("codetier: {n}")));
        out
    }
}

/// Compiler-style lines `path:line:col: severity: message`, with the proposed replacement
/// indented below. ANSI colour only when `colour`.
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
        let mut lines = f.message.lines();
        let first = lines.next().unwrap_or("");
        out.push_str(&format!(
            "{}: {}: {first}\n",
            paint("1", &format!("{}:{}:1", file.path, f.start_line + 1)),
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
            for line in replacement.lines() {
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
            summary.contains("reviewed 2 files (1 from cache): 1 warning, 1 info"),
            "{summary}"
        );
    }
}
