//! The `privacy.exclude` globs: whether a file may be sent to the model at all.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Why a file may not be sent: which of its names matched `privacy.exclude`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exclusion {
    /// The name it was asked by (the URI or path) matches.
    Name,
    /// It resolves (through symlinks) to this file, which matches.
    Target(String),
}

/// Whether the file named `name` (a `file://` URI or a path) may be sent to the model: `None`
/// when neither `name` nor, for a file on this machine, the file it resolves to matches
/// `globs` (see [`is_excluded`]).
///
/// `path` is where the file lies when the caller knows it (the CLI reads relative paths from
/// its working directory, which is not where `name` is relative to); otherwise it comes from a
/// `file://` URI or an absolute `name`. The target is found with `canonicalize` (every symlink
/// on the way followed), or, for a dangling link, from the link itself. A target inside `root`
/// (canonical) is matched relative to it, like the names the CLI shows, so the directories
/// above a project do not decide for it; a target elsewhere is matched whole.
pub fn exclusion(
    name: &str,
    path: Option<&Path>,
    root: Option<&Path>,
    globs: &[String],
) -> Option<Exclusion> {
    if is_excluded(name, globs) {
        return Some(Exclusion::Name);
    }
    let local = path.map(Path::to_path_buf).or_else(|| local_path(name))?;
    let target = resolve(&local)?;
    let shown = match root.and_then(|r| target.strip_prefix(r).ok()) {
        Some(inside) if !inside.as_os_str().is_empty() => inside.to_path_buf(),
        _ => target,
    };
    let shown = shown.to_string_lossy().into_owned();
    is_excluded(&shown, globs).then_some(Exclusion::Target(shown))
}

/// Whether `path` (a `file://` URI, an absolute path or a relative CLI path) matches one of
/// `globs`, with gitignore-like semantics:
///
/// - a pattern without `/` (`.env`, `.env.*`, `*.pem`) matches any path component, so the file
///   name in any directory (and anything under a directory of that name);
/// - a pattern with `/` (`**/secrets/**`, `config/prod.toml`) matches the whole path or any
///   tail of it that starts at a component boundary, since the workspace root is not known here;
///   `*` does not cross `/`, `**` does.
///
/// Matching ignores case on every platform: `SERVER.PEM`, `.ENV` and `Secrets/` hold the same
/// secrets as their lower-case names, and a case-insensitive file system (macOS, Windows)
/// opens them by either. An invalid pattern is compared literally (ignoring case too), so a
/// typo still excludes rather than silently letting the file through.
///
/// The globs are compiled once per list (the configuration rarely changes, while this runs on
/// every action): see [`compiled`].
pub fn is_excluded(path: &str, globs: &[String]) -> bool {
    let set = compiled(globs);
    let path = normalize(path);
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let same = |a: &str, b: &str| a.to_lowercase() == b.to_lowercase();
    if components
        .iter()
        .any(|c| set.component.is_match(c) || set.component_literals.iter().any(|l| same(l, c)))
    {
        return true;
    }
    if set.tail.is_empty() && set.tail_literals.is_empty() {
        return false;
    }
    (0..components.len()).any(|k| {
        let tail = components[k..].join("/");
        set.tail.is_match(&tail) || set.tail_literals.iter().any(|l| same(l, &tail))
    })
}

/// The file a `file://` URI or an absolute path names on this machine; `None` for other URIs
/// (`untitled:`) and relative paths, whose base is not known here.
fn local_path(name: &str) -> Option<PathBuf> {
    if name.contains("://") && !name.starts_with("file://") {
        return None;
    }
    let path = if name.starts_with("file://") {
        PathBuf::from(normalize(name))
    } else {
        PathBuf::from(name)
    };
    path.is_absolute().then_some(path)
}

/// Where `path` leads once symlinks are followed (and `.`, `..` resolved).
fn resolve(path: &Path) -> Option<PathBuf> {
    let target = match std::fs::canonicalize(path) {
        Ok(t) => t,
        // A dangling link still says where it points.
        Err(_) => {
            let link = std::fs::read_link(path).ok()?;
            match path.parent() {
                Some(dir) if link.is_relative() => dir.join(link),
                _ => link,
            }
        }
    };
    Some(target)
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
            .case_insensitive(true)
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

    /// The default list with `.env.*`, as the configuration should ship it.
    fn proposed_defaults() -> Vec<String> {
        [".env", ".env.*", "*.pem", "*.key", "**/secrets/**"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn matching_ignores_case_and_env_variants_are_covered() {
        check(
            &defaults(),
            &[
                ("SERVER.PEM", true),
                ("file:///home/u/proj/certs/Server.Pem", true),
                ("/home/u/proj/.ENV", true),
                ("Secrets/db.toml", true),
                ("/home/u/proj/config/SECRETS/prod.yaml", true),
                ("deploy/ID_RSA.KEY", true),
                ("src/Main.rs", false),
            ],
        );
        check(
            &proposed_defaults(),
            &[
                (".env.local", true),
                ("file:///home/u/proj/.env.production", true),
                ("web/.Env.Development.Local", true),
                ("/home/u/proj/.env.example", true),
                (".envrc", false),
                ("src/environment.rs", false),
                ("src/dotenv.rs", false),
            ],
        );
        // A literal (invalid) pattern ignores case too.
        check(
            &["Weird[".to_owned()],
            &[("src/WEIRD[", true), ("src/weird", false)],
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_file_is_judged_by_what_it_resolves_to() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("proj");
        std::fs::create_dir_all(root.join("src")).expect("mkdir");
        let root = std::fs::canonicalize(&root).expect("canonical root");
        std::fs::write(root.join(".env"), "DB_PASSWORD=hunter2\n").expect("write");
        std::fs::write(root.join("src/main.rs"), "fn main() {}\n").expect("write");
        symlink(root.join(".env"), root.join("notes.txt")).expect("symlink");
        symlink("../.env", root.join("src/config.rs")).expect("relative symlink");
        symlink(root.join("gone/.env"), root.join("dangling.txt")).expect("dangling symlink");
        // A project that lives under a directory named `secrets`, and a link into it.
        let nested = dir.path().join("secrets").join("other");
        std::fs::create_dir_all(&nested).expect("mkdir");
        let nested = std::fs::canonicalize(&nested).expect("canonical");
        std::fs::write(nested.join("lib.rs"), "pub fn f() {}\n").expect("write");
        symlink(nested.join("lib.rs"), root.join("src/linked.rs")).expect("symlink");
        let globs = defaults();
        let uri = |p: &Path| format!("file://{}", p.display());
        let judge = |name: &str, path: Option<&Path>| exclusion(name, path, Some(&root), &globs);

        assert_eq!(
            judge("notes.txt", Some(&root.join("notes.txt"))),
            Some(Exclusion::Target(".env".into()))
        );
        assert_eq!(
            judge(&uri(&root.join("src/config.rs")), None),
            Some(Exclusion::Target(".env".into()))
        );
        assert!(
            matches!(judge(&uri(&root.join("dangling.txt")), None), Some(Exclusion::Target(t)) if t.ends_with("gone/.env"))
        );
        assert_eq!(judge("src/main.rs", Some(&root.join("src/main.rs"))), None);
        assert_eq!(
            judge(&root.join("src/main.rs").to_string_lossy(), None),
            None
        );
        assert_eq!(judge(".env", None), Some(Exclusion::Name));
        // A link out of the project is judged by its whole target path, a file inside the
        // project by its path relative to the root: the directories above do not decide.
        assert!(
            matches!(judge("src/linked.rs", Some(&root.join("src/linked.rs"))), Some(Exclusion::Target(t)) if t.contains("/secrets/"))
        );
        assert_eq!(
            exclusion(
                "lib.rs",
                Some(&nested.join("lib.rs")),
                Some(&nested),
                &globs
            ),
            None
        );
        assert!(exclusion("lib.rs", Some(&nested.join("lib.rs")), None, &globs).is_some());
        // Names that are not files on this machine are judged by the name alone.
        assert_eq!(exclusion("untitled:Untitled-1", None, None, &globs), None);
        assert_eq!(exclusion("src/relative.rs", None, None, &globs), None);
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
