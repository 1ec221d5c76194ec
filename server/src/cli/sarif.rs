//! SARIF 2.1.0 rendering of a review run, in the shape GitHub code scanning accepts.

use std::path::Path;

use serde_json::{json, Value};

use super::report::{severity_name, ReviewReport};
use crate::render::Severity;

pub const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";
pub const RULE_ID: &str = "codetier/review";
const FALLBACK_URI: &str = "https://github.com/codetier/codetier";

/// Where users read about the tool: the crate's `repository`, else the project page.
fn information_uri() -> &'static str {
    let repo = env!("CARGO_PKG_REPOSITORY");
    if repo.is_empty() {
        FALLBACK_URI
    } else {
        repo
    }
}

fn level(s: &Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info | Severity::Hint => "note",
    }
}

/// Percent-encodes what may not appear raw in a URI path; `/` stays.
pub fn uri_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn location(path: &str, lines: Option<(u32, u32)>) -> Value {
    let mut physical =
        json!({ "artifactLocation": { "uri": uri_path(path), "uriBaseId": "%SRCROOT%" } });
    if let Some((start, end)) = lines {
        physical["region"] = json!({ "startLine": start, "endLine": end.max(start) });
    }
    json!({ "physicalLocation": physical })
}

/// A fingerprint that survives the finding moving to other lines: file, severity and message.
fn fingerprint(path: &str, severity: &Severity, message: &str) -> String {
    let normalized: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let hash =
        blake3::hash(format!("{path}\n{}\n{normalized}", severity_name(severity)).as_bytes());
    hash.to_hex()[..32].to_owned()
}

/// The SARIF log. `root` is the repository root the artifact URIs are relative to.
///
/// Long on purpose: one JSON document written top to bottom in the order of SARIF 2.1.0
/// schema, so it can be checked against the specification by reading it once.
pub fn sarif(report: &ReviewReport, root: &Path) -> Value {
    let results: Vec<Value> = report
        .findings()
        .map(|(file, f)| {
            let (start, end) = (f.start_line + 1, f.end_line + 1);
            let mut result = json!({
                "ruleId": RULE_ID,
                "ruleIndex": 0,
                "level": level(&f.severity),
                "message": { "text": f.message },
                "locations": [location(&file.path, Some((start, end)))],
                "partialFingerprints": { "codetierFinding/v1": fingerprint(&file.path, &f.severity, &f.message) },
                "properties": {
                    "severity": severity_name(&f.severity),
                    "tier": file.tier,
                    "model": file.models.join(", "),
                    "cached": file.cached,
                    // false: its proposed fix did not parse and was dropped; null: not checked (no grammar).
                    "verified": f.verified,
                },
            });
            if let Some(replacement) = &f.replacement {
                result["fixes"] = json!([{
                    "description": { "text": "Replacement proposed by codetier" },
                    "artifactChanges": [{
                        "artifactLocation": { "uri": uri_path(&file.path), "uriBaseId": "%SRCROOT%" },
                        "replacements": [{
                            "deletedRegion": { "startLine": start, "endLine": end.max(start) },
                            "insertedContent": { "text": replacement },
                        }],
                    }],
                }]);
            }
            result
        })
        .collect();
    let mut notifications: Vec<Value> = report
        .skipped
        .iter()
        .map(|s| {
            json!({
                "level": "note",
                "message": { "text": format!("skipped {}: {}", s.path, s.reason) },
                "locations": [location(&s.path, None)],
            })
        })
        .collect();
    notifications.extend(report.files.iter().filter_map(|f| {
        f.error.as_ref().map(|(message, _)| {
            json!({
                "level": "error",
                "message": { "text": message },
                "locations": [location(&f.path, None)],
            })
        })
    }));
    notifications.extend(
        report
            .notes
            .iter()
            .map(|n| json!({ "level": "warning", "message": { "text": n } })),
    );
    let root_uri = format!(
        "file://{}/",
        uri_path(
            root.to_string_lossy()
                .replace('\\', "/")
                .trim_end_matches('/')
        )
    );
    let root_uri = if root_uri.starts_with("file:///") {
        root_uri
    } else {
        root_uri.replacen("file://", "file:///", 1)
    };
    json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "codetier",
                    "version": env!("CARGO_PKG_VERSION"),
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "informationUri": information_uri(),
                    "rules": [{
                        "id": RULE_ID,
                        "name": "AiCodeReview",
                        "shortDescription": { "text": "Finding of codetier's AI code review" },
                        "fullDescription": { "text": "A problem a language model found while reviewing the code. Check it before acting: models can be wrong." },
                        "defaultConfiguration": { "level": "warning" },
                        "helpUri": information_uri(),
                    }],
                },
            },
            "originalUriBaseIds": { "%SRCROOT%": { "uri": root_uri } },
            "invocations": [{
                "executionSuccessful": report.files.iter().all(|f| f.error.is_none()),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
            "properties": {
                "costUsd": report.total_cost(),
                "filesReviewed": report.files.iter().filter(|f| f.error.is_none()).count(),
                "filesSkipped": report.skipped.len(),
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::super::report::tests::sample;
    use super::*;
    use crate::cli::FailOn;

    #[test]
    fn results_point_at_relative_uris_with_regions() {
        let v = sarif(&sample(FailOn::Error), Path::new("/repo root"));
        assert_eq!(v["version"], "2.1.0");
        let run = &v["runs"][0];
        assert_eq!(run["tool"]["driver"]["name"], "codetier");
        assert_eq!(run["tool"]["driver"]["rules"][0]["id"], RULE_ID);
        assert_eq!(
            run["originalUriBaseIds"]["%SRCROOT%"]["uri"],
            "file:///repo%20root/"
        );
        let first = &run["results"][0];
        assert_eq!(first["level"], "warning");
        assert_eq!(
            first["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "src/a.rs"
        );
        assert_eq!(
            first["locations"][0]["physicalLocation"]["artifactLocation"]["uriBaseId"],
            "%SRCROOT%"
        );
        assert_eq!(
            first["locations"][0]["physicalLocation"]["region"]["startLine"],
            5
        );
        assert_eq!(
            first["locations"][0]["physicalLocation"]["region"]["endLine"],
            6
        );
        assert_eq!(
            first["fixes"][0]["artifactChanges"][0]["replacements"][0]["insertedContent"]["text"],
            "let _x = 1;"
        );
        assert_eq!(run["results"][1]["level"], "note");
        let note = &run["invocations"][0]["toolExecutionNotifications"][0];
        assert_eq!(
            note["message"]["text"],
            "skipped key.pem: matches privacy.exclude"
        );
    }

    #[test]
    fn fingerprint_ignores_whitespace_but_not_the_file() {
        let a = fingerprint("a.rs", &Severity::Error, "bad  thing\n here");
        assert_eq!(a, fingerprint("a.rs", &Severity::Error, "bad thing here"));
        assert_ne!(a, fingerprint("b.rs", &Severity::Error, "bad thing here"));
        assert_eq!(uri_path("dir/a b#.rs"), "dir/a%20b%23.rs");
    }
}
