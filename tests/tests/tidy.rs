//! Checks of the source tree itself: every Rust file of the project opens with a `//!` line that
//! names its single responsibility, and `server/src` keeps its layers (no `use crate::` of a
//! higher layer, no import circle).

use std::path::{Path, PathBuf};

/// The repository root (this crate lives in `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate has a parent")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, recursively, skipping build output.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == "node_modules" || name == "corpus" || name == "artifacts" {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_module_doc_line() {
    let root = root();
    let mut files = Vec::new();
    for dir in ["server", "tests", "bench", "fuzz"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(
        files.len() > 50,
        "found only {} files under {}",
        files.len(),
        root.display()
    );
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let first = text.lines().next().unwrap_or("");
            !(first.starts_with("//! ") && first.len() > 8)
        })
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "these files do not start with a `//!` line saying what they are for:\n{}",
        missing.join("\n")
    );
}

/// The server's top-level modules, lowest layer first. A module may use modules of its own layer
/// or lower ones, never a higher one; within a layer the uses must not form a circle.
const LAYERS: &[&[&str]] = &[
    &["action", "paths", "docs"],
    &["config"],
    &["logging"],
    &["provider", "team"],
    &[
        "syntax", "render", "prompts", "usage", "router", "cache", "complete",
    ],
    &["engine"],
    &["lsp"],
    &["cli"],
    &["fuzzing"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// A file's text up to its unit tests, without comment lines.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `server/src/lsp/handlers/code_action.rs` → `["lsp", "handlers", "code_action"]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts == ["lib"] || parts == ["main"] {
        Vec::new()
    } else {
        parts
    }
}

/// The modules a file's `use` declarations name, resolved against `known`, as module paths.
fn uses(module: &[String], code: &str, known: &[Vec<String>]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for statement in code.split(';') {
        let s = statement.trim();
        let Some(rest) = s
            .strip_prefix("pub use ")
            .or_else(|| s.strip_prefix("pub(crate) use "))
            .or_else(|| s.strip_prefix("use "))
        else {
            continue;
        };
        let path: Vec<&str> = rest.split("::").map(str::trim).collect();
        let (mut base, tail): (Vec<String>, &[&str]) = match path.first() {
            Some(&"crate") => (Vec::new(), &path[1..]),
            Some(&"super") => {
                let mut base = module.to_vec();
                base.pop();
                let mut tail = &path[1..];
                while tail.first() == Some(&"super") {
                    base.pop();
                    tail = &tail[1..];
                }
                (base, tail)
            }
            Some(&"self") => (module.to_vec(), &path[1..]),
            _ => continue,
        };
        // The longest prefix that is a module of ours; `{a, b}` groups name each of theirs.
        let mut best = None;
        for part in tail {
            let names: Vec<&str> = part
                .trim_start_matches('{')
                .trim_end_matches('}')
                .split(',')
                .map(|n| n.trim().split(" as ").next().unwrap_or("").trim())
                .filter(|n| !n.is_empty())
                .collect();
            if names.len() > 1 {
                for name in names {
                    let mut m = base.clone();
                    m.push(name.to_owned());
                    if known.contains(&m) {
                        out.push(m);
                    }
                }
                break;
            }
            base.push(names.first().copied().unwrap_or("").to_owned());
            if known.contains(&base) {
                best = Some(base.clone());
            }
        }
        out.extend(best);
    }
    out
}

#[test]
fn server_modules_import_only_downwards_and_never_in_a_circle() {
    let src = root().join("server").join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: Vec<Vec<String>> = files.iter().map(|f| module_path(&src, f)).collect();
    let mut problems = Vec::new();
    let mut edges: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    for (file, module) in files.iter().zip(&modules) {
        // Unit-test modules (`foo/tests.rs`, `foo/proptests.rs`) may reach anything.
        if module
            .last()
            .is_some_and(|m| m == "tests" || m == "proptests")
        {
            continue;
        }
        let code = code_of(file);
        let Some(top) = module.first() else { continue };
        let Some(own) = layer(top) else {
            problems.push(format!(
                "{top}: not in LAYERS; give the new module its layer"
            ));
            continue;
        };
        // Paths anywhere in the code, not only in `use`: `crate::engine::Job` counts too.
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if let Some(other) = layer(&name) {
                if other > own {
                    problems.push(format!(
                        "{}: uses `crate::{name}`, a higher layer",
                        module.join("::")
                    ));
                }
            }
        }
        for target in uses(module, &code, &modules) {
            // A child using its parent's items is how Rust modules share helpers.
            if module.starts_with(&target) {
                continue;
            }
            edges.push((module.clone(), target));
        }
    }
    // A circle among files: depth-first search for a back edge.
    fn visit(
        node: &Vec<String>,
        edges: &[(Vec<String>, Vec<String>)],
        path: &mut Vec<Vec<String>>,
        done: &mut Vec<Vec<String>>,
        found: &mut Vec<String>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(start) = path.iter().position(|p| p == node) {
            let circle: Vec<String> = path[start..].iter().map(|m| m.join("::")).collect();
            found.push(format!("{} -> {}", circle.join(" -> "), node.join("::")));
            return;
        }
        path.push(node.clone());
        for (_, to) in edges.iter().filter(|(from, _)| from == node) {
            // A use of a module's child is a use of the module's file and of the child's.
            visit(to, edges, path, done, found);
        }
        path.pop();
        done.push(node.clone());
    }
    let mut done = Vec::new();
    let mut found = Vec::new();
    for module in &modules {
        visit(module, &edges, &mut Vec::new(), &mut done, &mut found);
    }
    problems.extend(found.into_iter().map(|c| format!("import circle: {c}")));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
