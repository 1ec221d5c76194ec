//! The definitions a selection uses: the functions, types and constants it names that are
//! defined elsewhere in its file or in other open documents of its language.

use std::collections::HashSet;
use std::ops::Range;

use tree_sitter::Node;

use super::{DefKind, Parsed, Source};

/// At most this many definitions go into a prompt.
pub const MAX_DEFINITIONS: usize = 12;
/// A definition's whole text is offered when it is at most this long.
const MAX_BODY_LINES: usize = 15;
const MAX_BODY_CHARS: usize = 1200;
/// A signature longer than this is cut.
const MAX_SIGNATURE_CHARS: usize = 600;
/// Names looked up, at most, in the order the selection uses them.
const MAX_NAMES: usize = 200;

/// A definition the selection uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Definition {
    pub name: String,
    pub kind: DefKind,
    /// `function`, `method`, `struct`, `class`, `constant`, …
    pub label: String,
    /// The class-like definition it is a member of (`impl Stats`, `class Cache`), if any.
    pub container: Option<String>,
    /// The document it is in; `None` for the selection's own file.
    pub file: Option<String>,
    /// 0-based first line.
    pub line: u32,
    /// Its head: the text up to its body (`fn largest(values: &[i32]) -> i32`).
    pub signature: String,
    /// Its whole text, when short.
    pub full: Option<String>,
}

/// One definition found in a tree.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub name: String,
    pub kind: DefKind,
    pub label: &'static str,
    pub container: Option<String>,
    /// The definition with its decorators and `export`, in bytes.
    pub bytes: Range<usize>,
    pub node_start: usize,
    pub body_start: Option<usize>,
}

/// The definitions `selection` (chars of `target`'s text) uses, in the order it first uses
/// them, at most [`MAX_DEFINITIONS`]: a name defined in the same file outside the selection
/// first, else in `others` (in their order). Definitions that overlap the selection (it
/// itself, the function around it) are left out; so is a name the selection defines.
pub fn definitions_used(
    target: &Parsed,
    selection: Range<usize>,
    others: &[Source],
) -> Vec<Definition> {
    let bytes = target.bytes(selection);
    let names = names_used(target, bytes.clone());
    if names.is_empty() {
        return Vec::new();
    }
    let own_index;
    let own: &[Entry] = match target.derived(|| index(target)) {
        Some(own) => own,
        None => {
            own_index = index(target);
            &own_index
        }
    };
    let defined_inside: HashSet<&str> = own
        .iter()
        .filter(|e| e.bytes.start >= bytes.start && e.bytes.end <= bytes.end)
        .map(|e| e.name.as_str())
        .collect();
    let mut other_indexes: Vec<Option<std::borrow::Cow<'_, [Entry]>>> = vec![None; others.len()];
    let mut out = Vec::new();
    for name in names
        .iter()
        .filter(|n| !defined_inside.contains(n.as_str()))
    {
        if out.len() >= MAX_DEFINITIONS {
            break;
        }
        let here = own.iter().find(|e| {
            &e.name == name && (e.bytes.end <= bytes.start || e.bytes.start >= bytes.end)
        });
        if let Some(e) = here {
            out.push(definition(target, e, None));
            continue;
        }
        for (i, source) in others.iter().enumerate() {
            if !source.parsed.lang().shares_definitions_with(target.lang()) {
                continue;
            }
            let entries = other_indexes[i].get_or_insert_with(|| {
                let parsed = &source.parsed;
                match parsed.derived(|| index(parsed)) {
                    Some(entries) => std::borrow::Cow::Borrowed(entries.as_slice()),
                    None => std::borrow::Cow::Owned(index(parsed)),
                }
            });
            if let Some(e) = entries.iter().find(|e| &e.name == name) {
                out.push(definition(&source.parsed, e, Some(source.name.clone())));
                break;
            }
        }
    }
    out
}

/// The names the code in `bytes` uses, first use first, without repeats.
fn names_used(parsed: &Parsed, bytes: Range<usize>) -> Vec<String> {
    let lang = parsed.lang();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut cursor = parsed.tree().walk();
    'walk: loop {
        let node = cursor.node();
        let inside = node.end_byte() > bytes.start && node.start_byte() < bytes.end;
        if inside {
            if node.child_count() == 0 || lang.is_name(node.kind()) {
                if lang.is_name(node.kind()) {
                    let name = parsed.source(node);
                    if seen.insert(name.clone()) {
                        out.push(name);
                        if out.len() >= MAX_NAMES {
                            break 'walk;
                        }
                    }
                }
            } else if cursor.goto_first_child() {
                continue;
            }
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                break 'walk;
            }
        }
    }
    out
}

/// The definitions of a tree: top-level items and the members of classes, impls, traits,
/// interfaces and modules (not what is local to a function body), in document order.
pub(crate) fn index(parsed: &Parsed) -> Vec<Entry> {
    let mut out = Vec::new();
    collect(parsed, parsed.root(), None, None, &mut out);
    out
}

fn collect(
    parsed: &Parsed,
    container: Node,
    wrapper: Option<Node>,
    owner: Option<&str>,
    out: &mut Vec<Entry>,
) {
    let lang = parsed.lang();
    let source = |n: Node| parsed.source(n);
    let mut cursor = container.walk();
    let children: Vec<Node> = container.named_children(&mut cursor).collect();
    for node in children {
        let kind = node.kind();
        if lang.is_wrapper(kind) {
            collect(parsed, node, Some(node), owner, out);
            continue;
        }
        let outer = wrapper.filter(|w| w.id() == container.id()).unwrap_or(node);
        if let Some((def, names)) = lang.definition(node, &source) {
            let label = lang.label(kind, def);
            let body = node.child_by_field_name("body");
            for name in &names {
                out.push(Entry {
                    name: name.clone(),
                    kind: def,
                    label,
                    container: owner.map(str::to_owned),
                    bytes: outer.start_byte()..outer.end_byte(),
                    node_start: node.start_byte(),
                    body_start: body.map(|b| b.start_byte()),
                });
            }
            if lang.is_class(kind) {
                let title = match names.first() {
                    Some(n) => format!("{label} `{n}`"),
                    None => label.to_owned(),
                };
                // Members live in the body (`declaration_list`, `class_body`, `block`, …).
                if let Some(body) = body {
                    collect(parsed, body, None, Some(&title), out);
                }
            }
            continue;
        }
        // Containers that hold definitions without being one: Rust `mod`, TypeScript namespaces.
        if matches!(
            kind,
            "mod_item" | "internal_module" | "module" | "ambient_declaration"
        ) {
            if let Some(body) = node.child_by_field_name("body") {
                collect(parsed, body, None, owner, out);
            } else if kind == "ambient_declaration" {
                collect(parsed, node, None, owner, out);
            }
        }
    }
}

fn definition(parsed: &Parsed, e: &Entry, file: Option<String>) -> Definition {
    let text = parsed.slice(e.bytes.clone());
    let signature = match e.body_start {
        Some(body) if body > e.node_start => {
            let head = parsed.slice(e.bytes.start..body);
            head.trim_end().trim_end_matches('{').trim_end().to_owned()
        }
        _ => {
            let lines: Vec<&str> = text.lines().collect();
            if lines.len() <= 3 {
                text.trim_end().to_owned()
            } else {
                format!("{} …", lines[0].trim_end())
            }
        }
    };
    let short = text.lines().count() <= MAX_BODY_LINES && text.chars().count() <= MAX_BODY_CHARS;
    Definition {
        name: e.name.clone(),
        kind: e.kind,
        label: e.label.to_owned(),
        container: e.container.clone(),
        file,
        line: u32::try_from(parsed.line_of(e.bytes.start)).unwrap_or(u32::MAX),
        signature: cut(&signature, MAX_SIGNATURE_CHARS),
        full: short.then(|| text.trim_end().to_owned()),
    }
}

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{} …", &s[..at]),
        None => s.to_owned(),
    }
}
