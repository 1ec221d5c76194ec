//! In-memory LRU tier of the response cache, bounded by entry count and by total bytes.

use lru::LruCache;

use super::{CacheKey, Entry};

/// An LRU map bounded twice: by entries and by the approximate bytes the entries hold.
///
/// An entry larger than the byte bound is not kept at all, so one huge answer can never
/// evict everything else. Not thread-safe by itself: the cache wraps it in a mutex that is
/// held only for one map operation.
pub(crate) struct Memory {
    map: LruCache<CacheKey, Slot>,
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
}

struct Slot {
    entry: Entry,
    size: usize,
    stored_unix: u64,
}

/// Fixed per-entry overhead counted on top of the string bytes (key, slot, list links).
const OVERHEAD: usize = 160;

/// Approximate heap bytes an entry costs in memory.
pub(crate) fn entry_size(entry: &Entry) -> usize {
    let a = &entry.answer;
    OVERHEAD + a.text.len() + a.reasoning.len() + a.tier.len() + a.model.len()
}

impl Memory {
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Memory {
        Memory {
            map: LruCache::unbounded(),
            max_entries,
            max_bytes,
            bytes: 0,
        }
    }

    /// Returns a copy of the entry unless it is missing or was stored before `expired_before`.
    pub(crate) fn get(&mut self, key: &CacheKey, expired_before: u64) -> Option<Entry> {
        let slot = self.map.get(key)?;
        if slot.stored_unix < expired_before {
            self.remove(key);
            return None;
        }
        Some(slot.entry.clone())
    }

    pub(crate) fn put(&mut self, key: CacheKey, entry: Entry, now_unix: u64) {
        let size = entry_size(&entry);
        // A new value always replaces the old one, even when the new one is too big to keep.
        self.remove(&key);
        if self.max_entries == 0 || size > self.max_bytes {
            return;
        }
        self.bytes += size;
        self.map.put(
            key,
            Slot {
                entry,
                size,
                stored_unix: now_unix,
            },
        );
        while self.map.len() > self.max_entries || self.bytes > self.max_bytes {
            match self.map.pop_lru() {
                Some((_, old)) => self.bytes -= old.size,
                None => break,
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &CacheKey) {
        if let Some(old) = self.map.pop(key) {
            self.bytes -= old.size;
        }
    }

    /// Drops everything and returns how many entries were held.
    pub(crate) fn clear(&mut self) -> u64 {
        let n = self.map.len() as u64;
        self.map.clear();
        self.bytes = 0;
        n
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn oldest_unix(&self) -> Option<u64> {
        self.map.iter().map(|(_, slot)| slot.stored_unix).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::key;
    use crate::provider::Answer;

    fn entry(text: &str) -> Entry {
        Entry {
            answer: Answer {
                text: text.to_string(),
                tier: "flash".into(),
                model: "m".into(),
                ..Answer::default()
            },
            created_unix: 0,
        }
    }

    fn k(i: usize) -> CacheKey {
        key("review", "m", 1, &format!("prompt {i}"))
    }

    #[test]
    fn bounded_by_entries_in_lru_order() {
        let mut m = Memory::new(2, usize::MAX);
        m.put(k(0), entry("a"), 0);
        m.put(k(1), entry("b"), 0);
        assert!(m.get(&k(0), 0).is_some()); // 0 becomes most recently used
        m.put(k(2), entry("c"), 0);
        assert_eq!(m.len(), 2);
        assert!(m.get(&k(1), 0).is_none());
        assert_eq!(m.get(&k(0), 0).map(|e| e.answer.text), Some("a".into()));
        assert_eq!(m.get(&k(2), 0).map(|e| e.answer.text), Some("c".into()));
    }

    #[test]
    fn bounded_by_bytes() {
        let one = entry_size(&entry(&"x".repeat(1000)));
        let mut m = Memory::new(100, one * 3);
        for i in 0..10 {
            m.put(k(i), entry(&"x".repeat(1000)), 0);
            assert!(m.bytes() <= one * 3);
        }
        assert_eq!(m.len(), 3);
        assert!(m.get(&k(9), 0).is_some());
        assert!(m.get(&k(6), 0).is_none());
    }

    #[test]
    fn an_entry_over_the_byte_bound_is_not_kept_and_evicts_nothing() {
        let mut m = Memory::new(100, 4096);
        m.put(k(0), entry("small"), 0);
        m.put(k(1), entry("small too"), 0);
        m.put(k(2), entry(&"huge".repeat(10_000)), 0);
        assert_eq!(m.len(), 2);
        assert!(m.get(&k(2), 0).is_none());
        assert!(m.get(&k(0), 0).is_some());
        // Replacing a small value with a huge one drops the stale small value.
        m.put(k(0), entry(&"huge".repeat(10_000)), 0);
        assert!(m.get(&k(0), 0).is_none());
        assert_eq!(m.bytes(), entry_size(&entry("small too")));
    }

    #[test]
    fn replacing_a_key_keeps_the_byte_count_exact() {
        let mut m = Memory::new(10, 1 << 20);
        m.put(k(0), entry("aaaa"), 0);
        m.put(k(0), entry("bb"), 0);
        assert_eq!(m.len(), 1);
        assert_eq!(m.bytes(), entry_size(&entry("bb")));
        assert_eq!(m.clear(), 1);
        assert_eq!(m.bytes(), 0);
    }

    #[test]
    fn expired_entries_are_misses_and_dropped() {
        let mut m = Memory::new(10, 1 << 20);
        m.put(k(0), entry("old"), 100);
        m.put(k(1), entry("new"), 200);
        assert_eq!(m.oldest_unix(), Some(100));
        assert!(m.get(&k(0), 150).is_none());
        assert!(m.get(&k(1), 150).is_some());
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn zero_entries_disables_memory() {
        let mut m = Memory::new(0, 1 << 20);
        m.put(k(0), entry("a"), 0);
        assert!(m.get(&k(0), 0).is_none());
    }
}
