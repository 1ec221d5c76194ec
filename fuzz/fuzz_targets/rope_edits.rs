//! The document store (`server/src/docs*`) against a naive `String` model.
//!
//! The bytes pick an initial text (from pieces with multi-byte chars, a surrogate pair, a
//! combining accent, LF, CRLF, lone CR and Unicode separators that are not LSP breaks) and
//! then operations: batches of changes with utf-8 or utf-16 positions (some far out of range,
//! some reversed), anchors, releases, stale changes, reopening, and position conversions.
//! After each one the text, every anchor's state, and each change report must match the
//! model, and a live anchor must still cover the text it was made on.
#![no_main]

use std::collections::BTreeMap;
use std::ops::Range as Chars;

use codetier::docs::{
    char_to_position, position_to_char, AnchorId, AnchorState, Change, DocError, Position,
    PositionEncoding, Range, Store,
};
use codetier_fuzz::Input;
use libfuzzer_sys::fuzz_target;

const PIECES: &[&str] = &[
    "a", "b", "z", " ", "\t", "é", "e\u{301}", "中", "😀", "🎉", "\n", "\r\n", "\r", "\u{2028}",
    "\u{85}", "\u{feff}",
];

const URI: &str = "file:///fuzz.rs";

fn text(inp: &mut Input, max_pieces: u8) -> String {
    let n = inp.byte() % max_pieces;
    (0..n)
        .map(|_| PIECES[usize::from(inp.byte()) % PIECES.len()])
        .collect()
}

fn number(inp: &mut Input, small: u32) -> u32 {
    match inp.byte() {
        0 => u32::MAX,
        1 => inp.u32(),
        b => u32::from(b) % small,
    }
}

fn position(inp: &mut Input) -> Position {
    Position::new(number(inp, 8), number(inp, 16))
}

fn encoding(inp: &mut Input) -> PositionEncoding {
    if inp.byte() & 1 == 0 {
        PositionEncoding::Utf16
    } else {
        PositionEncoding::Utf8
    }
}

fn units(c: char, enc: PositionEncoding) -> u64 {
    match enc {
        PositionEncoding::Utf8 => c.len_utf8() as u64,
        PositionEncoding::Utf16 => c.len_utf16() as u64,
    }
}

/// Position -> char by walking chars: lines end at LF, CRLF or CR; columns clamp before the
/// break and round down inside a multi-unit char.
fn naive_position_to_char(chars: &[char], pos: Position, enc: PositionEncoding) -> usize {
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

/// Char -> position by walking chars; an offset between CR and LF stays at its line's end.
fn naive_char_to_position(chars: &[char], idx: usize, enc: PositionEncoding) -> Position {
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
    Position::new(line, u32::try_from(col).unwrap_or(u32::MAX))
}

fn naive_lines(chars: &[char]) -> usize {
    let mut lines = 1;
    for (i, &c) in chars.iter().enumerate() {
        if c == '\n' || (c == '\r' && chars.get(i + 1) != Some(&'\n')) {
            lines += 1;
        }
    }
    lines
}

/// Where an anchored range goes through one edit (`start..end` replaced by `inserted`
/// chars), as documented on the store: shifted by edits before it, kept by edits after it,
/// invalidated by edits that overlap or fall inside it.
fn naive_map(r: &Chars<usize>, start: usize, end: usize, inserted: usize) -> Option<Chars<usize>> {
    if start == end && inserted == 0 {
        Some(r.clone())
    } else if end <= r.start {
        Some(r.start - (end - start) + inserted..r.end - (end - start) + inserted)
    } else if start >= r.end {
        Some(r.clone())
    } else {
        None
    }
}

#[derive(Default)]
struct Model {
    chars: Vec<char>,
    version: i32,
    /// Anchor id -> live range and the text it covered when made, or `None` once invalidated.
    anchors: BTreeMap<AnchorId, Option<(Chars<usize>, String)>>,
}

impl Model {
    fn text(&self) -> String {
        self.chars.iter().collect()
    }

    /// Applies a change; returns it as (start, end, inserted) chars of the text before it.
    fn apply(&mut self, change: &Change, enc: PositionEncoding) -> (usize, usize, usize) {
        let (start, end) = match change.range {
            None => (0, self.chars.len()),
            Some(r) => {
                let start = naive_position_to_char(&self.chars, r.start, enc);
                let end = naive_position_to_char(&self.chars, r.end, enc).max(start);
                (start, end)
            }
        };
        let inserted: Vec<char> = change.text.chars().collect();
        let n = inserted.len();
        self.chars.splice(start..end, inserted);
        (start, end, n)
    }
}

fn check(store: &Store, model: &Model) {
    let snap = store.snapshot(URI).expect("the document is open");
    let text = snap.text.to_string();
    assert_eq!(text, model.text());
    assert_eq!(snap.version, model.version);
    assert_eq!(snap.text.len_lines(), naive_lines(&model.chars), "{text:?}");
    for (&id, state) in &model.anchors {
        let got = store.resolve(URI, id);
        match state {
            Some((range, covered)) => {
                assert_eq!(got, AnchorState::Live(range.clone()), "{id:?} in {text:?}");
                let now: String = model.chars[range.clone()].iter().collect();
                assert_eq!(&now, covered, "a live anchor's text changed");
            }
            None => assert_eq!(got, AnchorState::Invalidated, "{id:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let store = Store::new();
    let mut model = Model {
        chars: text(&mut inp, 24).chars().collect(),
        ..Model::default()
    };
    store.open(URI, "rust", model.version, &model.text());
    let mut ops = 0;
    while !inp.is_empty() && ops < 64 {
        ops += 1;
        match inp.byte() % 8 {
            0..=2 => {
                let enc = encoding(&mut inp);
                let count = 1 + inp.byte() % 3;
                let changes: Vec<Change> = (0..count)
                    .map(|_| Change {
                        range: match inp.byte() % 16 {
                            0 => None,
                            _ => Some(Range::new(position(&mut inp), position(&mut inp))),
                        },
                        text: text(&mut inp, 5),
                    })
                    .collect();
                model.version += i32::from(inp.byte() % 2);
                let report = store
                    .change(URI, model.version, &changes, enc)
                    .expect("a current change applies");
                assert_eq!(report.version, model.version);
                let edits: Vec<_> = changes.iter().map(|c| model.apply(c, enc)).collect();
                let (mut invalidated, mut moved) = (Vec::new(), Vec::new());
                for (&id, state) in model.anchors.iter_mut() {
                    let Some((before, covered)) = state.clone() else {
                        continue;
                    };
                    let after = edits
                        .iter()
                        .try_fold(before.clone(), |r, &(s, e, n)| naive_map(&r, s, e, n));
                    match after {
                        None => {
                            invalidated.push(id);
                            *state = None;
                        }
                        Some(after) => {
                            if after != before {
                                moved.push(id);
                            }
                            *state = Some((after, covered));
                        }
                    }
                }
                assert_eq!(report.invalidated, invalidated, "invalidated");
                assert_eq!(report.moved, moved, "moved");
            }
            3 => {
                let (a, b) = (number(&mut inp, 64) as usize, number(&mut inp, 64) as usize);
                let id = store.anchor(URI, a..b).expect("the document is open");
                let len = model.chars.len();
                let start = a.min(len);
                let end = b.clamp(start, len);
                let covered = model.chars[start..end].iter().collect();
                assert!(model
                    .anchors
                    .insert(id, Some((start..end, covered)))
                    .is_none());
            }
            4 => {
                let Some(&id) = model
                    .anchors
                    .keys()
                    .nth(usize::from(inp.byte()) % model.anchors.len().max(1))
                else {
                    continue;
                };
                store.release(URI, id);
                model.anchors.remove(&id);
                assert_eq!(store.resolve(URI, id), AnchorState::Unknown);
            }
            5 => {
                if model.version == i32::MIN {
                    continue;
                }
                let stale = Change {
                    range: None,
                    text: "stale".into(),
                };
                let err = store
                    .change(URI, model.version - 1, &[stale], PositionEncoding::Utf16)
                    .expect_err("a stale change is refused");
                assert!(matches!(err, DocError::StaleVersion { .. }));
            }
            6 => {
                // Reopening replaces the text and forgets the anchors.
                let ids: Vec<AnchorId> = model.anchors.keys().copied().collect();
                model.chars = text(&mut inp, 24).chars().collect();
                model.version += 1;
                model.anchors.clear();
                store.open(URI, "rust", model.version, &model.text());
                for id in ids {
                    assert_eq!(store.resolve(URI, id), AnchorState::Unknown);
                }
            }
            _ => {
                let snap = store.snapshot(URI).expect("the document is open");
                let enc = encoding(&mut inp);
                let pos = position(&mut inp);
                let idx = position_to_char(&snap.text, pos, enc);
                assert_eq!(
                    idx,
                    naive_position_to_char(&model.chars, pos, enc),
                    "{pos:?}"
                );
                let back = char_to_position(&snap.text, idx, enc);
                assert_eq!(back, naive_char_to_position(&model.chars, idx, enc));
                // A position the store hands out leads back to the same char.
                assert_eq!(position_to_char(&snap.text, back, enc), idx);
                let offset = number(&mut inp, 64) as usize;
                let got = char_to_position(&snap.text, offset, enc);
                assert_eq!(got, naive_char_to_position(&model.chars, offset, enc));
            }
        }
        check(&store, &model);
    }
});
