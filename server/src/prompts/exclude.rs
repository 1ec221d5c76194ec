//! The `privacy.exclude` globs: whether a file may be sent to the model at all.

use globset::{Glob, GlobBuilder, GlobMatcher};

/// Whether `path` (a `file://` URI, an absolute path or a relative CLI path) matches one of
/// `globs`, with gitignore-like semantics:
///
/// - a pattern without `/` (`.env`, `*.pem`) matches any path component, so the file name in
///   any directory (and anything under a directory of that name);
/// - a pattern with `/` (`**/secrets/**`, `config/prod.toml`) matches the whole path or any
///   tail of it that starts at a component boundary, since the workspace root is not known here;
///   `*` does not cross `/`, `**` does.
///
/// Matching is case-insensitive on Windows and macOS. An invalid pattern is compared literally,
/// so a typo still excludes rather than silently letting the file through.
pub fn is_excluded(path: &str, globs: &[String]) -> bool {
    let path = normalize(path);
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    globs.iter().any(|pattern| {
        let pattern = pattern.trim();
        let pattern = pattern.trim_end_matches('/');
        if pattern.is_empty() {
            return false;
        }
        if pattern.contains('/') {
            let pattern = pattern.trim_start_matches('/');
            let matcher = compile(pattern);
            (0..components.len()).any(|k| matches(&matcher, pattern, &components[k..].join("/")))
        } else {
            let matcher = compile(pattern);
            components.iter().any(|c| matches(&matcher, pattern, c))
        }
    })
}

fn compile(pattern: &str) -> Option<GlobMatcher> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .case_insensitive(cfg!(any(windows, target_os = "macos")))
        .build()
        .as_ref()
        .map(Glob::compile_matcher)
        .ok()
}

fn matches(matcher: &Option<GlobMatcher>, pattern: &str, candidate: &str) -> bool {
    match matcher {
        Some(m) => m.is_match(candidate),
        None => candidate == pattern,
    }
}

/// A plain `/`-separated path from a `file://` URI (percent-decoded) or an OS path.
fn normalize(path: &str) -> String {
    let path = match path.strip_prefix("file://") {
        Some(rest) => {
            let decoded = percent_decode(rest);
            // `file:///C:/x` names `C:/x` on Windows.
            match decoded.as_bytes() {
                [b'/', drive, b':', ..] if drive.is_ascii_alphabetic() => decoded[1..].to_owned(),
                _ => decoded,
            }
        }
        None => path.to_owned(),
    };
    let path = path.replace('\\', "/");
    let path = path.trim_start_matches("./");
    path.to_owned()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%' {
            if let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            ) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        [".env", "*.pem", "*.key", "**/secrets/**"]
            .map(String::from)
            .to_vec()
    }

    /// Each `(path, excluded)` pair is checked against `globs`.
    fn check(globs: &[String], cases: &[(&str, bool)]) {
        for (path, want) in cases {
            assert_eq!(is_excluded(path, globs), *want, "path {path:?}, globs {globs:?}");
        }
    }

    #[test]
    fn default_globs() {
        check(
            &defaults(),
            &[
                (".env", true),
                ("./.env", true),
                ("app/.env", true),
                ("/home/u/proj/.env", true),
                ("file:///home/u/proj/.env", true),
                ("file:///home/u/proj/certs/server.pem", true),
                ("deploy/id_rsa.key", true),
                ("secrets/db.toml", true),
                ("/home/u/proj/config/secrets/prod.yaml", true),
                ("file:///home/u/my%20proj/secrets/a.txt", true),
                ("C:\\work\\proj\\secrets\\a.txt", true),
                ("file:///C:/work/proj/server.pem", true),
                ("src/main.rs", false),
                ("/home/u/proj/.env.example", false),
                ("src/environment.rs", false),
                ("docs/pem.md", false),
                ("secrets.rs", false),
                ("file:///home/u/proj/src/lib.rs", false),
            ],
        );
    }

    #[test]
    fn patterns_with_slash_match_a_tail_and_star_stays_in_a_component() {
        let globs = ["config/*.toml".to_owned(), "/build/out".to_owned()];
        check(
            &globs,
            &[
                ("config/prod.toml", true),
                ("/home/u/proj/config/prod.toml", true),
                ("config/nested/prod.toml", false),
                ("build/out", true),
                ("src/config.toml", false),
            ],
        );
    }

    #[test]
    fn directory_names_and_bad_patterns() {
        let globs = ["node_modules".to_owned(), "weird[".to_owned(), "  ".to_owned()];
        check(
            &globs,
            &[
                ("web/node_modules/x/index.js", true),
                ("weird[", true),
                ("src/weird", false),
                ("src/a.rs", false),
            ],
        );
        assert!(!is_excluded("src/a.rs", &[]));
    }
}
