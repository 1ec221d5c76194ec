//! Parsing a rope with tree-sitter, in full or incrementally after edits, within a size and time bound.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::{ControlFlow, Range};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ropey::Rope;
use tree_sitter::{InputEdit, Node, ParseOptions, Parser, Point, Tree};

use super::Lang;

/// Documents larger than this are not parsed: the heuristics serve them.
pub const MAX_PARSE_BYTES: usize = 16 * 1024 * 1024;
/// A parse that takes longer than this is abandoned (minified or generated code).
const MAX_PARSE_TIME: Duration = Duration::from_secs(5);

/// A syntax tree together with the exact text it was parsed from.
///
/// Cloning is cheap: the tree is reference-counted by tree-sitter and the text is a rope.
#[derive(Clone)]
pub struct Parsed {
    lang: Lang,
    tree: Tree,
    text: Rope,
    /// What is derived from exactly this tree, computed once and shared by its clones (the
    /// definitions index, `defs::index`): every request on an unchanged document reuses it.
    derived: Arc<OnceLock<Box<dyn Any + Send + Sync>>>,
    /// Results computed from this tree for one input each (a check of one replacement),
    /// the last [`MEMO_ENTRIES`], shared by its clones.
    memo: Arc<Mutex<Vec<Memo>>>,
    /// This tree's number in this process, shared by its clones and never given to another
    /// tree: what a memo keyed by several trees (a prompt quoting other documents) names them by.
    id: u64,
}

/// The next [`Parsed::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One remembered result: the hash of its input and the value.
type Memo = (blake3::Hash, Arc<dyn Any + Send + Sync>);

/// How many results [`Parsed::memo`] keeps per tree: a few answers on one version.
const MEMO_ENTRIES: usize = 16;

impl std::fmt::Debug for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parsed")
            .field("lang", &self.lang)
            .field("bytes", &self.text.len_bytes())
            .field("has_errors", &self.has_errors())
            .finish()
    }
}

/// One syntax error: an `ERROR` node or a node the parser had to invent (`MISSING`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub bytes: Range<usize>,
    /// The kind of the node that is missing (`)`, `identifier`), for a missing node.
    pub missing: Option<&'static str>,
}

impl Parsed {
    /// The value derived from this tree by `make`, made on the first call; every later call
    /// (on this value or a clone) gets the same one. One kind of value per tree: `None` when
    /// a value of another type was made first.
    pub(crate) fn derived<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Option<&T> {
        self.derived
            .get_or_init(|| Box::new(make()))
            .downcast_ref::<T>()
    }

    /// The result of `make` for the input hashed as `key`, remembered for this tree (and its
    /// clones): the same question on an unchanged document is answered without `make`.
    pub(crate) fn memo<T: Clone + Any + Send + Sync>(
        &self,
        key: blake3::Hash,
        make: impl FnOnce() -> T,
    ) -> T {
        let lock = || self.memo.lock().unwrap_or_else(|e| e.into_inner());
        let known = lock()
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.downcast_ref::<T>().cloned());
        if let Some(value) = known {
            return value;
        }
        // Made outside the lock: two callers racing on one input both make it, harmlessly.
        let value = make();
        let mut memo = lock();
        if memo.len() >= MEMO_ENTRIES {
            memo.remove(0);
        }
        memo.push((key, Arc::new(value.clone())));
        value
    }

    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// See [`Parsed::id`](Parsed): equal for two values only when they are clones of one tree.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The text the tree describes.
    pub fn text(&self) -> &Rope {
        &self.text
    }

    /// Whether the tree holds any syntax error.
    pub fn has_errors(&self) -> bool {
        self.tree.root_node().has_error()
    }

    pub(crate) fn tree(&self) -> &Tree {
        &self.tree
    }

    pub(crate) fn root(&self) -> Node<'_> {
        self.tree.root_node()
    }

    /// The source text of a node.
    pub(crate) fn source(&self, node: Node) -> String {
        self.slice(node.start_byte()..node.end_byte())
    }

    pub(crate) fn slice(&self, bytes: Range<usize>) -> String {
        let len = self.text.len_bytes();
        let (start, end) = (bytes.start.min(len), bytes.end.min(len));
        if start >= end {
            return String::new();
        }
        // Node bytes always fall on char boundaries: tree-sitter lexes UTF-8 whole.
        let from = self.text.byte_to_char(start);
        let to = self.text.byte_to_char(end);
        self.text.slice(from..to).to_string()
    }

    /// A byte range in chars.
    pub(crate) fn bytes_to_chars(&self, bytes: Range<usize>) -> Range<usize> {
        let len = self.text.len_bytes();
        self.text.byte_to_char(bytes.start.min(len))..self.text.byte_to_char(bytes.end.min(len))
    }

    /// A char range in bytes.
    pub(crate) fn bytes(&self, chars: Range<usize>) -> Range<usize> {
        let len = self.text.len_chars();
        self.text.char_to_byte(chars.start.min(len))..self.text.char_to_byte(chars.end.min(len))
    }

    /// 0-based line of a byte offset.
    pub(crate) fn line_of(&self, byte: usize) -> usize {
        self.text.byte_to_line(byte.min(self.text.len_bytes()))
    }

    /// The syntax errors whose nodes overlap `bytes` (all of them for `None`), in order.
    pub(crate) fn errors(&self, bytes: Option<Range<usize>>) -> Vec<SyntaxError> {
        let mut out = Vec::new();
        let mut cursor = self.tree.walk();
        let overlaps = |n: Node| match &bytes {
            None => true,
            // A missing node is empty: it overlaps a range it touches.
            Some(r) => n.start_byte() <= r.end && r.start <= n.end_byte(),
        };
        loop {
            let node = cursor.node();
            let descend = node.has_error() && overlaps(node);
            if descend && (node.is_error() || node.is_missing()) {
                out.push(SyntaxError {
                    bytes: node.start_byte()..node.end_byte(),
                    missing: node.is_missing().then(|| node.kind()),
                });
            } else if descend && cursor.goto_first_child() {
                continue;
            }
            loop {
                if cursor.goto_next_sibling() {
                    break;
                }
                if !cursor.goto_parent() {
                    return out;
                }
            }
        }
    }
}

pub(crate) use crate::docs::line_content_len as content_len;

/// Parses `text` in full; `None` when it is too large or takes too long.
pub fn parse(lang: Lang, text: &Rope) -> Option<Parsed> {
    run(lang, text, None).map(|tree| Parsed::fresh(lang, tree, text))
}

/// Parses `text` reusing `old`, a tree already edited (`Tree::edit`) to match it.
pub(crate) fn reparse(lang: Lang, old: &Tree, text: &Rope) -> Option<Parsed> {
    run(lang, text, Some(old)).map(|tree| Parsed::fresh(lang, tree, text))
}

impl Parsed {
    /// `tree` of `text`, with nothing derived from it yet.
    fn fresh(lang: Lang, tree: Tree, text: &Rope) -> Parsed {
        Parsed {
            lang,
            tree,
            text: text.clone(),
            derived: Arc::default(),
            memo: Arc::default(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// The tree of `parsed` after replacing `chars` of its text with `replacement`, reparsed
/// incrementally.
pub(crate) fn replaced(parsed: &Parsed, chars: Range<usize>, replacement: &str) -> Option<Parsed> {
    let old = &parsed.text;
    let len = old.len_chars();
    let (start, end) = (
        chars.start.min(len),
        chars.end.clamp(chars.start.min(len), len),
    );
    let start_byte = old.char_to_byte(start);
    let old_end_byte = old.char_to_byte(end);
    let mut text = old.clone();
    if start < end {
        text.remove(start..end);
    }
    if !replacement.is_empty() {
        text.insert(start, replacement);
    }
    let new_end_byte = start_byte + replacement.len();
    let edit = InputEdit {
        start_byte,
        old_end_byte,
        new_end_byte,
        start_position: point(old, start_byte),
        old_end_position: point(old, old_end_byte),
        new_end_position: point(&text, new_end_byte),
    };
    let mut tree = parsed.tree.clone();
    tree.edit(&edit);
    reparse(parsed.lang, &tree, &text)
}

/// The tree-sitter point (row, byte column) of a byte offset. Rows follow the rope's lines,
/// which also break at a lone `\r`; nothing here reads a node's point, only its bytes.
pub(crate) fn point(text: &Rope, byte: usize) -> Point {
    let byte = byte.min(text.len_bytes());
    let row = text.byte_to_line(byte);
    Point::new(row, byte - text.line_to_byte(row))
}

thread_local! {
    /// One parser per language and thread: making one allocates, and the background parser,
    /// blocking-pool threads and the CLI each reuse theirs.
    static PARSERS: RefCell<HashMap<Lang, Parser>> = RefCell::new(HashMap::new());
}

fn run(lang: Lang, text: &Rope, old: Option<&Tree>) -> Option<Tree> {
    let len = text.len_bytes();
    if len > MAX_PARSE_BYTES {
        return None;
    }
    PARSERS.with(|parsers| {
        let mut parsers = parsers.borrow_mut();
        let parser = match parsers.entry(lang) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let mut parser = Parser::new();
                if let Err(e) = parser.set_language(&lang.grammar()) {
                    tracing::error!("the {} grammar does not load: {e}", lang.name());
                    return None;
                }
                v.insert(parser)
            }
        };
        let started = Instant::now();
        let mut over_time = |_: &tree_sitter::ParseState| {
            if started.elapsed() > MAX_PARSE_TIME {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let mut read = |byte: usize, _: Point| -> &[u8] {
            if byte >= len {
                return &[];
            }
            let (chunk, chunk_start, _, _) = text.chunk_at_byte(byte);
            &chunk.as_bytes()[byte - chunk_start..]
        };
        let options = ParseOptions::new().progress_callback(&mut over_time);
        let tree = parser.parse_with_options(&mut read, old, Some(options));
        if tree.is_none() {
            // An abandoned parse leaves the parser mid-way; the next one must start clean.
            parser.reset();
            tracing::debug!(lang = lang.name(), bytes = len, "parse abandoned");
        }
        tree
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_from_rope_chunks_and_finds_errors() {
        let mut src = String::new();
        for i in 0..2000 {
            src.push_str(&format!("fn f{i}(x: u32) -> u32 {{ x + {i} }} // é 日本\n"));
        }
        let rope = Rope::from_str(&src);
        assert!(rope.chunks().count() > 10, "spans many chunks");
        let parsed = parse(Lang::Rust, &rope).expect("parses");
        assert!(!parsed.has_errors());
        assert_eq!(
            parsed.root().named_child_count(),
            4000,
            "2000 functions, 2000 comments"
        );

        let broken = parse(Lang::Rust, &Rope::from_str("fn f( {\n    1\n")).expect("parses");
        assert!(broken.has_errors());
        assert!(!broken.errors(None).is_empty());
        let missing = parse(Lang::Python, &Rope::from_str("print((1)\n")).expect("parses");
        let errors = missing.errors(None);
        assert!(!errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn a_replacement_reparses_incrementally_to_the_same_tree_as_a_full_parse() {
        let text = Rope::from_str("def a():\n    return 1\n\ndef b():\n    return 2\n");
        let parsed = parse(Lang::Python, &text).expect("parses");
        let at = text.to_string().find("return 2").expect("there");
        let chars = at..at + "return 2".len();
        let after = replaced(&parsed, chars.clone(), "return [2,\n        3]").expect("reparses");
        let full = parse(Lang::Python, after.text()).expect("parses");
        assert_eq!(after.root().to_sexp(), full.root().to_sexp());
        assert!(!after.has_errors());
        let bad = replaced(&parsed, chars, "return (2").expect("reparses");
        assert!(bad.has_errors());
    }
}
