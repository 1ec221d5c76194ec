//! Which files a command reads: `FILE`, `FILE:START-END` and `FILE:LINE` arguments, directory
//! walks (honouring .gitignore and `privacy.exclude`), reading text, and splitting into chunks.

use std::ops::Range;
use std::path::{Path, PathBuf};

use ropey::Rope;

use super::setup::Failure;

/// Files larger than this are skipped rather than sent in many chunks.
pub const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;

/// A path argument, split into the file and the lines asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub path: PathBuf,
    pub lines: Option<Lines>,
}

/// 1-based, inclusive line numbers as the user wrote them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lines {
    pub start: u32,
    pub end: u32,
}

/// A file to review, after walking and filtering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Where to read it.
    pub path: PathBuf,
    /// The path shown to the user, the prompt and SARIF: relative to the root, `/`-separated.
    pub display: String,
    pub lines: Option<Lines>,
}

/// A file that was not sent to the model, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Skip {
    pub path: String,
    pub reason: String,
}

/// Parses `FILE`, `FILE:LINE` or `FILE:START-END`. A path that exists as written wins, so a
/// file whose name contains a colon still works.
pub fn parse_spec(arg: &str) -> Result<Spec, Failure> {
    if Path::new(arg).exists() {
        return Ok(Spec {
            path: PathBuf::from(arg),
            lines: None,
        });
    }
    let Some((file, suffix)) = arg.rsplit_once(':') else {
        return Ok(Spec {
            path: PathBuf::from(arg),
            lines: None,
        });
    };
    if file.is_empty() || !suffix.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return Ok(Spec {
            path: PathBuf::from(arg),
            lines: None,
        });
    }
    let bad = || {
        Failure::usage(format!(
            "codetier: `{arg}`: expected FILE:LINE or FILE:START-END with 1-based line numbers"
        ))
    };
    let number = |s: &str| s.trim().parse::<u32>().ok().filter(|n| *n >= 1);
    let lines = match suffix.split_once('-') {
        Some((a, b)) => {
            let (start, end) = (number(a).ok_or_else(bad)?, number(b).ok_or_else(bad)?);
            if end < start {
                return Err(Failure::usage(format!(
                    "codetier: `{arg}`: the range ends before it starts"
                )));
            }
            Lines { start, end }
        }
        None => {
            let line = number(suffix).ok_or_else(bad)?;
            Lines {
                start: line,
                end: line,
            }
        }
    };
    Ok(Spec {
        path: PathBuf::from(file),
        lines: Some(lines),
    })
}

/// Expands the arguments into files: directories are walked (hidden files and .gitignore'd
/// files are left out silently); files matching `exclude` are skipped and reported. A path
/// that does not exist is a usage error, found before any request is made.
pub fn collect(
    args: &[String],
    root: &Path,
    exclude: &[String],
) -> Result<(Vec<Target>, Vec<Skip>), Failure> {
    let mut targets = Vec::new();
    let mut skipped = Vec::new();
    // Targets of symlinks are matched relative to the real root, as the shown names are.
    let real_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let push = |path: PathBuf,
                lines: Option<Lines>,
                targets: &mut Vec<Target>,
                skipped: &mut Vec<Skip>| {
        let display = display_path(&path, root);
        if let Some(why) = excluded(&display, &path, &real_root, exclude) {
            skipped.push(Skip {
                path: display,
                reason: why,
            });
        } else if !targets
            .iter()
            .any(|t: &Target| t.display == display && t.lines == lines)
        {
            targets.push(Target {
                path,
                display,
                lines,
            });
        }
    };
    for arg in args {
        let spec = parse_spec(arg)?;
        let meta = std::fs::metadata(&spec.path).map_err(|e| {
            Failure::usage(format!(
                "codetier: cannot read `{}`: {e}",
                spec.path.display()
            ))
        })?;
        if meta.is_dir() {
            if spec.lines.is_some() {
                return Err(Failure::usage(format!(
                    "codetier: `{arg}`: a line range needs a file, not a directory"
                )));
            }
            let mut found = walk(&spec.path);
            found.sort();
            for path in found {
                push(path, None, &mut targets, &mut skipped);
            }
        } else {
            push(spec.path, spec.lines, &mut targets, &mut skipped);
        }
    }
    Ok((targets, skipped))
}

/// Why the file shown as `display`, read from `path`, may not be sent: it or the file it
/// resolves to (symlinks followed) matches `exclude`. `real_root` is the canonical root.
pub fn excluded(
    display: &str,
    path: &Path,
    real_root: &Path,
    exclude: &[String],
) -> Option<String> {
    match crate::prompts::exclusion(display, Some(path), Some(real_root), exclude)? {
        crate::prompts::Exclusion::Name => Some("matches privacy.exclude".into()),
        crate::prompts::Exclusion::Target(target) => Some(format!(
            "matches privacy.exclude through the file it resolves to, {target}"
        )),
    }
}

/// Files under `dir`, honouring .gitignore (also outside a git repository), .ignore and hidden files.
fn walk(dir: &Path) -> Vec<PathBuf> {
    ignore::WalkBuilder::new(dir)
        .hidden(true)
        .require_git(false)
        .build()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_some_and(|t| t.is_file()))
        .map(ignore::DirEntry::into_path)
        .collect()
}

/// `path` relative to `root` when it lies inside, `/`-separated, without a leading `./`.
pub fn display_path(path: &Path, root: &Path) -> String {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let absolute = normalize(&absolute);
    let shown = match absolute.strip_prefix(normalize(root)) {
        Ok(rel) => rel.to_path_buf(),
        Err(_) => absolute,
    };
    shown.to_string_lossy().replace('\\', "/")
}

/// Removes `.` and `..` components without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Reads a file as text; `Err` says why it is skipped (binary, not UTF-8, too large, unreadable).
pub fn read_text(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "larger than {} MiB",
            MAX_FILE_BYTES / (1024 * 1024)
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    if bytes.iter().take(8192).any(|b| *b == 0) {
        return Err("binary file".into());
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".into())
}

/// Lines of `text` as an editor numbers them: a final line break ends the last line.
pub fn line_count(text: &Rope) -> usize {
    let n = text.len_lines();
    if n > 1 && text.line(n - 1).len_chars() == 0 {
        n - 1
    } else {
        n
    }
}

/// Refuses 1-based `lines` that reach past the end of `text`, naming the file's real length.
pub fn check_lines(text: &Rope, lines: Lines, display: &str) -> Result<(), Failure> {
    let count = line_count(text);
    if lines.end as usize <= count {
        return Ok(());
    }
    let asked = if lines.start == lines.end {
        format!("line {}", lines.start)
    } else {
        format!("lines {}-{}", lines.start, lines.end)
    };
    Err(Failure::usage(format!(
        "codetier: {display} has {count} line{}: {asked} {} past its end",
        if count == 1 { "" } else { "s" },
        if lines.start == lines.end {
            "is"
        } else {
            "reach"
        }
    )))
}

/// The char range of 1-based inclusive `lines`, clamped to the text.
pub fn line_range(text: &Rope, lines: Lines) -> Range<usize> {
    let last = text.len_lines().saturating_sub(1);
    let start_line = (lines.start as usize - 1).min(last);
    let end_line = (lines.end as usize).min(text.len_lines());
    let start = text.line_to_char(start_line);
    let end = text.line_to_char(end_line).max(start);
    start..end
}

/// Splits `range` into chunks of whole lines of at most `max_chars` each (a longer single line
/// is its own chunk). Blank-only chunks are dropped: there is nothing to review in them.
pub fn chunks(text: &Rope, range: Range<usize>, max_chars: usize) -> Vec<Range<usize>> {
    let max_chars = max_chars.max(1);
    let mut out = Vec::new();
    if range.is_empty() {
        return out;
    }
    let first = text.char_to_line(range.start);
    let last = text.char_to_line(range.end.saturating_sub(1).max(range.start));
    let mut start = range.start;
    for line in first..=last {
        let line_end = text.line_to_char(line + 1).min(range.end);
        if line_end - start > max_chars && text.line_to_char(line) > start {
            out.push(start..text.line_to_char(line));
            start = text.line_to_char(line);
        }
        if line == last {
            out.push(start..line_end.max(start));
        }
    }
    out.retain(|r| text.slice(r.clone()).chars().any(|c| !c.is_whitespace()));
    out
}

/// A language id for the prompt, from the file extension.
pub fn language_id(path: &str) -> &'static str {
    let ext = Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "rs" => "rust",
        "py" | "pyi" => "python",
        "js" | "mjs" | "cjs" => "javascript",
        "jsx" => "javascriptreact",
        "ts" | "mts" | "cts" => "typescript",
        "tsx" => "typescriptreact",
        "go" => "go",
        "c" | "h" => "c",
        "cc" | "cpp" | "cxx" | "hpp" | "hh" => "cpp",
        "java" => "java",
        "kt" | "kts" => "kotlin",
        "swift" => "swift",
        "rb" => "ruby",
        "php" => "php",
        "cs" => "csharp",
        "lua" => "lua",
        "sh" | "bash" => "shellscript",
        "toml" => "toml",
        "json" => "json",
        "yaml" | "yml" => "yaml",
        "md" => "markdown",
        "sql" => "sql",
        "zig" => "zig",
        "hs" => "haskell",
        "ex" | "exs" => "elixir",
        "scala" => "scala",
        _ => "plaintext",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let check = |arg: &str, path: &str, lines: Option<(u32, u32)>| {
            let spec = parse_spec(arg).expect(arg);
            assert_eq!(spec.path, PathBuf::from(path), "{arg}");
            assert_eq!(
                spec.lines,
                lines.map(|(start, end)| Lines { start, end }),
                "{arg}"
            );
        };
        check("src/a.rs", "src/a.rs", None);
        check("src/a.rs:3", "src/a.rs", Some((3, 3)));
        check("src/a.rs:3-10", "src/a.rs", Some((3, 10)));
        check("c:notanumber", "c:notanumber", None);
        for bad in ["a.rs:0", "a.rs:5-2", "a.rs:3-x", "a.rs:1-0"] {
            assert_eq!(
                parse_spec(bad).expect_err(bad).code,
                super::super::exit::USAGE,
                "{bad}"
            );
        }
    }

    #[test]
    fn line_ranges_are_clamped() {
        let text = Rope::from_str("a\nbb\nccc\n");
        assert_eq!(line_range(&text, Lines { start: 2, end: 2 }), 2..5);
        assert_eq!(line_range(&text, Lines { start: 2, end: 99 }), 2..9);
        assert_eq!(line_range(&text, Lines { start: 50, end: 99 }), 9..9);
    }

    #[test]
    fn chunks_cover_whole_lines_within_the_limit() {
        let src: String = (0..100).map(|i| format!("line {i:03}\n")).collect();
        let text = Rope::from_str(&src);
        let all = chunks(&text, 0..text.len_chars(), 100);
        assert!(all.len() >= 9, "{}", all.len());
        assert_eq!(all.first().map(|r| r.start), Some(0));
        assert_eq!(all.last().map(|r| r.end), Some(text.len_chars()));
        for pair in all.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        for r in &all {
            assert!(r.len() <= 100, "{r:?}");
            assert_eq!(text.char_to_line(r.start) * 9, r.start, "starts on a line");
        }
        let one = chunks(&text, 0..text.len_chars(), 1_000_000);
        assert_eq!(one, vec![0..text.len_chars()]);
        assert!(chunks(&Rope::from_str("\n  \n"), 0..4, 10).is_empty());
        // A single line longer than the limit is one chunk of its own.
        let long = Rope::from_str(&format!("{}\nx\n", "y".repeat(50)));
        assert_eq!(chunks(&long, 0..long.len_chars(), 10), vec![0..51, 51..53]);
    }

    #[test]
    fn walk_honours_gitignore_hidden_and_exclude() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let write = |p: &str| {
            let path = root.join(p);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, "fn main() {}\n").expect("write");
        };
        write("src/main.rs");
        write("src/secrets/token.rs");
        write("build/out.rs");
        write(".hidden.rs");
        write("key.pem");
        std::fs::write(root.join(".gitignore"), "build/\n").expect("write");
        let exclude = ["*.pem".to_owned(), "**/secrets/**".to_owned()];
        let (targets, skipped) =
            collect(&[root.to_string_lossy().into_owned()], root, &exclude).expect("collect");
        let shown: Vec<&str> = targets.iter().map(|t| t.display.as_str()).collect();
        assert_eq!(shown, ["src/main.rs"]);
        let mut skipped: Vec<&str> = skipped.iter().map(|s| s.path.as_str()).collect();
        skipped.sort();
        assert_eq!(skipped, ["key.pem", "src/secrets/token.rs"]);
        let missing = collect(
            &[root.join("nope.rs").to_string_lossy().into_owned()],
            root,
            &exclude,
        );
        assert_eq!(
            missing.expect_err("missing").code,
            super::super::exit::USAGE
        );
    }

    #[test]
    fn binary_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("x.bin");
        std::fs::write(&bin, [0u8, 1, 2]).expect("write");
        assert_eq!(read_text(&bin), Err("binary file".into()));
    }
}
