//! Range anchors of one document: char ranges carried through later edits, or invalidated.

use std::collections::BTreeMap;
use std::ops::Range;

/// At most this many anchors (live or invalidated) per document; the oldest go first.
pub const MAX_ANCHORS: usize = 4096;

/// Identifies an anchor in the store; unique across documents for the store's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AnchorId(u64);

impl AnchorId {
    /// The raw number, for carrying an anchor in protocol data (e.g. `Diagnostic.data`).
    pub fn to_raw(self) -> u64 {
        self.0
    }

    /// Rebuilds an id from `to_raw`; an id the store never issued resolves to `Unknown`.
    pub fn from_raw(raw: u64) -> Self {
        AnchorId(raw)
    }
}

/// What became of an anchored range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnchorState {
    /// The range, in chars of the current text.
    Live(Range<usize>),
    /// An edit touched the range: the anchored text is gone or changed.
    Invalidated,
    /// Never issued for this document, released, evicted, or the document was closed.
    Unknown,
}

/// One replacement in char offsets of the text it applies to: `start..end` became `inserted` chars.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edit {
    pub start: usize,
    pub end: usize,
    pub inserted: usize,
}

impl Edit {
    fn is_noop(&self) -> bool {
        self.start == self.end && self.inserted == 0
    }
}

/// Where `range` lies after `edit`, or `None` when the edit invalidates it.
///
/// An edit entirely before the range shifts it (including one that ends exactly at its
/// start, and a pure insertion at its start); an edit entirely after it leaves it
/// (including a pure insertion at its end); an edit that overlaps the range or lies strictly
/// inside it invalidates it. An empty range sitting at a pure insertion is shifted.
pub fn map_range(range: &Range<usize>, edit: &Edit) -> Option<Range<usize>> {
    if edit.is_noop() {
        return Some(range.clone());
    }
    if edit.end <= range.start {
        let removed = edit.end - edit.start;
        let shift = |x: usize| x - removed + edit.inserted;
        return Some(shift(range.start)..shift(range.end));
    }
    if edit.start >= range.end {
        return Some(range.clone());
    }
    None
}

/// The anchors of one document, in issue order (ids grow monotonically).
#[derive(Debug, Default)]
pub struct Anchors {
    slots: BTreeMap<u64, Option<Range<usize>>>,
}

impl Anchors {
    pub fn insert(&mut self, id: AnchorId, range: Range<usize>) {
        self.slots.insert(id.0, Some(range));
        while self.slots.len() > MAX_ANCHORS {
            self.slots.pop_first();
        }
    }

    pub fn get(&self, id: AnchorId) -> AnchorState {
        match self.slots.get(&id.0) {
            Some(Some(range)) => AnchorState::Live(range.clone()),
            Some(None) => AnchorState::Invalidated,
            None => AnchorState::Unknown,
        }
    }

    pub fn remove(&mut self, id: AnchorId) {
        self.slots.remove(&id.0);
    }

    /// Carries every live anchor through `edits` (applied in order, each relative to the
    /// previous result) and returns the ids invalidated and the ids whose range moved.
    pub fn apply(&mut self, edits: &[Edit]) -> (Vec<AnchorId>, Vec<AnchorId>) {
        let mut invalidated = Vec::new();
        let mut moved = Vec::new();
        if edits.iter().all(Edit::is_noop) {
            return (invalidated, moved);
        }
        for (&id, slot) in self.slots.iter_mut() {
            let Some(before) = slot.clone() else { continue };
            let after = edits
                .iter()
                .try_fold(before.clone(), |range, edit| map_range(&range, edit));
            match after {
                Some(after) if after == before => {}
                Some(after) => {
                    moved.push(AnchorId(id));
                    *slot = Some(after);
                }
                None => {
                    invalidated.push(AnchorId(id));
                    *slot = None;
                }
            }
        }
        (invalidated, moved)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One fixture: anchor `range`, apply `edits` as (start, end, inserted), expect `want`.
    fn check(range: Range<usize>, edits: &[(usize, usize, usize)], want: Option<Range<usize>>) {
        let mut anchors = Anchors::default();
        let id = AnchorId(1);
        anchors.insert(id, range.clone());
        let edits: Vec<Edit> = edits
            .iter()
            .map(|&(start, end, inserted)| Edit {
                start,
                end,
                inserted,
            })
            .collect();
        let (invalidated, moved) = anchors.apply(&edits);
        let state = anchors.get(id);
        match &want {
            Some(r) => {
                assert_eq!(state, AnchorState::Live(r.clone()), "{range:?} {edits:?}");
                assert!(invalidated.is_empty());
                assert_eq!(
                    moved.contains(&id),
                    *r != range,
                    "{range:?} {edits:?} moved"
                );
            }
            None => {
                assert_eq!(state, AnchorState::Invalidated, "{range:?} {edits:?}");
                assert_eq!(invalidated, vec![id]);
                assert!(moved.is_empty());
            }
        }
    }

    #[test]
    fn edits_before_shift() {
        check(10..20, &[(0, 2, 5)], Some(13..23));
        check(10..20, &[(0, 5, 0)], Some(5..15));
        check(10..20, &[(8, 10, 0)], Some(8..18)); // deletion ending at the start
        check(10..20, &[(10, 10, 3)], Some(13..23)); // pure insertion at the start
        check(10..20, &[(5, 10, 1)], Some(6..16)); // replacement ending at the start
    }

    #[test]
    fn edits_after_leave() {
        check(10..20, &[(20, 20, 4)], Some(10..20)); // pure insertion at the end
        check(10..20, &[(20, 25, 0)], Some(10..20)); // deletion starting at the end
        check(10..20, &[(30, 40, 2)], Some(10..20));
    }

    #[test]
    fn edits_touching_invalidate() {
        check(10..20, &[(15, 15, 1)], None); // insertion strictly inside
        check(10..20, &[(12, 14, 0)], None); // deletion inside
        check(10..20, &[(5, 11, 0)], None); // overlaps the start
        check(10..20, &[(19, 25, 3)], None); // overlaps the end
        check(10..20, &[(0, 100, 0)], None); // swallows it
        check(10..20, &[(10, 20, 10)], None); // same-length replacement
    }

    #[test]
    fn empty_anchor_and_noops() {
        check(5..5, &[(5, 5, 2)], Some(7..7)); // a cursor moves with typing at it
        check(5..5, &[(3, 5, 0)], Some(3..3));
        check(5..5, &[(5, 8, 0)], Some(5..5));
        check(5..5, &[(4, 6, 0)], None);
        check(10..20, &[(15, 15, 0)], Some(10..20)); // empty change: nothing happened
    }

    #[test]
    fn sequential_edits_compose() {
        // Each edit is relative to the text the previous one produced.
        check(10..20, &[(0, 0, 5), (15, 15, 1)], Some(16..26));
        check(10..20, &[(0, 0, 5), (16, 16, 1)], None);
        check(10..20, &[(0, 5, 0), (20, 21, 0)], Some(5..15));
    }

    #[test]
    fn oldest_anchors_are_evicted() {
        let mut anchors = Anchors::default();
        for i in 0..(MAX_ANCHORS as u64 + 10) {
            anchors.insert(AnchorId(i), 0..1);
        }
        assert_eq!(anchors.len(), MAX_ANCHORS);
        assert_eq!(anchors.get(AnchorId(9)), AnchorState::Unknown);
        assert_eq!(anchors.get(AnchorId(10)), AnchorState::Live(0..1));
    }
}
