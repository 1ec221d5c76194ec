//! The parse trees of open documents, kept current off the notification path: edits are
//! recorded as they are applied, and trees are reparsed incrementally in the background or
//! on first use, each stamped with the revision and version it describes.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};

use ropey::Rope;
use tree_sitter::{InputEdit, Point};

use super::parse::{parse, reparse};
use super::{Lang, Parsed};
use crate::docs::ByteEdit;

/// Edits kept for a tree nobody reparses; past this the tree is dropped and parsed anew.
const MAX_PENDING_EDITS: usize = 10_000;

/// The syntax trees of the open documents that have a grammar.
///
/// `open`, `edited` and `close` only record (a lock held for a push); parsing happens on a
/// background thread, or in the caller of [`Stamp::wait`].
pub struct Trees {
    docs: Mutex<HashMap<String, Arc<Entry>>>,
    worker: Mutex<Option<mpsc::Sender<Arc<Entry>>>>,
    background: bool,
}

/// One document's tree and the edits since it was parsed.
struct Entry {
    lang: Lang,
    state: Mutex<State>,
    /// One parse at a time per document, so two callers never parse the same text twice.
    parsing: Mutex<()>,
}

struct State {
    /// Counts the changes recorded; a tree describes the text at one revision.
    revision: u64,
    version: i32,
    text: Rope,
    /// Edits after the parsed tree's revision, each with the revision it produced; recorded
    /// with no tree too, since a parse under way may yet store one for an earlier revision.
    edits: Vec<(u64, InputEdit)>,
    /// The edits after this revision are all in `edits` (they were dropped up to it, when
    /// too many piled up): only a tree of this revision or a later one can be edited into
    /// the next.
    floor: u64,
    parsed: Option<Stamped>,
    /// The document could not be parsed (too large or too slow): it stays on the heuristics
    /// until it is opened again.
    gave_up: bool,
}

#[derive(Clone)]
struct Stamped {
    revision: u64,
    parsed: Parsed,
}

/// A document as it was when a request arrived: its tree can be had for exactly that text.
#[derive(Clone)]
pub struct Stamp {
    entry: Arc<Entry>,
    revision: u64,
    version: i32,
    text: Rope,
}

impl Default for Trees {
    fn default() -> Self {
        Trees::new()
    }
}

impl Trees {
    /// Trees kept current by a background thread (started on the first document opened).
    pub fn new() -> Trees {
        Trees {
            docs: Mutex::new(HashMap::new()),
            worker: Mutex::new(None),
            background: true,
        }
    }

    /// Trees parsed only when asked for ([`Stamp::wait`]): for tests and measurements.
    pub fn on_demand() -> Trees {
        Trees {
            background: false,
            ..Trees::new()
        }
    }

    /// Starts following a document; one without a grammar is not followed.
    pub fn open(&self, uri: &str, language_id: &str, version: i32, text: &Rope) {
        let Some(lang) = Lang::from_language_id(language_id) else {
            self.close(uri);
            return;
        };
        let entry = Arc::new(Entry {
            lang,
            state: Mutex::new(State {
                revision: 0,
                version,
                text: text.clone(),
                edits: Vec::new(),
                floor: 0,
                parsed: None,
                gave_up: false,
            }),
            parsing: Mutex::new(()),
        });
        lock(&self.docs).insert(uri.to_owned(), entry.clone());
        self.schedule(entry);
    }

    /// Records the edits of one applied `didChange`; `text` gives the document after them and
    /// is only called for a followed document.
    pub fn edited(
        &self,
        uri: &str,
        version: i32,
        edits: &[ByteEdit],
        text: impl FnOnce() -> Option<Rope>,
    ) {
        let Some(entry) = lock(&self.docs).get(uri).cloned() else {
            return;
        };
        let Some(text) = text() else {
            return;
        };
        {
            let mut state = lock(&entry.state);
            state.revision += 1;
            state.version = version;
            state.text = text;
            // Kept even with no tree yet: the first parse may be under way for the text
            // before this change, and its tree is the base the next one is edited from.
            let revision = state.revision;
            state
                .edits
                .extend(edits.iter().map(|e| (revision, input_edit(e))));
            if state.edits.len() > MAX_PENDING_EDITS {
                state.parsed = None;
                state.edits.clear();
                state.floor = revision;
            }
        }
        self.schedule(entry);
    }

    /// Stops following a document and drops its tree.
    pub fn close(&self, uri: &str) {
        lock(&self.docs).remove(uri);
    }

    /// The document as it is now, to get its tree for exactly this text later.
    pub fn stamp(&self, uri: &str) -> Option<Stamp> {
        let entry = lock(&self.docs).get(uri).cloned()?;
        let state = lock(&entry.state);
        if state.gave_up {
            return None;
        }
        let stamp = Stamp {
            entry: entry.clone(),
            revision: state.revision,
            version: state.version,
            text: state.text.clone(),
        };
        drop(state);
        Some(stamp)
    }

    /// The latest trees of the other followed documents whose definitions `lang` can use, by
    /// URI, in URI order. A tree may trail its document by the edits not parsed yet; it always
    /// comes with the text it describes.
    pub fn others(&self, uri: &str, lang: Lang) -> Vec<(String, Parsed)> {
        let entries: Vec<(String, Arc<Entry>)> = lock(&self.docs)
            .iter()
            .filter(|(u, e)| u.as_str() != uri && e.lang.shares_definitions_with(lang))
            .map(|(u, e)| (u.clone(), e.clone()))
            .collect();
        let mut out: Vec<(String, Parsed)> = entries
            .into_iter()
            .filter_map(|(u, e)| {
                let parsed = lock(&e.state).parsed.as_ref().map(|s| s.parsed.clone());
                parsed.map(|p| (u, p))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Parses every followed document that is behind (what the background thread does).
    pub fn catch_up(&self) {
        let entries: Vec<Arc<Entry>> = lock(&self.docs).values().cloned().collect();
        for entry in entries {
            entry.current();
        }
    }

    fn schedule(&self, entry: Arc<Entry>) {
        if !self.background {
            return;
        }
        let mut worker = lock(&self.worker);
        if worker.is_none() {
            *worker = spawn_worker();
        }
        if let Some(tx) = worker.as_ref() {
            if tx.send(entry).is_err() {
                *worker = None;
            }
        }
    }
}

impl Stamp {
    /// The document version the stamp was taken at.
    pub fn version(&self) -> i32 {
        self.version
    }

    pub fn lang(&self) -> Lang {
        self.entry.lang
    }

    /// The text the stamp describes.
    pub fn text(&self) -> &Rope {
        &self.text
    }

    /// The tree for this text if it is already parsed; never waits.
    pub fn ready(&self) -> Option<Parsed> {
        let state = lock(&self.entry.state);
        state
            .parsed
            .as_ref()
            .filter(|s| s.revision == self.revision)
            .map(|s| s.parsed.clone())
    }

    /// The tree for this text, parsing it (incrementally when an older tree exists) if nobody
    /// has yet. Blocking: call it off the notification path (`spawn_blocking`). `None` when the
    /// document cannot be parsed.
    pub fn wait(&self) -> Option<Parsed> {
        if let Some(parsed) = self.ready() {
            return Some(parsed);
        }
        self.entry.tree_at(self.revision, self.version, &self.text)
    }
}

impl Entry {
    /// Brings the tree to the latest recorded text.
    fn current(&self) -> Option<Parsed> {
        let (revision, version, text) = {
            let state = lock(&self.state);
            if state.gave_up {
                return None;
            }
            (state.revision, state.version, state.text.clone())
        };
        self.tree_at(revision, version, &text)
    }

    fn tree_at(&self, revision: u64, version: i32, text: &Rope) -> Option<Parsed> {
        let _one_at_a_time = lock(&self.parsing);
        let (base, edits) = {
            let state = lock(&self.state);
            if state.gave_up {
                return None;
            }
            match &state.parsed {
                Some(s) if s.revision == revision => return Some(s.parsed.clone()),
                Some(s) if s.revision < revision => {
                    let edits: Vec<InputEdit> = state
                        .edits
                        .iter()
                        .filter(|(r, _)| *r <= revision)
                        .map(|(_, e)| *e)
                        .collect();
                    (Some(s.parsed.tree().clone()), edits)
                }
                // A newer tree exists (a later request came first): parse this text on its
                // own, and keep the newer tree.
                Some(_) => return parse(self.lang, text),
                None => (None, Vec::new()),
            }
        };
        let parsed = match base {
            Some(mut tree) => {
                for edit in &edits {
                    tree.edit(edit);
                }
                reparse(self.lang, &tree, text)
            }
            None => parse(self.lang, text),
        };
        let mut state = lock(&self.state);
        match &parsed {
            Some(p) => {
                // Older than the floor, its later edits are gone: it cannot be a base.
                if revision >= state.floor
                    && state.parsed.as_ref().is_none_or(|s| s.revision < revision)
                {
                    tracing::trace!(version, revision, "tree current");
                    state.parsed = Some(Stamped {
                        revision,
                        parsed: p.clone(),
                    });
                    state.edits.retain(|(r, _)| *r > revision);
                }
            }
            None => {
                tracing::info!(
                    lang = self.lang.name(),
                    bytes = text.len_bytes(),
                    "document too large or too slow to parse: widening and checks use heuristics"
                );
                state.gave_up = true;
                state.parsed = None;
                state.edits.clear();
            }
        }
        parsed
    }
}

/// The background parser: takes documents that changed, coalesces a burst, and brings each
/// tree to its document's latest text. Ends when the `Trees` that fed it is dropped.
fn spawn_worker() -> Option<mpsc::Sender<Arc<Entry>>> {
    let (tx, rx) = mpsc::channel::<Arc<Entry>>();
    let spawned = std::thread::Builder::new()
        .name("codetier-syntax".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    if !batch.iter().any(|e| Arc::ptr_eq(e, &more)) {
                        batch.push(more);
                    }
                }
                for entry in batch {
                    // A panic in a grammar must not take the thread down with the trees.
                    let run =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| entry.current()));
                    if run.is_err() {
                        tracing::error!(
                            "the background parser panicked; the document keeps its last tree"
                        );
                    }
                }
            }
        });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::warn!(
                "cannot start the background parser ({e}); trees are parsed on first use"
            );
            None
        }
    }
}

fn input_edit(e: &ByteEdit) -> InputEdit {
    InputEdit {
        start_byte: e.start_byte,
        old_end_byte: e.old_end_byte,
        new_end_byte: e.new_end_byte,
        start_position: Point::new(e.start.0, e.start.1),
        old_end_position: Point::new(e.old_end.0, e.old_end.1),
        new_end_position: Point::new(e.new_end.0, e.new_end.1),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docs::{Change, Position, PositionEncoding, Range, Store};

    fn change(
        store: &Store,
        trees: &Trees,
        uri: &str,
        version: i32,
        at: (u32, u32),
        end: (u32, u32),
        text: &str,
    ) {
        let c = Change {
            range: Some(Range::new(
                Position::new(at.0, at.1),
                Position::new(end.0, end.1),
            )),
            text: text.into(),
        };
        let report = store
            .change(uri, version, &[c], PositionEncoding::Utf16)
            .expect("applies");
        trees.edited(uri, version, &report.edits, || {
            store.snapshot(uri).map(|s| s.text)
        });
    }

    const TWO_FNS: &str = "fn a() -> u32 {\n    1\n}\n\nfn b() {}\n";

    /// `src` open as document "u" in a store and followed (not yet parsed), and its stamp.
    fn followed(src: &str) -> (Store, Trees, Stamp) {
        let (store, trees) = (Store::new(), Trees::on_demand());
        store.open("u", "rust", 1, src);
        trees.open("u", "rust", 1, &Rope::from_str(src));
        let stamp = trees.stamp("u").expect("followed");
        (store, trees, stamp)
    }

    #[test]
    fn trees_follow_edits_incrementally_and_match_a_full_parse() {
        let src = TWO_FNS;
        let (store, trees, first) = followed(src);
        assert!(first.ready().is_none(), "nothing parsed yet");
        let tree = first.wait().expect("parses");
        assert_eq!(
            first.ready().map(|p| p.root().to_sexp()),
            Some(tree.root().to_sexp())
        );

        // Edits while a request holds the old stamp: it still gets its own text's tree.
        change(&store, &trees, "u", 2, (1, 4), (1, 5), "é + 2");
        change(
            &store,
            &trees,
            "u",
            3,
            (4, 8),
            (4, 8),
            " let x = [1,\n 2]; ",
        );
        assert!(first.wait().is_some_and(|p| p.text() == first.text()));
        let now = trees.stamp("u").expect("followed");
        assert_eq!(now.version(), 3);
        let incremental = now.wait().expect("parses");
        let full = parse(Lang::Rust, &store.snapshot("u").expect("open").text).expect("parses");
        assert_eq!(incremental.root().to_sexp(), full.root().to_sexp());
        assert_eq!(incremental.text().to_string(), full.text().to_string());
        assert!(!incremental.has_errors());

        // An older stamp after a newer tree exists parses its own text without replacing it.
        let old = first.wait().expect("parses");
        assert_eq!(old.text().to_string(), src);
        assert!(now.ready().is_some());
    }

    #[test]
    fn only_documents_with_a_grammar_are_followed_and_close_forgets() {
        let trees = Trees::on_demand();
        trees.open("a.txt", "plaintext", 1, &Rope::from_str("x"));
        assert!(trees.stamp("a.txt").is_none());
        trees.open("a.py", "python", 1, &Rope::from_str("def f():\n    pass\n"));
        trees.open("b.py", "python", 1, &Rope::from_str("X = 1\n"));
        trees.open("c.go", "go", 1, &Rope::from_str("package main\n"));
        assert!(
            trees.others("a.py", Lang::Python).is_empty(),
            "nothing parsed yet"
        );
        trees.catch_up();
        let others: Vec<String> = trees
            .others("a.py", Lang::Python)
            .into_iter()
            .map(|(u, _)| u)
            .collect();
        assert_eq!(others, ["b.py"]);
        trees.close("b.py");
        assert!(trees.others("a.py", Lang::Python).is_empty());
        // Reopened as another language: no longer followed.
        trees.open("a.py", "plaintext", 2, &Rope::from_str("x"));
        assert!(trees.stamp("a.py").is_none());
    }

    #[test]
    fn the_background_thread_brings_trees_up_to_date() {
        let (store, trees) = (Store::new(), Trees::new());
        store.open("u", "python", 1, "def f():\n    return 1\n");
        trees.open(
            "u",
            "python",
            1,
            &Rope::from_str("def f():\n    return 1\n"),
        );
        for v in 2..50 {
            change(&store, &trees, "u", v, (1, 11), (1, 11), "+1");
        }
        // Whether the worker got there first or not, the stamp's tree is for its exact text.
        let stamp = trees.stamp("u").expect("followed");
        let parsed = stamp.wait().expect("parses");
        assert_eq!(
            parsed.text().to_string(),
            store.snapshot("u").expect("open").text.to_string()
        );
        assert!(!parsed.has_errors());
    }

    #[test]
    fn an_edit_made_while_the_first_tree_is_parsed_reaches_the_next_tree() {
        // The first tree is parsed for the text a request stamped, after the document has
        // changed again (the background parse of a document just opened, typing meanwhile):
        // the next tree is made from it, so that change must have been kept for it.
        let src = TWO_FNS;
        let (store, trees, opened) = followed(src);
        change(
            &store,
            &trees,
            "u",
            2,
            (0, 0),
            (0, 0),
            "// a comment above\n",
        );
        change(&store, &trees, "u", 3, (4, 0), (5, 0), "");
        assert!(opened.wait().is_some_and(|p| *p.text() == src));
        let now = trees.stamp("u").expect("followed");
        let incremental = now.wait().expect("parses");
        let full = parse(Lang::Rust, now.text()).expect("parses");
        assert_eq!(incremental.root().to_sexp(), full.root().to_sexp());
        assert_eq!(incremental.text().to_string(), now.text().to_string());
    }

    /// Typing as an editor types (lines inserted, words inserted inside lines, lines
    /// deleted), with the tree brought up to date after a random few edits each time and
    /// older stamps parsed late: the incremental tree always equals a full parse of the same
    /// text.
    #[test]
    fn incremental_trees_under_random_typing_match_a_full_parse() {
        use proptest::prelude::*;
        let src: String = (0..6)
            .map(|i| format!("/// Doc {i}.\nfn f{i}(x: i32) -> i32 {{\n    let a = x + {i};\n    a * 2\n}} // end f{i}\n\n"))
            .collect();
        let edit = (0usize..200, 0usize..40, 0u8..10, 0usize..1000);
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(48));
        runner
            .run(
                &proptest::collection::vec((edit, any::<bool>()), 1..40),
                |edits| {
                    let (store, trees) = (Store::new(), Trees::on_demand());
                    store.open("u", "rust", 1, &src);
                    trees.open("u", "rust", 1, &Rope::from_str(&src));
                    // A request's stamp, parsed only some edits later (as the background
                    // parse of a text that has changed since); first, the text as opened.
                    let mut held = trees.stamp("u");
                    for (version, ((line, column, kind, n), catch_up)) in
                        edits.into_iter().enumerate()
                    {
                        let text = store.snapshot("u").expect("open").text;
                        let lines = text.len_lines().saturating_sub(1).max(1);
                        let l = (line % lines) as u32;
                        let len = crate::docs::line_content_len(&text, l as usize) as u32;
                        let c = (column as u32).min(len);
                        let v = version as i32 + 2;
                        match kind {
                            0..=4 => change(
                                &store,
                                &trees,
                                "u",
                                v,
                                (l, 0),
                                (l, 0),
                                &format!("// typed {n}\n"),
                            ),
                            5..=7 => {
                                change(&store, &trees, "u", v, (l, c), (l, c), &format!(" t{n} "))
                            }
                            _ => change(&store, &trees, "u", v, (l, 0), (l + 1, 0), ""),
                        }
                        if n % 4 == 0 {
                            if let Some(stamp) = held.take() {
                                let old = stamp.wait().expect("parses");
                                prop_assert_eq!(old.text().to_string(), stamp.text().to_string());
                            }
                            held = trees.stamp("u");
                        }
                        if catch_up {
                            trees.catch_up();
                        }
                        let now = trees.stamp("u").expect("followed");
                        if catch_up || n % 3 == 0 {
                            let incremental = now.wait().expect("parses");
                            let full = parse(Lang::Rust, now.text()).expect("parses");
                            prop_assert_eq!(incremental.text().to_string(), now.text().to_string());
                            prop_assert_eq!(
                                incremental.root().to_sexp(),
                                full.root().to_sexp(),
                                "after edit {} of {:?}",
                                version,
                                now.text().to_string()
                            );
                        }
                    }
                    Ok(())
                },
            )
            .expect("incremental trees match full parses");
    }
}
