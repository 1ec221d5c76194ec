//! Property tests: the rope store and its anchors against naive models that walk chars.

use proptest::prelude::*;
use proptest::sample::select;

use super::*;

/// Pieces random texts are made of: multi-byte chars, a surrogate pair, a combining accent,
/// all three LSP line breaks, and Unicode separators that LSP does not count as breaks.
const PIECES: &[&str] = &[
    "a", "b", "z", " ", "\t", "é", "e\u{301}", "中", "😀", "🎉", "\n", "\r\n", "\r", "\u{2028}",
    "\u{85}",
];

fn text(max_pieces: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(select(PIECES), 0..max_pieces).prop_map(|v| v.concat())
}

fn line() -> impl Strategy<Value = u32> {
    prop_oneof![10 => 0u32..8, 1 => Just(u32::MAX), 1 => any::<u32>()]
}

fn character() -> impl Strategy<Value = u32> {
    prop_oneof![10 => 0u32..16, 1 => Just(u32::MAX), 1 => any::<u32>()]
}

fn position() -> impl Strategy<Value = Position> {
    (line(), character()).prop_map(|(line, character)| Position { line, character })
}

fn encoding() -> impl Strategy<Value = PositionEncoding> {
    prop_oneof![Just(PositionEncoding::Utf8), Just(PositionEncoding::Utf16)]
}

fn change() -> impl Strategy<Value = Change> {
    let range = prop_oneof![
        1 => Just(None),
        30 => (position(), position()).prop_map(|(start, end)| Some(Range { start, end })),
    ];
    (range, text(5)).prop_map(|(range, text)| Change { range, text })
}

fn units(c: char, enc: PositionEncoding) -> u64 {
    match enc {
        PositionEncoding::Utf8 => c.len_utf8() as u64,
        PositionEncoding::Utf16 => c.len_utf16() as u64,
    }
}

/// The naive position -> char conversion: walk lines and columns one char at a time.
fn naive_position_to_char(text: &str, pos: Position, enc: PositionEncoding) -> usize {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    for _ in 0..pos.line {
        loop {
            let Some(&c) = chars.get(i) else {
                return chars.len();
            };
            i += 1;
            if c == '\n' {
                break;
            }
            if c == '\r' {
                if chars.get(i) == Some(&'\n') {
                    i += 1;
                }
                break;
            }
        }
    }
    let mut col = 0u64;
    while let Some(&c) = chars.get(i) {
        if c == '\n' || c == '\r' || col + units(c, enc) > u64::from(pos.character) {
            break;
        }
        col += units(c, enc);
        i += 1;
    }
    i
}

/// The naive char -> position conversion; an offset inside a CRLF stays on its line's end.
fn naive_char_to_position(text: &str, idx: usize, enc: PositionEncoding) -> Position {
    let chars: Vec<char> = text.chars().collect();
    let idx = idx.min(chars.len());
    let (mut line, mut col, mut i) = (0u32, 0u64, 0);
    while i < idx {
        let c = chars[i];
        if c == '\r' && chars.get(i + 1) == Some(&'\n') {
            if i + 1 == idx {
                break;
            }
            line += 1;
            col = 0;
            i += 2;
            continue;
        }
        if c == '\n' || c == '\r' {
            line += 1;
            col = 0;
        } else {
            col += units(c, enc);
        }
        i += 1;
    }
    Position {
        line,
        character: u32::try_from(col).unwrap_or(u32::MAX),
    }
}

/// Applies one change to the naive model; returns it as (start, end, inserted) chars.
fn naive_apply(text: &mut String, change: &Change, enc: PositionEncoding) -> Edit {
    let (start, end) = match change.range {
        None => (0, text.chars().count()),
        Some(r) => {
            let start = naive_position_to_char(text, r.start, enc);
            let end = naive_position_to_char(text, r.end, enc).max(start);
            (start, end)
        }
    };
    let byte = |c: usize| text.char_indices().nth(c).map_or(text.len(), |(b, _)| b);
    let (b0, b1) = (byte(start), byte(end));
    text.replace_range(b0..b1, &change.text);
    Edit {
        start,
        end,
        inserted: change.text.chars().count(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn conversions_match_naive_model(
        text in text(40),
        positions in proptest::collection::vec(position(), 1..16),
        offsets in proptest::collection::vec(0usize..60, 1..16),
        enc in encoding(),
    ) {
        let rope = Rope::from_str(&text);
        for pos in positions {
            let got = position_to_char(&rope, pos, enc);
            prop_assert_eq!(got, naive_position_to_char(&text, pos, enc), "{:?}", pos);
            // Every position the store hands out designates the same char again.
            let back = char_to_position(&rope, got, enc);
            prop_assert_eq!(position_to_char(&rope, back, enc), got);
        }
        for idx in offsets {
            let pos = char_to_position(&rope, idx, enc);
            prop_assert_eq!(pos, naive_char_to_position(&text, idx, enc), "char {}", idx);
        }
    }
}

proptest! {
    // 64 cases x up to 60 batches x up to 3 changes: thousands of edits, a few seconds in debug.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn incremental_edits_match_naive_model(
        initial in text(40),
        batches in proptest::collection::vec(
            (proptest::collection::vec(change(), 1..4), encoding()),
            1..60,
        ),
    ) {
        let store = Store::new();
        store.open("file:///p", "text", 0, &initial);
        let mut model = initial;
        for (version, (changes, enc)) in (1..).zip(&batches) {
            let report = store.change("file:///p", version, changes, *enc);
            prop_assert!(report.is_ok());
            for change in changes {
                naive_apply(&mut model, change, *enc);
            }
            let snap = store.snapshot("file:///p");
            prop_assert!(snap.is_some());
            if let Some(snap) = snap {
                prop_assert_eq!(snap.text.to_string(), model.clone());
                prop_assert_eq!(snap.version, version);
            }
        }
    }
}

/// The naive anchor model: the text as a list of chars with open/close markers between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    Char,
    Open(usize),
    Close(usize),
}

#[derive(Default)]
struct Markers {
    items: Vec<Item>,
    /// Per anchor, in creation order: `Some(true)` live, `Some(false)` invalidated, `None` released.
    state: Vec<Option<bool>>,
}

impl Markers {
    fn new(chars: usize) -> Self {
        Markers {
            items: vec![Item::Char; chars],
            state: Vec::new(),
        }
    }

    /// Item index of the `n`th char, or the end.
    fn char_item(&self, n: usize) -> usize {
        let mut seen = 0;
        for (i, item) in self.items.iter().enumerate() {
            if *item == Item::Char {
                if seen == n {
                    return i;
                }
                seen += 1;
            }
        }
        self.items.len()
    }

    fn chars_before(&self, item: usize) -> usize {
        self.items[..item]
            .iter()
            .filter(|i| **i == Item::Char)
            .count()
    }

    /// How many markers directly precede item `at`.
    fn markers_before(&self, at: usize) -> usize {
        self.items[..at]
            .iter()
            .rev()
            .take_while(|i| **i != Item::Char)
            .count()
    }

    fn find(&self, wanted: Item) -> Option<usize> {
        self.items.iter().position(|i| *i == wanted)
    }

    fn add(&mut self, start: usize, end: usize) -> usize {
        let k = self.state.len();
        self.state.push(Some(true));
        let at = self.char_item(start);
        self.items.insert(at, Item::Open(k));
        let at = self.char_item(end);
        self.items.insert(at, Item::Close(k));
        k
    }

    fn remove_markers(&mut self, k: usize) {
        self.items
            .retain(|i| *i != Item::Open(k) && *i != Item::Close(k));
    }

    fn range(&self, k: usize) -> Option<std::ops::Range<usize>> {
        let open = self.find(Item::Open(k))?;
        let close = self.find(Item::Close(k))?;
        Some(self.chars_before(open)..self.chars_before(close))
    }

    /// Applies one edit; returns the anchors it invalidated.
    fn apply(&mut self, edit: Edit) -> Vec<usize> {
        let Edit {
            start,
            end,
            inserted,
        } = edit;
        if start == end && inserted == 0 {
            return Vec::new();
        }
        let mut hit = Vec::new();
        let deleted = (start < end).then(|| (self.char_item(start), self.char_item(end - 1)));
        for k in 0..self.state.len() {
            if self.state[k] != Some(true) {
                continue;
            }
            let (Some(open), Some(close)) = (self.find(Item::Open(k)), self.find(Item::Close(k)))
            else {
                continue;
            };
            let touched = match deleted {
                // The deleted items (chars and any markers between them) intersect the
                // anchor's items: a deleted char inside the anchor, or one of its markers
                // inside the deleted text.
                Some((first, last)) => first < close && last > open,
                // An insertion strictly between the anchor's first and last char.
                None => self.chars_before(open) < start && start < self.chars_before(close),
            };
            if touched {
                hit.push(k);
            }
        }
        for &k in &hit {
            self.state[k] = Some(false);
            self.remove_markers(k);
        }
        // With a deletion, the markers just before the deleted text keep to its left and
        // those just after it to its right, whatever is inserted in between.
        let left_markers = deleted.map(|_| self.markers_before(self.char_item(start)));
        if deleted.is_some() {
            // Item indices moved when the invalidated markers went: look the first char up again.
            let count = end - start;
            let mut removed = 0;
            let mut i = self.char_item(start);
            while removed < count {
                if self.items[i] == Item::Char {
                    self.items.remove(i);
                    removed += 1;
                } else {
                    i += 1;
                }
            }
        }
        if inserted > 0 {
            // The gap at `start`: the markers between char start-1 and char start.
            let gap_end = self.char_item(start);
            let mut gap_start = gap_end;
            while gap_start > 0 && self.items[gap_start - 1] != Item::Char {
                gap_start -= 1;
            }
            let gap: Vec<Item> = self.items[gap_start..gap_end].to_vec();
            let (before, after): (Vec<Item>, Vec<Item>) = match left_markers {
                Some(n) => (gap[..n].to_vec(), gap[n..].to_vec()),
                // A pure insertion: ends of non-empty anchors stay before the inserted text;
                // everything else (starts, and empty anchors) moves after it.
                None => gap.iter().partition(|item| match item {
                    Item::Close(k) => !gap.contains(&Item::Open(*k)),
                    _ => false,
                }),
            };
            let mut rebuilt = before;
            rebuilt.extend(std::iter::repeat_n(Item::Char, inserted));
            rebuilt.extend(after);
            self.items.splice(gap_start..gap_end, rebuilt);
        }
        hit
    }
}

#[derive(Clone, Debug)]
enum Op {
    Anchor(usize, usize),
    Release(usize),
    Edit(Vec<Change>, PositionEncoding),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..40, 0usize..12).prop_map(|(start, len)| Op::Anchor(start, len)),
        1 => (0usize..16).prop_map(Op::Release),
        8 => (proptest::collection::vec(change(), 1..3), encoding())
            .prop_map(|(changes, enc)| Op::Edit(changes, enc)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn anchors_match_marker_model(initial in text(40), ops in proptest::collection::vec(op(), 1..50)) {
        let store = Store::new();
        store.open("u", "text", 0, &initial);
        let mut text = initial;
        let mut model = Markers::new(text.chars().count());
        let mut ids: Vec<AnchorId> = Vec::new();
        let mut version = 0;
        for op in ops {
            match op {
                Op::Anchor(start, len) => {
                    let id = store.anchor("u", start..start + len);
                    prop_assert!(id.is_some());
                    let n = text.chars().count();
                    let (s, e) = (start.min(n), (start + len).min(n));
                    let k = model.add(s, e);
                    prop_assert_eq!(k, ids.len());
                    ids.extend(id);
                }
                Op::Release(k) => {
                    if let Some(&id) = ids.get(k) {
                        store.release("u", id);
                        model.remove_markers(k);
                        model.state[k] = None;
                    }
                }
                Op::Edit(changes, enc) => {
                    version += 1;
                    let before: Vec<_> = (0..ids.len()).map(|k| model.range(k)).collect();
                    let mut invalidated = Vec::new();
                    for change in &changes {
                        let edit = naive_apply(&mut text, change, enc);
                        invalidated.extend(model.apply(edit));
                    }
                    let moved: Vec<AnchorId> = (0..ids.len())
                        .filter(|&k| model.state[k] == Some(true) && model.range(k) != before[k])
                        .map(|k| ids[k])
                        .collect();
                    invalidated.sort_unstable();
                    let invalidated: Vec<AnchorId> = invalidated.into_iter().map(|k| ids[k]).collect();
                    let mut bytes = store.snapshot("u").map(|s| s.text.to_string()).unwrap_or_default().into_bytes();
                    let report = store.change("u", version, &changes, enc);
                    let edits = report.as_ref().map(|r| r.edits.clone()).unwrap_or_default();
                    prop_assert_eq!(
                        report.map(|r| ChangeReport { edits: Vec::new(), ..r }),
                        Ok(ChangeReport { version, invalidated, moved, edits: Vec::new() })
                    );
                    // The byte edits replay the changes on the bytes, each on the last one's result.
                    prop_assert_eq!(edits.len(), changes.len());
                    for (edit, change) in edits.iter().zip(&changes) {
                        prop_assert_eq!(edit.new_end_byte, edit.start_byte + change.text.len());
                        bytes.splice(edit.start_byte..edit.old_end_byte, change.text.bytes());
                    }
                    prop_assert_eq!(String::from_utf8(bytes).unwrap_or_default(), text.clone());
                }
            }
            for (k, &id) in ids.iter().enumerate() {
                let want = match model.state[k] {
                    Some(true) => match model.range(k) {
                        Some(r) => AnchorState::Live(r),
                        None => AnchorState::Unknown,
                    },
                    Some(false) => AnchorState::Invalidated,
                    None => AnchorState::Unknown,
                };
                prop_assert_eq!(store.resolve("u", id), want, "anchor {}", k);
            }
        }
    }
}

/// Content lengths in chars of the lines of `text`, split at `\n`, `\r\n` and `\r`.
fn naive_content_lens(text: &str) -> Vec<usize> {
    let mut lens = vec![0];
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {
                chars.next();
                lens.push(0);
            }
            '\n' | '\r' => lens.push(0),
            _ => *lens.last_mut().expect("one line at least") += 1,
        }
    }
    lens
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Texts of many chunks, built by insertions at random places so chunk boundaries fall
    /// anywhere (inside lines, next to breaks): every line's content length is the naive one.
    #[test]
    fn line_content_lengths_match_naive_model_across_chunks(
        pieces in proptest::collection::vec((text(400), any::<prop::sample::Index>()), 1..12),
    ) {
        let mut rope = Rope::new();
        for (piece, at) in &pieces {
            let at = at.index(rope.len_chars() + 1);
            rope.insert(at, piece);
        }
        let text = rope.to_string();
        let lens = naive_content_lens(&text);
        prop_assert_eq!(rope.len_lines(), lens.len());
        for (line, want) in lens.iter().enumerate() {
            prop_assert_eq!(line_content_len(&rope, line), *want, "line {}", line);
        }
        prop_assert_eq!(line_content_len(&rope, lens.len()), 0, "past the end");
    }
}
