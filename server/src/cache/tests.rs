//! Tests of the cache as a whole: keys, tiers together, faults and in-flight sharing.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::provider::TokenUsage;

fn config(dir: &Path) -> CacheConfig {
    CacheConfig {
        dir: Some(dir.to_path_buf()),
        ..CacheConfig::default_for_tests()
    }
}

fn entry(text: &str) -> Entry {
    Entry {
        answer: Answer {
            text: text.to_string(),
            reasoning: "because".into(),
            tier: "flash".into(),
            model: "deepseek-v4-flash".into(),
            usage: TokenUsage {
                input_tokens: 120,
                output_tokens: 40,
                estimated: false,
            },
            cost_usd: Some(0.00001),
            finish_reason: None,
        },
        created_unix: 1_700_000_000,
    }
}

fn k(i: usize) -> CacheKey {
    key("review", "deepseek-v4-flash", 1, &format!("prompt {i}"))
}

impl CacheConfig {
    fn default_for_tests() -> CacheConfig {
        crate::config::Config::default().cache
    }
}

#[test]
fn key_changes_with_each_field() {
    let base = key("review", "m", 1, "p");
    assert_eq!(base, key("review", "m", 1, "p"));
    assert_ne!(base, key("explain", "m", 1, "p"));
    assert_ne!(base, key("review", "m2", 1, "p"));
    assert_ne!(base, key("review", "m", 2, "p"));
    assert_ne!(base, key("review", "m", 1, "p "));
    assert_eq!(base.to_hex().len(), 64);
    assert_eq!(format!("{base}"), base.to_hex());
}

#[test]
fn key_field_boundaries_do_not_collide() {
    assert_ne!(key("ab", "c", 1, "p"), key("a", "bc", 1, "p"));
    assert_ne!(key("a", "b", 1, "cp"), key("a", "bc", 1, "p"));
    assert_ne!(key("", "", 0, ""), key("", "", 0, "\0"));
}

#[test]
fn put_then_get_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(&config(dir.path()));
    assert_eq!(cache.warning(), None);
    assert_eq!(cache.get(&k(1)), None);
    cache.put(&k(1), &entry("first"));
    assert_eq!(cache.get(&k(1)), Some(entry("first")));
    drop(cache);

    let reopened = Cache::open(&config(dir.path()));
    assert_eq!(reopened.lookup(&k(1)), Lookup::Hit(entry("first")));
    assert_eq!(reopened.lookup(&k(2)), Lookup::Miss);
    let stats = reopened.stats();
    assert_eq!((stats.entries, stats.hits, stats.misses), (1, 1, 1));
    assert_eq!(stats.memory_entries, 1, "a disk hit is promoted to memory");
    assert!(stats.disk_active);
    assert_eq!(stats.path, Some(dir.path().join("cache.sqlite3")));
    assert_eq!(stats.hit_rate(), Some(0.5));
    assert!(stats.oldest_unix.is_some());
}

#[test]
fn expired_entries_are_misses_in_memory_and_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = CacheConfig {
        ttl_days: 1,
        ..config(dir.path())
    };
    let cache = Cache::open(&cfg);
    let t0 = 1_800_000_000;
    cache.set_now(t0);
    cache.put(&k(1), &entry("old"));
    cache.set_now(t0 + 86_400 - 1);
    assert!(cache.get(&k(1)).is_some());
    cache.set_now(t0 + 2 * 86_400);
    assert_eq!(cache.get(&k(1)), None, "memory copy expired");

    let other = Cache::open(&cfg);
    other.set_now(t0 + 2 * 86_400);
    assert_eq!(other.get(&k(1)), None, "disk copy expired");
    assert_eq!(other.stats().entries, 0, "expired row purged on read");
}

#[test]
fn expired_rows_are_purged_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = CacheConfig {
        ttl_days: 1,
        ..config(dir.path())
    };
    let cache = Cache::open(&cfg);
    cache.set_now(1_000_000);
    cache.put(&k(1), &entry("ancient"));
    cache.set_now(0);
    cache.put(&k(2), &entry("recent"));
    drop(cache);
    let reopened = Cache::open(&cfg);
    assert_eq!(reopened.stats().entries, 1);
    assert_eq!(reopened.get(&k(2)), Some(entry("recent")));
}

#[test]
fn a_checksum_mismatch_is_a_miss_and_the_row_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(&config(dir.path()));
    cache.put(&k(1), &entry("the right answer"));
    cache.put(&k(2), &entry("untouched"));
    let disk = cache.inner.disk.as_ref().unwrap();
    disk.execute(
        "UPDATE entries SET value = CAST(replace(CAST(value AS TEXT), 'right', 'wrong') AS BLOB)",
    );
    let fresh = Cache::open(&config(dir.path()));
    assert_eq!(fresh.get(&k(1)), None);
    assert_eq!(fresh.get(&k(2)), Some(entry("untouched")));
    assert_eq!(fresh.stats().entries, 1);
    assert_eq!(
        fresh.warning(),
        None,
        "one bad row does not turn the store off"
    );
    let report = fresh.verify().unwrap();
    assert_eq!(
        (report.rows, report.damaged, report.integrity_ok),
        (1, 0, true)
    );
}

#[test]
fn verify_counts_damaged_rows() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(&config(dir.path()));
    cache.put(&k(1), &entry("a"));
    cache.put(&k(2), &entry("b"));
    cache
        .inner
        .disk
        .as_ref()
        .unwrap()
        .execute("UPDATE entries SET checksum = zeroblob(32) WHERE rowid = 1");
    let report = cache.verify().unwrap();
    assert_eq!((report.rows, report.damaged), (2, 1));
}

#[test]
fn flipped_bytes_in_the_file_never_serve_a_corrupted_answer() {
    let dir = tempfile::tempdir().unwrap();
    let marker = "MARKER-0123456789-ANSWER";
    let cache = Cache::open(&config(dir.path()));
    for i in 0..20 {
        cache.put(&k(i), &entry(&format!("{marker} {i}")));
    }
    drop(cache); // the last connection checkpoints the WAL into the main file
    let path = dir.path().join("cache.sqlite3");
    let mut bytes = std::fs::read(&path).unwrap();
    let mut flipped = 0;
    let mut at = 0;
    while let Some(pos) = bytes[at..]
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
    {
        bytes[at + pos] = b'X';
        at += pos + marker.len();
        flipped += 1;
    }
    // Older copies of pages (free pages, the WAL's history) may hold the marker too.
    assert!(flipped >= 20, "{flipped}");
    std::fs::write(&path, &bytes).unwrap();

    let reopened = Cache::open(&config(dir.path()));
    for i in 0..20 {
        assert_eq!(reopened.get(&k(i)), None, "entry {i} served despite damage");
    }
}

#[test]
fn a_garbage_file_degrades_to_memory_and_clear_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cache.sqlite3"), vec![0x5a; 64 * 1024]).unwrap();
    let cache = Cache::open(&config(dir.path()));
    let warning = cache.warning().expect("a warning");
    assert!(warning.contains("cannot use its disk cache"), "{warning}");
    assert!(warning.contains("damaged"), "{warning}");
    assert!(warning.contains("memory"), "{warning}");
    assert_eq!(cache.take_warning(), Some(warning));
    assert_eq!(cache.take_warning(), None, "shown once");

    cache.put(&k(1), &entry("kept in memory"));
    assert_eq!(cache.get(&k(1)), Some(entry("kept in memory")));
    assert!(!cache.stats().disk_active);

    assert_eq!(cache.clear().unwrap(), 0);
    assert_eq!(cache.warning(), None);
    assert!(cache.stats().disk_active);
    cache.put(&k(2), &entry("on disk again"));
    assert_eq!(
        Cache::open(&config(dir.path())).get(&k(2)),
        Some(entry("on disk again"))
    );
}

#[test]
fn an_unusable_directory_degrades_to_memory() {
    // Tests may run as root, where chmod 000 does not stop writes; a directory below a
    // regular file cannot be created by anyone.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let cache = Cache::open(&config(&file.join("sub")));
    let warning = cache.warning().expect("a warning");
    assert!(warning.contains("cannot be created"), "{warning}");
    cache.put(&k(1), &entry("memory"));
    assert_eq!(cache.get(&k(1)), Some(entry("memory")));
    let stats = cache.stats();
    assert!(!stats.disk_active);
    assert_eq!(stats.entries, 1);
}

#[test]
fn a_full_disk_turns_the_store_off_once_and_memory_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(&config(dir.path()));
    cache.put(&k(0), &entry("before"));
    let disk = cache.inner.disk.as_ref().unwrap();
    // SQLite returns SQLITE_FULL when the file would grow past max_page_count, as it does
    // when the file system is full.
    let pages: u32 = 12;
    disk.limit_pages(pages);
    let big = "x".repeat(8 * 1024);
    for i in 1..40 {
        cache.put(&k(i), &entry(&format!("{big} {i}")));
    }
    let warning = cache.take_warning().expect("a warning");
    assert!(
        warning.contains("stopped using its disk cache"),
        "{warning}"
    );
    assert!(warning.contains("the disk is full"), "{warning}");
    assert_eq!(cache.take_warning(), None);
    assert!(!cache.stats().disk_active);
    cache.put(&k(99), &entry("after"));
    assert_eq!(cache.get(&k(99)), Some(entry("after")));
    assert_eq!(cache.get(&k(0)), Some(entry("before")));
}

#[test]
fn the_disk_size_cap_evicts_least_recently_used_rows() {
    let dir = tempfile::tempdir().unwrap();
    let one = serde_json::to_vec(&entry(&"y".repeat(1000))).unwrap().len() as u64;
    let cap = one * 10;
    let disk = disk::Disk::open(dir.path(), 0, cap, 0);
    let t = 1_000_000;
    for i in 0..30 {
        disk.put(&k(i), &entry(&"y".repeat(1000)), t + i as u64 * 10_000);
    }
    // Reading entry 0 long after refreshes its last use, so it outlives newer rows.
    assert!(disk.get(&k(0), t + 400_000).is_some());
    disk.maintain(t + 400_000);
    let totals = disk.totals().unwrap();
    assert!(totals.bytes <= cap, "{} > {cap}", totals.bytes);
    assert_eq!(
        totals.entries, 9,
        "evicted down to 90% of the cap in one batch"
    );
    assert!(disk.get(&k(0), t + 400_000).is_some());
    assert!(disk.get(&k(29), t + 400_000).is_some());
    assert!(disk.get(&k(1), t + 400_000).is_none());
}

#[test]
fn a_disabled_cache_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(&CacheConfig {
        enabled: false,
        ..config(dir.path())
    });
    cache.put(&k(1), &entry("a"));
    assert_eq!(cache.get(&k(1)), None);
    assert_eq!(cache.warning(), None);
    assert!(!dir.path().join("cache.sqlite3").exists());
}

#[test]
fn clear_empties_memory_and_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(&config(dir.path()));
    for i in 0..5 {
        cache.put(&k(i), &entry("a"));
    }
    assert_eq!(cache.clear().unwrap(), 5);
    assert_eq!(cache.get(&k(1)), None);
    assert_eq!(cache.stats().entries, 0);
    let memory = Cache::memory_only(&config(dir.path()));
    memory.put(&k(1), &entry("a"));
    assert_eq!(memory.clear().unwrap(), 1);
    assert!(matches!(memory.verify(), Err(CacheError::NoDisk)));
}

// ---- in-flight sharing ----

/// Sets its flag when the computation holding it is dropped (finished or cancelled).
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Failed(String);

#[tokio::test]
async fn concurrent_identical_requests_share_one_computation() {
    let cache = Cache::memory_only(&CacheConfig::default_for_tests());
    let computes = Arc::new(AtomicUsize::new(0));
    let (release, gate) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let cache = cache.clone();
        let computes = Arc::clone(&computes);
        let mut gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            cache
                .share(k(1), false, async move {
                    computes.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.wait_for(|open| *open).await;
                    Ok::<_, Failed>(entry("shared"))
                })
                .await
        }));
    }
    // Let every task register before the computation may finish.
    while cache.inner.flights.len() == 0 || computes.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    release.send_replace(true);
    let mut computed = 0;
    for task in tasks {
        let (got, cached) = task.await.unwrap().unwrap();
        assert_eq!(got, entry("shared"));
        computed += usize::from(!cached);
    }
    assert_eq!(computes.load(Ordering::SeqCst), 1);
    assert_eq!(computed, 1, "exactly one waiter reports the spend");
    assert_eq!(cache.inner.flights.len(), 0);
    let (_, cached) = cache
        .share(k(1), false, async { Ok::<_, Failed>(entry("new")) })
        .await
        .unwrap();
    assert!(cached);
}

#[tokio::test]
async fn dropping_the_last_waiter_cancels_the_computation() {
    let cache = Cache::memory_only(&CacheConfig::default_for_tests());
    let dropped = Arc::new(AtomicBool::new(false));
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let flag = DropFlag(Arc::clone(&dropped));
    let task = tokio::spawn({
        let cache = cache.clone();
        async move {
            cache
                .share(k(1), false, async move {
                    let _flag = flag;
                    let _ = started_tx.send(());
                    futures::future::pending::<Result<Entry, Failed>>().await
                })
                .await
        }
    });
    started.await.unwrap();
    assert!(!dropped.load(Ordering::SeqCst));
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(
        dropped.load(Ordering::SeqCst),
        "computation dropped with its last waiter"
    );
    assert_eq!(cache.inner.flights.len(), 0);
}

#[tokio::test]
async fn dropping_one_waiter_keeps_the_computation_for_the_others() {
    let cache = Cache::memory_only(&CacheConfig::default_for_tests());
    let dropped = Arc::new(AtomicBool::new(false));
    let computes = Arc::new(AtomicUsize::new(0));
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let (release_tx, release) = tokio::sync::oneshot::channel::<()>();
    let flag = DropFlag(Arc::clone(&dropped));
    let counter = Arc::clone(&computes);
    let first = tokio::spawn({
        let cache = cache.clone();
        async move {
            cache
                .share(k(1), false, async move {
                    let _flag = flag;
                    counter.fetch_add(1, Ordering::SeqCst);
                    let _ = started_tx.send(());
                    let _ = release.await;
                    Ok::<_, Failed>(entry("survived"))
                })
                .await
        }
    });
    started.await.unwrap();
    let counter = Arc::clone(&computes);
    let second = tokio::spawn({
        let cache = cache.clone();
        async move {
            cache
                .share(k(1), false, async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, Failed>(entry("second compute"))
                })
                .await
        }
    });
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    first.abort();
    let _ = first.await;
    assert!(!dropped.load(Ordering::SeqCst), "still one waiter");
    release_tx.send(()).unwrap();
    let (got, cached) = second.await.unwrap().unwrap();
    assert_eq!(got, entry("survived"));
    assert!(
        !cached,
        "the only waiter to receive the result reports the spend"
    );
    assert_eq!(computes.load(Ordering::SeqCst), 1);
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(cache.get(&k(1)), Some(entry("survived")));
}

#[tokio::test]
async fn errors_reach_every_waiter_and_are_never_cached() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(&config(dir.path()));
    let computes = Arc::new(AtomicUsize::new(0));
    let (release, gate) = tokio::sync::watch::channel(false);
    let run = |cache: Cache| {
        let computes = Arc::clone(&computes);
        let mut gate = gate.clone();
        tokio::spawn(async move {
            cache
                .share(k(1), false, async move {
                    computes.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.wait_for(|open| *open).await;
                    Err::<Entry, _>(Failed("rate limited".into()))
                })
                .await
        })
    };
    let a = run(cache.clone());
    let b = run(cache.clone());
    while computes.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    release.send_replace(true);
    assert_eq!(a.await.unwrap(), Err(Failed("rate limited".into())));
    assert_eq!(b.await.unwrap(), Err(Failed("rate limited".into())));
    assert_eq!(computes.load(Ordering::SeqCst), 1);
    assert_eq!(cache.get(&k(1)), None);
    assert_eq!(cache.stats().entries, 0);

    let (got, cached) = cache
        .share(k(1), false, async { Ok::<_, Failed>(entry("ok now")) })
        .await
        .unwrap();
    assert_eq!((got, cached), (entry("ok now"), false));
}

#[tokio::test]
async fn fresh_skips_the_read_and_replaces_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(&config(dir.path()));
    cache.put(&k(1), &entry("old"));
    let (got, cached) = cache
        .share(k(1), false, async { Ok::<_, Failed>(entry("new")) })
        .await
        .unwrap();
    assert_eq!((got, cached), (entry("old"), true));
    let (got, cached) = cache
        .share(k(1), true, async { Ok::<_, Failed>(entry("new")) })
        .await
        .unwrap();
    assert_eq!((got, cached), (entry("new"), false));
    assert_eq!(cache.get(&k(1)), Some(entry("new")));
    assert_eq!(
        Cache::open(&config(dir.path())).get(&k(1)),
        Some(entry("new")),
        "on disk too"
    );
}

#[tokio::test]
async fn a_fresh_request_joins_a_computation_in_flight() {
    let cache = Cache::memory_only(&CacheConfig::default_for_tests());
    let (release_tx, release) = tokio::sync::oneshot::channel::<()>();
    let first = tokio::spawn({
        let cache = cache.clone();
        async move {
            cache
                .share(k(1), false, async move {
                    let _ = release.await;
                    Ok::<_, Failed>(entry("in flight"))
                })
                .await
        }
    });
    while cache.inner.flights.len() == 0 {
        tokio::task::yield_now().await;
    }
    let joined = tokio::spawn({
        let cache = cache.clone();
        async move {
            cache
                .share(k(1), true, async { Ok::<_, Failed>(entry("not run")) })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    release_tx.send(()).unwrap();
    let a = first.await.unwrap().unwrap();
    let b = joined.await.unwrap().unwrap();
    assert_eq!(
        (a.0.clone(), b.0.clone()),
        (entry("in flight"), entry("in flight"))
    );
    assert_ne!(a.1, b.1, "one of the two reports the spend");
}

#[tokio::test]
async fn share_answers_disk_hits_from_another_process_view() {
    let dir = tempfile::tempdir().unwrap();
    Cache::open(&config(dir.path())).put(&k(7), &entry("from disk"));
    let cache = Cache::open(&config(dir.path()));
    let (got, cached) = cache
        .share(k(7), false, async {
            Err::<Entry, _>(Failed("must not run".into()))
        })
        .await
        .unwrap();
    assert_eq!((got, cached), (entry("from disk"), true));
    assert_eq!(cache.stats().hits, 1);
}

#[test]
fn processes_opening_a_new_cache_at_once_all_get_it() {
    // Editors start several servers at once (a multi-root workspace, parallel CI jobs): each
    // connection creating the same new file must end up using it, never fall back to memory
    // because another was switching it to WAL or writing its schema at that moment.
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let start = Arc::new(std::sync::Barrier::new(6));
        let openers: Vec<_> = (0..6)
            .map(|_| {
                let (dir, start) = (dir.path().to_path_buf(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    Cache::open(&config(&dir)).warning()
                })
            })
            .collect();
        for opener in openers {
            assert_eq!(opener.join().unwrap(), None, "round {round}");
        }
    }
}
