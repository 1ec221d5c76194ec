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
    let root = parsed.root();
    let inner = root.named_descendant_for_byte_range(start, end)?;
    let found = same_lines_block(parsed, inner)
        .or_else(|| documented_child(parsed, inner, start, end))
        .or_else(|| ancestors(inner).find(|n| is_block(parsed, *n)))
        .map(|n| outer(parsed, n))
        .or_else(|| ancestors(inner).find_map(|a| documented_child(parsed, a, start, end)))?;
    let mut first = attached_start(parsed, found, false);
    if start < first {
        first = attached_start(parsed, found, true);
    }
    let widened = same_lines(parsed, found);
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

fn ancestors(node: Node<'_>) -> impl Iterator<Item = Node<'_>> {
    std::iter::successors(Some(node), |n| n.parent())
}

/// A definition inside `node` on exactly its lines: what a selection of a whole statement
/// such as `export const f = () => {…};` is about.
fn same_lines_block<'a>(parsed: &Parsed, node: Node<'a>) -> Option<Node<'a>> {
    let lines = |n: Node| (parsed.line_of(n.start_byte()), parsed.line_of(n.end_byte()));
    let want = lines(node);
    let mut current = node;
    for _ in 0..8 {
        if is_block(parsed, current) {
            return (current.id() != node.id()).then_some(current);
        }
        let mut cursor = current.walk();
        let next = current
            .named_children(&mut cursor)
            .find(|c| lines(*c) == want);
        current = next?;
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

/// The definition with its wrappers: `export`, decorators.
fn outer<'a>(parsed: &Parsed, mut node: Node<'a>) -> Node<'a> {
    while let Some(p) = node.parent() {
        if parsed.lang().is_wrapper(p.kind()) {
            node = p;
        } else {
            break;
        }
    }
    node
}

/// A definition among `container`'s children that the selection reaches from the comments
/// above it (the selection starts in them and ends inside the definition).
fn documented_child<'a>(
    parsed: &Parsed,
    container: Node<'a>,
    start: usize,
    end: usize,
) -> Option<Node<'a>> {
    let mut cursor = container.walk();
    let children: Vec<Node<'a>> = container.named_children(&mut cursor).collect();
    children.into_iter().find(|c| {
        is_block(parsed, *c)
            && c.start_byte() > start
            && c.end_byte() >= end
            && attached_start(parsed, *c, true) <= start
    })
}

/// Where `node` starts once the attributes (and, with `comments`, the comments) directly
/// above it are counted in; a blank line ends the run.
fn attached_start(parsed: &Parsed, node: Node, comments: bool) -> usize {
    let lang = parsed.lang();
    let mut first = node;
    while let Some(prev) = first.prev_named_sibling() {
        let kind = prev.kind();
        let attached = lang.is_attribute(kind) || (comments && lang.is_comment(kind));
        let adjacent = last_line(parsed, prev) + 1 >= parsed.line_of(first.start_byte());
        // A trailing comment at the end of the previous item's line is not about this one.
        let own_line = prev
            .prev_sibling()
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

/// The outermost ancestor that starts and ends on the same lines as `node` (the statement a
/// callback's call is, `const f = () => {…};`), short of the whole file.
fn same_lines<'a>(parsed: &Parsed, node: Node<'a>) -> Node<'a> {
    let (first, last) = (
        parsed.line_of(node.start_byte()),
        parsed.line_of(node.end_byte()),
    );
    let mut best = node;
    for a in ancestors(node).skip(1) {
        if a.parent().is_none() {
            break;
        }
        if parsed.line_of(a.start_byte()) == first && parsed.line_of(a.end_byte()) == last {
            best = a;
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
