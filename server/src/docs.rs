//! The document store: open documents as ropes, incremental edits, snapshots and range anchors.
//!
//! Protocol-free: positions arrive in our own `Position` type, in the encoding the LSP layer
//! negotiated. The store is `Send + Sync`; every method takes a DashMap guard only for the
//! duration of the call and hands out owned snapshots (a `Rope` clone is O(1)).

mod anchors;
mod position;
#[cfg(test)]
mod proptests;

use std::ops;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
pub use ropey::Rope;

pub use anchors::{AnchorId, AnchorState, MAX_ANCHORS};
pub use position::{
    char_to_position, chars_to_range, line_content_len, position_to_char, range_to_chars, Position,
    PositionEncoding, Range,
};

use anchors::{Anchors, Edit};

/// One content change of a `didChange` notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The replaced range, relative to the text the previous change produced; `None`
    /// replaces the whole document.
    pub range: Option<Range>,
    pub text: String,
}

/// An owned, immutable view of a document at one version.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub uri: String,
    pub version: i32,
    pub language_id: String,
    pub text: Rope,
}

/// What a successful `change` did to the document's anchors.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ChangeReport {
    /// The document's version after the change.
    pub version: i32,
    /// Anchors an edit touched; they now resolve to `AnchorState::Invalidated`.
    pub invalidated: Vec<AnchorId>,
    /// Live anchors whose char range differs from before the change.
    pub moved: Vec<AnchorId>,
    /// Each change as applied, in bytes, for the syntax trees that follow the document.
    pub edits: Vec<ByteEdit>,
}

/// One applied change in bytes, with (line, byte column) points: `start` and `old_end` in the
/// text before it, `new_end` in the text after it. What a syntax tree needs to follow an edit
/// (tree-sitter's `InputEdit`), computed here where both texts are at hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ByteEdit {
    pub start_byte: usize,
    pub old_end_byte: usize,
    pub new_end_byte: usize,
    pub start: (usize, usize),
    pub old_end: (usize, usize),
    pub new_end: (usize, usize),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    #[error("document {0} is not open (no didOpen received, or it was closed)")]
    UnknownDocument(String),
    #[error(
        "stale change for {uri}: version {got} is older than the current version {current}; change ignored"
    )]
    StaleVersion { uri: String, current: i32, got: i32 },
}

/// All open documents, keyed by URI string.
#[derive(Debug)]
pub struct Store {
    docs: DashMap<String, Document>,
    next_anchor: AtomicU64,
}

#[derive(Debug)]
struct Document {
    version: i32,
    language_id: String,
    text: Rope,
    anchors: Anchors,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    pub fn new() -> Self {
        Store {
            docs: DashMap::new(),
            next_anchor: AtomicU64::new(1),
        }
    }

    /// Opens (or, if already open, replaces) a document; its anchors start empty.
    pub fn open(&self, uri: &str, language_id: &str, version: i32, text: &str) {
        let doc = Document {
            version,
            language_id: language_id.to_owned(),
            text: Rope::from_str(text),
            anchors: Anchors::default(),
        };
        self.docs.insert(uri.to_owned(), doc);
    }

    /// Applies the changes of one notification, in order, each relative to the result of the
    /// previous one. All of them or none: ranges are clamped, so once the document is known
    /// and the version is not stale the whole batch applies. An equal version is accepted.
    pub fn change(
        &self,
        uri: &str,
        version: i32,
        changes: &[Change],
        enc: PositionEncoding,
    ) -> Result<ChangeReport, DocError> {
        let mut doc = self
            .docs
            .get_mut(uri)
            .ok_or_else(|| DocError::UnknownDocument(uri.to_owned()))?;
        if version < doc.version {
            return Err(DocError::StaleVersion {
                uri: uri.to_owned(),
                current: doc.version,
                got: version,
            });
        }
        // Work on an O(1) clone and commit it at the end, so the stored text is never a
        // half-applied batch.
        let mut text = doc.text.clone();
        let (edits, byte_edits): (Vec<Edit>, Vec<ByteEdit>) = changes
            .iter()
            .map(|change| apply_change(&mut text, change, enc))
            .unzip();
        doc.text = text;
        doc.version = version;
        let (invalidated, moved) = doc.anchors.apply(&edits);
        Ok(ChangeReport {
            version,
            invalidated,
            moved,
            edits: byte_edits,
        })
    }

    /// Closes a document and drops its anchors; false if it was not open.
    pub fn close(&self, uri: &str) -> bool {
        self.docs.remove(uri).is_some()
    }

    pub fn snapshot(&self, uri: &str) -> Option<Snapshot> {
        self.docs.get(uri).map(|doc| Snapshot {
            uri: uri.to_owned(),
            version: doc.version,
            language_id: doc.language_id.clone(),
            text: doc.text.clone(),
        })
    }

    /// Starts tracking a char range (clamped to the text) of an open document.
    pub fn anchor(&self, uri: &str, chars: ops::Range<usize>) -> Option<AnchorId> {
        let mut doc = self.docs.get_mut(uri)?;
        let len = doc.text.len_chars();
        let start = chars.start.min(len);
        let end = chars.end.clamp(start, len.max(start));
        let id = AnchorId::from_raw(self.next_anchor.fetch_add(1, Ordering::Relaxed));
        doc.anchors.insert(id, start..end);
        Some(id)
    }

    pub fn resolve(&self, uri: &str, id: AnchorId) -> AnchorState {
        match self.docs.get(uri) {
            Some(doc) => doc.anchors.get(id),
            None => AnchorState::Unknown,
        }
    }

    pub fn release(&self, uri: &str, id: AnchorId) {
        if let Some(mut doc) = self.docs.get_mut(uri) {
            doc.anchors.remove(id);
        }
    }

    pub fn uris(&self) -> Vec<String> {
        self.docs.iter().map(|entry| entry.key().clone()).collect()
    }
}

/// Applies one change to `text` and describes it in chars of the text before it, and in bytes.
fn apply_change(text: &mut Rope, change: &Change, enc: PositionEncoding) -> (Edit, ByteEdit) {
    let chars = match change.range {
        Some(range) => range_to_chars(text, range, enc),
        None => 0..text.len_chars(),
    };
    let start_byte = text.char_to_byte(chars.start);
    let old_end_byte = text.char_to_byte(chars.end);
    let (start, old_end) = (point(text, start_byte), point(text, old_end_byte));
    let inserted = change.text.chars().count();
    if chars.start < chars.end {
        text.remove(chars.clone());
    }
    if inserted > 0 {
        text.insert(chars.start, &change.text);
    }
    let new_end_byte = start_byte + change.text.len();
    let edit = Edit {
        start: chars.start,
        end: chars.end,
        inserted,
    };
    let bytes = ByteEdit {
        start_byte,
        old_end_byte,
        new_end_byte,
        start,
        old_end,
        new_end: point(text, new_end_byte),
    };
    (edit, bytes)
}

/// The (line, byte column) of a byte offset.
fn point(text: &Rope, byte: usize) -> (usize, usize) {
    let line = text.byte_to_line(byte);
    (line, byte - text.line_to_byte(line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use PositionEncoding::{Utf16, Utf8};

    fn range(l1: u32, c1: u32, l2: u32, c2: u32) -> Option<Range> {
        Some(Range::new(Position::new(l1, c1), Position::new(l2, c2)))
    }

    fn edit(r: Option<Range>, text: &str) -> Change {
        Change {
            range: r,
            text: text.to_owned(),
        }
    }

    fn text(store: &Store, uri: &str) -> String {
        store
            .snapshot(uri)
            .map(|s| s.text.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn open_change_close() {
        let store = Store::new();
        store.open("file:///a.rs", "rust", 1, "fn main() {\r\n}\r\n");
        let report = store
            .change(
                "file:///a.rs",
                2,
                &[
                    edit(range(0, 11, 0, 11), " x();"),
                    edit(range(1, 0, 1, 1), "};"),
                ],
                Utf16,
            )
            .unwrap();
        assert_eq!(report.version, 2);
        assert_eq!(text(&store, "file:///a.rs"), "fn main() { x();\r\n};\r\n");
        let snap = store.snapshot("file:///a.rs").unwrap();
        assert_eq!((snap.version, snap.language_id.as_str()), (2, "rust"));
        assert_eq!(store.uris(), vec!["file:///a.rs".to_owned()]);
        assert!(store.close("file:///a.rs"));
        assert!(!store.close("file:///a.rs"));
        assert!(store.snapshot("file:///a.rs").is_none());
    }

    #[test]
    fn changes_apply_sequentially_and_whole_document_replaces() {
        let store = Store::new();
        store.open("u", "text", 0, "héllo 😀 world");
        // The second range is relative to the text after the first change.
        let changes = [
            edit(range(0, 0, 0, 6), ""),
            edit(range(0, 0, 0, 2), "🎉"),
            edit(range(0, 99, 5, 0), "!"),
        ];
        store.change("u", 1, &changes, Utf16).unwrap();
        assert_eq!(text(&store, "u"), "🎉 world!");
        store
            .change("u", 2, &[edit(range(0, 4, 0, 5), "W")], Utf8)
            .unwrap();
        assert_eq!(text(&store, "u"), "🎉Wworld!");
        store
            .change("u", 3, &[edit(None, "new\ntext")], Utf8)
            .unwrap();
        assert_eq!(text(&store, "u"), "new\ntext");
    }

    #[test]
    fn inserting_cr_before_lf_joins_them_into_one_break() {
        let store = Store::new();
        store.open("u", "text", 0, "a\nb");
        store
            .change("u", 1, &[edit(range(0, 1, 0, 1), "\r")], Utf16)
            .unwrap();
        let snap = store.snapshot("u").unwrap();
        assert_eq!(snap.text.len_lines(), 2);
        assert_eq!(char_to_position(&snap.text, 3, Utf16), Position::new(1, 0));
        // A range ending inside the CRLF clamps before the CR.
        store
            .change("u", 2, &[edit(range(0, 0, 0, 2), "x")], Utf16)
            .unwrap();
        assert_eq!(text(&store, "u"), "x\r\nb");
    }

    #[test]
    fn bad_input_is_an_error_and_leaves_the_store_untouched() {
        let store = Store::new();
        assert_eq!(
            store.change("nope", 1, &[edit(None, "x")], Utf16),
            Err(DocError::UnknownDocument("nope".into()))
        );
        store.open("u", "text", 5, "abc");
        let err = store.change("u", 4, &[edit(None, "x")], Utf16).unwrap_err();
        assert_eq!(
            err,
            DocError::StaleVersion {
                uri: "u".into(),
                current: 5,
                got: 4
            }
        );
        assert!(err.to_string().contains("older than the current version 5"));
        assert_eq!(
            (text(&store, "u"), store.snapshot("u").unwrap().version),
            ("abc".into(), 5)
        );
        // Equal version is accepted (some clients resend it); wild ranges clamp.
        store
            .change("u", 5, &[edit(range(u32::MAX, u32::MAX, 0, 1), "Z")], Utf8)
            .unwrap();
        assert_eq!(text(&store, "u"), "abcZ");
    }

    #[test]
    fn anchors_follow_edits_and_are_reported() {
        let store = Store::new();
        store.open("u", "text", 1, "one\ntwo\nthree\n");
        let two = store.anchor("u", 4..7).unwrap();
        let three = store.anchor("u", 8..13).unwrap();
        let one = store.anchor("u", 0..3).unwrap();
        let report = store
            .change("u", 2, &[edit(range(0, 0, 0, 0), "// ")], Utf16)
            .unwrap();
        assert_eq!(report.invalidated, vec![]);
        assert_eq!(report.moved, vec![two, three, one]);
        assert_eq!(store.resolve("u", two), AnchorState::Live(7..10));
        let report = store
            .change("u", 3, &[edit(range(1, 1, 1, 2), "W")], Utf16)
            .unwrap();
        assert_eq!((report.invalidated, report.moved), (vec![two], vec![]));
        assert_eq!(store.resolve("u", two), AnchorState::Invalidated);
        assert_eq!(store.resolve("u", three), AnchorState::Live(11..16));
        assert_eq!(store.resolve("other", three), AnchorState::Unknown);
        store.release("u", three);
        assert_eq!(store.resolve("u", three), AnchorState::Unknown);
        // Clamped at creation; dropped on close.
        let tail = store.anchor("u", 10..1000).unwrap();
        assert_eq!(
            store.resolve("u", tail),
            AnchorState::Live(10..text(&store, "u").chars().count())
        );
        assert!(store.anchor("nope", 0..1).is_none());
        store.close("u");
        store.open("u", "text", 1, "one");
        assert_eq!(store.resolve("u", one), AnchorState::Unknown);
    }

    #[test]
    fn stale_change_does_not_touch_anchors() {
        let store = Store::new();
        store.open("u", "text", 3, "abcdef");
        let a = store.anchor("u", 2..4).unwrap();
        assert!(store.change("u", 2, &[edit(None, "")], Utf16).is_err());
        assert_eq!(store.resolve("u", a), AnchorState::Live(2..4));
    }

    #[test]
    fn snapshots_are_unaffected_by_later_changes() {
        let store = Store::new();
        store.open("u", "text", 1, "abc\ndef");
        let before = store.snapshot("u").unwrap();
        store
            .change("u", 2, &[edit(range(1, 0, 1, 3), "xyz")], Utf16)
            .unwrap();
        assert_eq!(
            (before.version, before.text.to_string()),
            (1, "abc\ndef".into())
        );
        assert_eq!(text(&store, "u"), "abc\nxyz");
    }

    #[test]
    fn concurrent_writers_and_readers_stay_consistent() {
        let store = Store::new();
        let uris: Vec<String> = (0..4).map(|i| format!("file:///{i}")).collect();
        for uri in &uris {
            store.open(uri, "text", 0, "");
        }
        std::thread::scope(|s| {
            for uri in &uris {
                let store = &store;
                s.spawn(move || {
                    for version in 1..=200 {
                        let append = edit(range(u32::MAX, 0, u32::MAX, 0), "é\r\n");
                        store.change(uri, version, &[append], Utf8).unwrap();
                    }
                });
            }
            s.spawn(|| {
                for _ in 0..200 {
                    for uri in &uris {
                        let snap = store.snapshot(uri).unwrap();
                        // A snapshot is always a whole number of appends at its version.
                        assert_eq!(snap.text.to_string(), "é\r\n".repeat(snap.version as usize));
                    }
                }
            });
        });
        for uri in &uris {
            assert_eq!(text(&store, uri), "é\r\n".repeat(200));
        }
    }

    #[test]
    fn store_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Store>();
        assert_send_sync::<Snapshot>();
    }
}
