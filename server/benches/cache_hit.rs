//! Cache hit path inside the process: key hashing, memory hit, disk hit, and `share` hits.
//!
//! Run with `cargo bench -p codetier --bench cache_hit`. Target: a hit under 100 µs.

use codetier::cache::{key, Cache, CacheKey, Entry};
use codetier::config::{CacheConfig, Config};
use codetier::provider::{Answer, TokenUsage};
use divan::{black_box, Bencher};

fn main() {
    divan::main();
}

/// A prompt of typical size: a selection with 20 lines of context either side.
fn prompt() -> String {
    "    let value = compute(alpha, beta).map_err(|e| anyhow!(\"failed: {e}\"))?;\n".repeat(160)
}

fn answer() -> Entry {
    Entry {
        answer: Answer {
            text: "The loop reads one element past the end of the slice. ".repeat(40),
            tier: "flash".into(),
            model: "deepseek-v4-flash".into(),
            usage: TokenUsage {
                input_tokens: 3000,
                output_tokens: 500,
                estimated: false,
            },
            cost_usd: Some(0.000125),
            ..Answer::default()
        },
        created_unix: 1_700_000_000,
    }
}

/// A cache in a fresh directory holding one answer; `memory_entries: 0` forces disk reads.
fn setup(memory_entries: usize) -> (tempfile::TempDir, Cache, CacheKey) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = CacheConfig {
        dir: Some(dir.path().to_path_buf()),
        memory_entries,
        ..Config::default().cache
    };
    let cache = Cache::open(&cfg);
    assert_eq!(cache.warning(), None);
    let k = key("review", "deepseek-v4-flash", 1, &prompt());
    cache.put(&k, &answer());
    (dir, cache, k)
}

#[divan::bench]
fn key_of_a_12k_prompt(bencher: Bencher) {
    let p = prompt();
    bencher.bench_local(|| {
        key(
            black_box("review"),
            black_box("deepseek-v4-flash"),
            1,
            black_box(&p),
        )
    });
}

#[divan::bench]
fn memory_hit(bencher: Bencher) {
    let (_dir, cache, k) = setup(512);
    bencher.bench_local(|| cache.get(black_box(&k)).expect("hit"));
}

#[divan::bench]
fn disk_hit(bencher: Bencher) {
    let (_dir, cache, k) = setup(0);
    bencher.bench_local(|| cache.get(black_box(&k)).expect("hit"));
}

#[divan::bench]
fn share_memory_hit(bencher: Bencher) {
    let (_dir, cache, k) = setup(512);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    bencher.bench_local(|| {
        rt.block_on(cache.share(k, false, async { Err::<Entry, ()>(()) }))
            .expect("hit")
    });
}

/// Disk reads inside `share` go through `spawn_blocking`: this measures that hand-off too.
#[divan::bench]
fn share_disk_hit(bencher: Bencher) {
    let (_dir, cache, k) = setup(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    bencher.bench_local(|| {
        rt.block_on(cache.share(k, false, async { Err::<Entry, ()>(()) }))
            .expect("hit")
    });
}
