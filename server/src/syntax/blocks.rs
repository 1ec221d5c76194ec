//! Widening by syntax: the smallest function, method or class that holds a selection.

use std::ops::Range;

use serde::Serialize;
use tree_sitter::Node;

use super::{DefKind, Parsed};

/// The definition a selection was widened to (or that it is exactly).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Block {
    /// What it is, in the language's words: `function`, `method`, `class`, `impl`, `struct`, ….
    pub kind: String,
    /// Its name, when it has one (`largest`, `Stats`); an anonymous callback has none.
    pub name: Option<String>,
    /// 0-based first and last line.
    pub start_line: u32,
    pub end_line: u32,
    /// Char range in the text: whole lines where the definition stands alone on them.
    #[serde(skip)]
    pub chars: Range<usize>,
}

impl Block {
    /// `function `largest` (lines 10–12)`, for messages.
    pub fn describe(&self) -> String {
        let what = match &self.name {
            Some(name) => format!("{} `{name}`", self.kind),
            None => self.kind.clone(),
        };
        if self.start_line == self.end_line {
            format!("{what} (line {})", self.start_line + 1)
        } else {
            format!(
                "{what} (lines {}–{})",
                self.start_line + 1,
                self.end_line + 1
            )
        }
    }
}

/// The smallest function, method or class (struct, enum, trait, impl, interface) that holds
/// `selection` (chars; a cursor is an empty range), or `None` at top level.
///
/// A definition holds the selection when the selection lies between the start of the
/// comments and attributes directly above it (no blank line between) and its end: a cursor on
/// a doc comment means the function it documents. Anonymous functions count only when they
/// span several lines (a callback, not `x => x + 1`). The block takes in decorators, `export`,
/// Rust attributes, and the comments above when the selection starts in them; it covers whole
/// lines when nothing else stands on its first and last line (a trailing `);` is allowed).
pub fn enclosing_block(parsed: &Parsed, selection: Range<usize>) -> Option<Block> {
    let (start, end) = trimmed(parsed, selection);
    // Every question below about a node's parent is answered from this one descent:
    // tree-sitter finds a parent by scanning down from the root, each time it is asked.
    let chain = path(parsed, start, end);
    let inner = *chain.last()?;
    let (mut ancestors, mut found) = if let Some(mut below) = same_lines_block(parsed, inner) {
        let found = below.pop()?;
        let mut ancestors = chain.clone();
        ancestors.extend(below);
        (ancestors, found)
    } else if let Some(child) = documented_child(parsed, inner, start, end) {
        (chain.clone(), child)
    } else if let Some(i) = chain.iter().rposition(|n| is_block(parsed, *n)) {
        (chain[..i].to_vec(), chain[i])
    } else {
        let (i, child) = (0..chain.len())
            .rev()
            .find_map(|i| documented_child(parsed, chain[i], start, end).map(|c| (i, c)))?;
        (chain[..=i].to_vec(), child)
    };
    // With its wrappers: `export`, decorators.
    while let Some(parent) = ancestors.last().copied() {
        if ancestors.len() > 1 && parsed.lang().is_wrapper(parent.kind()) {
            found = parent;
            ancestors.pop();
        } else {
            break;
        }
    }
    let parent = ancestors.last().copied();
    let mut first = attached_start(parsed, parent, found, false);
    if start < first {
        first = attached_start(parsed, parent, found, true);
    }
    let widened = same_lines(parsed, &ancestors, found);
    let bytes = first.min(widened.start_byte())..widened.end_byte();
    Some(describe(parsed, found, bytes))
}

/// The selection in bytes without the whitespace at its ends, so a whole-line selection
/// ending at the next line's start does not reach into that line.
fn trimmed(parsed: &Parsed, selection: Range<usize>) -> (usize, usize) {
    let text = parsed.text();
    let len = text.len_chars();
    let (mut s, mut e) = (selection.start.min(len), selection.end.min(len));
    if s > e {
        std::mem::swap(&mut s, &mut e);
    }
    if e > s {
        while s < e && text.char(s).is_whitespace() {
            s += 1;
        }
        while e > s && text.char(e - 1).is_whitespace() {
            e -= 1;
        }
    }
    let bytes = parsed.bytes(s..e);
    (bytes.start, bytes.end)
}

/// The nodes from the root down to the smallest named node that holds bytes `start..end`.
fn path(parsed: &Parsed, start: usize, end: usize) -> Vec<Node<'_>> {
    let mut cursor = parsed.tree().walk();
    let mut out = vec![cursor.node()];
    while cursor.goto_first_child_for_byte(start).is_some() {
        let mut holds = false;
        loop {
            let n = cursor.node();
            if n.start_byte() > start {
                break;
            }
            if n.end_byte() >= end && n.end_byte() > n.start_byte() {
                holds = true;
                break;
            }
            if !cursor.goto_next_sibling() {
                break;
            }
        }
        if !holds {
            break;
        }
        out.push(cursor.node());
    }
    while out.len() > 1 && out.last().is_some_and(|n| !n.is_named()) {
        out.pop();
    }
    out
}

/// A definition inside `node` on exactly its lines: what a selection of a whole statement
/// such as `export const f = () => {…};` is about. The nodes below `node` down to it.
fn same_lines_block<'a>(parsed: &Parsed, node: Node<'a>) -> Option<Vec<Node<'a>>> {
    let lines = |n: Node| (parsed.line_of(n.start_byte()), parsed.line_of(n.end_byte()));
    let want = lines(node);
    let mut current = node;
    let mut below = Vec::new();
    for _ in 0..8 {
        if is_block(parsed, current) {
            return (current.id() != node.id()).then_some(below);
        }
        // Only the children that start on the first line can span the same lines, and they
        // come first: a file's thousands of items after them are never visited.
        let mut cursor = current.walk();
        let next = current
            .named_children(&mut cursor)
            .take_while(|c| parsed.line_of(c.start_byte()) == want.0)
            .find(|c| lines(*c) == want);
        current = next?;
        below.push(current);
    }
    None
}

/// A function, a class, a multi-line closure, or a wrapper (decorator, `export`) of one.
fn is_block(parsed: &Parsed, node: Node) -> bool {
    let lang = parsed.lang();
    let kind = node.kind();
    if lang.is_function(kind) || lang.is_class(kind) {
        return true;
    }
    if lang.is_closure(kind) {
        return parsed.line_of(node.start_byte()) < parsed.line_of(node.end_byte());
    }
    lang.is_wrapper(kind) && inner_definition(parsed, node).is_some()
}

/// The definition a wrapper (`@decorator def`, `export function`) wraps.
fn inner_definition<'a>(parsed: &Parsed, wrapper: Node<'a>) -> Option<Node<'a>> {
    let lang = parsed.lang();
    let mut cursor = wrapper.walk();
    let found = wrapper
        .named_children(&mut cursor)
        .find(|c| lang.is_function(c.kind()) || lang.is_class(c.kind()));
    found
}

/// A definition among `container`'s children that the selection reaches from the comments
/// above it (the selection starts in them and ends inside the definition).
fn documented_child<'a>(
    parsed: &Parsed,
    container: Node<'a>,
    start: usize,
    end: usize,
) -> Option<Node<'a>> {
    // The child holding the selection's end, or, when that is a comment or an attribute, the
    // first child after the run of them. Found by position: walking a file's thousands of
    // top-level items one by one is what a code-action request cannot afford.
    let lang = parsed.lang();
    let last = if end > start { end - 1 } else { end };
    let mut child = child_at(container, last)?;
    while lang.is_comment(child.kind()) || lang.is_attribute(child.kind()) {
        child = child.next_named_sibling()?;
    }
    (is_block(parsed, child)
        && child.start_byte() > start
        && child.end_byte() >= end
        && attached_start(parsed, Some(container), child, true) <= start)
        .then_some(child)
}

/// The named child of `container` that holds byte `at` (or, in the space between two, the
/// one after it).
fn child_at(container: Node<'_>, at: usize) -> Option<Node<'_>> {
    let mut cursor = container.walk();
    cursor.goto_first_child_for_byte(at)?;
    let node = cursor.node();
    node.is_named().then_some(node)
}

/// The named sibling just before `node` in `parent`, found by position (tree-sitter's own
/// walk visits every earlier sibling); `None` when an unnamed token (a bracket) or nothing
/// comes first.
fn previous_named<'a>(parsed: &Parsed, parent: Node<'a>, node: Node<'a>) -> Option<Node<'a>> {
    let text = parsed.text();
    let mut b = node.start_byte().min(text.len_bytes());
    while b > parent.start_byte() && text.byte(b - 1).is_ascii_whitespace() {
        b -= 1;
    }
    if b <= parent.start_byte() {
        return None;
    }
    let prev = child_at(parent, b - 1)?;
    (prev.id() != node.id() && prev.end_byte() <= node.start_byte()).then_some(prev)
}

/// Where `node` (a child of `parent`) starts once the attributes (and, with `comments`, the
/// comments) directly above it are counted in; a blank line ends the run.
fn attached_start<'a>(
    parsed: &Parsed,
    parent: Option<Node<'a>>,
    node: Node<'a>,
    comments: bool,
) -> usize {
    let lang = parsed.lang();
    let Some(parent) = parent else {
        return node.start_byte();
    };
    let mut first = node;
    while let Some(prev) = previous_named(parsed, parent, first) {
        let kind = prev.kind();
        let attached = lang.is_attribute(kind) || (comments && lang.is_comment(kind));
        let adjacent = last_line(parsed, prev) + 1 >= parsed.line_of(first.start_byte());
        // A trailing comment at the end of the previous item's line is not about this one.
        let own_line = previous_named(parsed, parent, prev)
            .is_none_or(|p| last_line(parsed, p) < parsed.line_of(prev.start_byte()));
        if attached && adjacent && own_line {
            first = prev;
        } else {
            break;
        }
    }
    first.start_byte()
}

/// The line of a node's last char (Rust's line comments end with their line break).
fn last_line(parsed: &Parsed, node: Node) -> usize {
    parsed.line_of(node.end_byte().saturating_sub(1).max(node.start_byte()))
}

/// The outermost of `ancestors` (root first, `node`'s parent last) that starts and ends on the
/// same lines as `node` (the statement a callback's call is, `const f = () => {…};`), short of
/// the whole file.
fn same_lines<'a>(parsed: &Parsed, ancestors: &[Node<'a>], node: Node<'a>) -> Node<'a> {
    let (first, last) = (
        parsed.line_of(node.start_byte()),
        parsed.line_of(node.end_byte()),
    );
    let mut best = node;
    for a in ancestors.iter().skip(1).rev() {
        if parsed.line_of(a.start_byte()) == first && parsed.line_of(a.end_byte()) == last {
            best = *a;
        } else {
            break;
        }
    }
    best
}

fn describe(parsed: &Parsed, node: Node, bytes: Range<usize>) -> Block {
    let lang = parsed.lang();
    let def = if lang.is_wrapper(node.kind()) {
        inner_definition(parsed, node).unwrap_or(node)
    } else {
        node
    };
    let source = |n: Node| parsed.source(n);
    let (kind, name) = match lang.definition(def, &source) {
        Some((k, names)) => (lang.label(def.kind(), k), names.into_iter().next()),
        None => (
            lang.label(def.kind(), DefKind::Function),
            closure_name(parsed, def),
        ),
    };
    let chars = whole_lines(parsed, bytes);
    let text = parsed.text();
    Block {
        kind: kind.to_owned(),
        name,
        start_line: to_u32(text.char_to_line(chars.start)),
        end_line: to_u32(text.char_to_line(chars.end)),
        chars,
    }
}

/// The name a closure is bound to: `const f = () => {}`, `f = lambda: …`, `let f = |x| …;`.
fn closure_name(parsed: &Parsed, node: Node) -> Option<String> {
    let parent = node.parent()?;
    let field = match parent.kind() {
        "variable_declarator" => "name",
        "assignment" | "assignment_expression" => "left",
        "let_declaration" => "pattern",
        "pair" => "key",
        _ => return None,
    };
    let name = parent.child_by_field_name(field)?;
    matches!(name.kind(), "identifier" | "property_identifier" | "string")
        .then(|| parsed.source(name))
}

/// Chars of `bytes`, grown to the start of the first line when only indentation precedes it,
/// and to the end of the last line (without its terminator) when only whitespace or closing
/// punctuation (`)`, `;`, `,`) follows.
fn whole_lines(parsed: &Parsed, bytes: Range<usize>) -> Range<usize> {
    let text = parsed.text();
    let chars = parsed.bytes_to_chars(bytes);
    let first = text.char_to_line(chars.start);
    let line_start = text.line_to_char(first);
    let start = if text
        .slice(line_start..chars.start)
        .chars()
        .all(|c| c == ' ' || c == '\t')
    {
        line_start
    } else {
        chars.start
    };
    let last = text.char_to_line(chars.end);
    let line_end = text.line_to_char(last) + super::parse::content_len(text, last);
    let end = if chars.end <= line_end
        && text
            .slice(chars.end..line_end)
            .chars()
            .all(|c| matches!(c, ' ' | '\t' | ')' | ';' | ','))
    {
        line_end
    } else {
        chars.end
    };
    start..end.max(start)
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
