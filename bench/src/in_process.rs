//! In-process benchmarks: the document store's edit path and the cache's hit path, timed one call at a time.
//!
//! The edit path takes the inputs of the divan bench `server/benches/doc_sync.rs`, but every
//! call is timed on its own so the report can give a p99 next to the median.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use codetier::cache::{key, Cache, CacheKey, Entry};
use codetier::config::{CacheConfig, Config};
use codetier::docs::{Change, Position, PositionEncoding, Range, Store};
use codetier::provider::{Answer, TokenUsage};

use crate::report::{Report, Row, Target};
use crate::source::{rust_source, Typist};
use crate::stats::Summary;
use crate::Ctx;

const GROUP_SYNC: &str = "Document sync and codeAction over LSP (1 MB file)";
const GROUP_CACHE: &str = "Cache hits";
const URI: &str = "file:///bench/big.rs";

/// `Store::change` with one single-character edit on a 1 MB document.
pub fn doc_sync(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let text = rust_source(1 << 20);
    let store = Store::new();
    store.open(URI, "rust", 0, &text);
    let mut typist = Typist::new(&text, 0xd0c5);
    let n = ctx.scaled(20_000, 2_000);
    let mut times = Vec::with_capacity(n);
    for version in 1..=n as i32 {
        let edit = typist.next_edit();
        let change = Change {
            range: Some(Range {
                start: Position {
                    line: edit.line,
                    character: edit.start,
                },
                end: Position {
                    line: edit.line,
                    character: edit.end,
                },
            }),
            text: edit.text.to_owned(),
        };
        let started = Instant::now();
        let applied = store.change(
            URI,
            version,
            std::slice::from_ref(&change),
            PositionEncoding::Utf16,
        );
        times.push(started.elapsed());
        ensure!(applied.is_ok(), "change {version} was refused: {applied:?}");
    }
    report.push(Row::timing(
        GROUP_SYNC,
        "in process: `Store::change`, one 1-char edit (cf. `cargo bench --bench doc_sync`)",
        &Summary::of(&times).context("samples")?,
        Target::P50Below(Duration::from_micros(50)),
    ));
    Ok(())
}

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

/// A cache in a fresh directory holding one answer; `memory_entries: 0` makes every read a disk read.
fn cache_with_one(memory_entries: usize) -> anyhow::Result<(tempfile::TempDir, Cache, CacheKey)> {
    let dir = tempfile::tempdir()?;
    let cfg = CacheConfig {
        dir: Some(dir.path().to_path_buf()),
        memory_entries,
        ..Config::default().cache
    };
    let cache = Cache::open(&cfg);
    ensure!(cache.warning().is_none(), "cache: {:?}", cache.warning());
    let k = key("review", "deepseek-v4-flash", 1, &prompt());
    cache.put(&k, &answer());
    Ok((dir, cache, k))
}

/// The cache's hit paths: key hashing, memory and disk reads, and `share` (what the engine calls).
pub fn cache_hit(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let n = ctx.scaled(20_000, 2_000);
    let p = prompt();
    let time = |f: &mut dyn FnMut() -> bool| -> anyhow::Result<Summary> {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            let ok = f();
            times.push(started.elapsed());
            ensure!(ok, "a read missed");
        }
        Summary::of(&times).context("samples")
    };
    let target = Target::P99Below(Duration::from_micros(100));
    let name = |what: &str| format!("in process: {what}");

    let s = time(&mut || {
        std::hint::black_box(key(
            "review",
            "deepseek-v4-flash",
            1,
            std::hint::black_box(&p),
        ));
        true
    })?;
    report.push(Row::timing(
        GROUP_CACHE,
        name("key of a 12 KB prompt"),
        &s,
        Target::None,
    ));

    let (_dir, memory, k) = cache_with_one(512)?;
    let s = time(&mut || memory.get(&k).is_some())?;
    report.push(Row::timing(
        GROUP_CACHE,
        name("memory hit, `Cache::get`"),
        &s,
        target,
    ));
    let s = time(&mut || {
        ctx.rt
            .block_on(memory.share(k, false, async { Err::<Entry, ()>(()) }))
            .is_ok_and(|(_, hit)| hit)
    })?;
    report.push(Row::timing(
        GROUP_CACHE,
        name("memory hit, `Cache::share`"),
        &s,
        target,
    ));

    let (_dir, disk, k) = cache_with_one(0)?;
    let s = time(&mut || disk.get(&k).is_some())?;
    report.push(Row::timing(
        GROUP_CACHE,
        name("disk (SQLite) hit, `Cache::get`"),
        &s,
        target,
    ));
    let s = time(&mut || {
        ctx.rt
            .block_on(disk.share(k, false, async { Err::<Entry, ()>(()) }))
            .is_ok_and(|(_, hit)| hit)
    })?;
    report.push(Row::timing(
        GROUP_CACHE,
        name("disk hit, `Cache::share` (via `spawn_blocking`)"),
        &s,
        target,
    ));
    report.note(
        "**Cache hit in process.** A 12 KB prompt and a 2 KB answer, with each call timed on \
         its own; `share` runs on the bench's tokio runtime through `block_on`, so its times \
         include waking that runtime. A disk hit is forced with `memory_entries = 0`.",
    );
    Ok(())
}
