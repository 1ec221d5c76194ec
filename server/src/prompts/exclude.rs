//! The `privacy.exclude` globs: whether a file may be sent to the model at all.

use std::sync::{Arc, Mutex};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

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
///
/// The globs are compiled once per list (the configuration rarely changes, while this runs on
/// every action): see [`compiled`].
pub fn is_excluded(path: &str, globs: &[String]) -> bool {
    let set = compiled(globs);
    let path = normalize(path);
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if components
        .iter()
        .any(|c| set.component.is_match(c) || set.component_literals.iter().any(|l| l == c))
    {
        return true;
    }
    if set.tail.is_empty() && set.tail_literals.is_empty() {
        return false;
    }
    (0..components.len()).any(|k| {
        let tail = components[k..].join("/");
        set.tail.is_match(&tail) || set.tail_literals.contains(&tail)
    })
}

/// The compiled form of one `privacy.exclude` list.
#[derive(Debug)]
struct Compiled {
    /// Patterns without `/`, matched against each path component.
    component: GlobSet,
    /// Patterns with `/`, matched against each tail of the path.
    tail: GlobSet,
    /// Invalid patterns, compared literally (with components and tails respectively).
    component_literals: Vec<String>,
    tail_literals: Vec<String>,
}

/// How many distinct lists stay compiled (the CLI and each LSP session use one at a time; a
/// few more cover a configuration switched back and forth).
const CACHED_LISTS: usize = 4;

/// The compiled form of `globs`, from a small process-wide cache keyed by the list itself, so
/// a configuration's globs are compiled once rather than on every action.
fn compiled(globs: &[String]) -> Arc<Compiled> {
    static CACHE: CompiledLists = CompiledLists::new();
    CACHE.get(globs)
}

/// The last few glob lists and their compiled forms, oldest first.
struct CompiledLists(Mutex<Vec<(Vec<String>, Arc<Compiled>)>>);

impl CompiledLists {
    const fn new() -> Self {
        CompiledLists(Mutex::new(Vec::new()))
    }

    fn get(&self, globs: &[String]) -> Arc<Compiled> {
        {
            let lists = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, set)) = lists.iter().find(|(key, _)| key.as_slice() == globs) {
                return set.clone();
            }
        }
        // Compiled outside the lock; two threads racing on a new list both compile it, harmlessly.
        let set = Arc::new(compile(globs));
        let mut lists = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !lists.iter().any(|(key, _)| key.as_slice() == globs) {
            if lists.len() >= CACHED_LISTS {
                lists.remove(0);
            }
            lists.push((globs.to_vec(), set.clone()));
        }
        set
    }
}

fn compile(globs: &[String]) -> Compiled {
    let mut component = GlobSetBuilder::new();
    let mut tail = GlobSetBuilder::new();
    let mut component_literals = Vec::new();
    let mut tail_literals = Vec::new();
    for pattern in globs {
        let pattern = pattern.trim().trim_end_matches('/');
        if pattern.is_empty() {
            continue;
        }
        let (builder, literals, pattern) = if pattern.contains('/') {
            (
                &mut tail,
                &mut tail_literals,
                pattern.trim_start_matches('/'),
            )
        } else {
            (&mut component, &mut component_literals, pattern)
        };
        match GlobBuilder::new(pattern)
            .literal_separator(true)
            .case_insensitive(cfg!(any(windows, target_os = "macos")))
            .build()
        {
            Ok(glob) => {
                builder.add(glob);
            }
            Err(_) => literals.push(pattern.to_owned()),
        }
    }
    Compiled {
        component: build(component, globs),
        tail: build(tail, globs),
        component_literals,
        tail_literals,
    }
}

/// Builds a set of globs that each compiled on their own; should the set as a whole still fail
/// (a size limit), everything is excluded rather than nothing.
fn build(builder: GlobSetBuilder, globs: &[String]) -> GlobSet {
    builder.build().unwrap_or_else(|e| {
        tracing::warn!(
            "privacy.exclude {globs:?} could not be compiled ({e}); excluding every file"
        );
        let mut all = GlobSetBuilder::new();
        if let Ok(glob) = GlobBuilder::new("**").build() {
            all.add(glob);
        }
        all.build().unwrap_or_else(|_| GlobSet::empty())
    })
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
            assert_eq!(
                is_excluded(path, globs),
                *want,
                "path {path:?}, globs {globs:?}"
            );
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
        let globs = [
            "node_modules".to_owned(),
            "weird[".to_owned(),
            "  ".to_owned(),
        ];
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

    #[test]
    fn a_list_is_compiled_once_and_a_changed_list_is_compiled_again() {
        let lists = CompiledLists::new();
        let globs = vec!["*.pem".to_owned(), "**/secrets/**".to_owned()];
        let first = lists.get(&globs);
        assert!(
            Arc::ptr_eq(&first, &lists.get(&globs)),
            "reused, not recompiled"
        );
        // An equal list (a reloaded configuration) shares the compiled set.
        assert!(Arc::ptr_eq(&first, &lists.get(&globs.clone())));
        assert!(first.component.is_match("a.pem") && first.tail.is_match("x/secrets/y"));

        // A changed list gets its own set; the oldest list goes once there are too many.
        let changed = vec!["*.other".to_owned()];
        let other = lists.get(&changed);
        assert!(!Arc::ptr_eq(&first, &other));
        assert!(other.component.is_match("a.other") && !other.component.is_match("a.pem"));
        for i in 0..CACHED_LISTS {
            lists.get(&[format!("*.{i}")]);
        }
        assert!(
            !Arc::ptr_eq(&first, &lists.get(&globs)),
            "evicted, then compiled again"
        );
    }
}
