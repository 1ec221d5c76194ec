//! Document sync benchmark: random small edits on a 1 MB, 20,000-line document, time and memory.
//!
//! Run with `cargo bench -p codetier --bench doc_sync`. Before divan's timings it prints a
//! summary: µs per edit over 2,000 seeded random edits, and the live heap bytes of the store
//! (after open and after the edits) with their ratio to the document's size. Targets
//! (issue 2): under 50 µs per edit, under 3x the document's size.

// The live-heap counter below is a `GlobalAlloc`, whose trait is `unsafe` to implement.
// `unsafe_code` is denied workspace-wide; this bench binary is not the server, and the
// allocator only forwards to `System` while counting bytes.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use codetier::docs::{Change, Position, PositionEncoding, Range, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Forwards to the system allocator and keeps the number of live heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; the counter is a side effect.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours, forwarded.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours, forwarded.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours, forwarded.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours, forwarded.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const URI: &str = "file:///bench/big.rs";
const LINES: usize = 20_000;
const EDITS: usize = 2_000;
const SEED: u64 = 0xc0de_71e2;

/// A code-like document of `LINES` lines averaging 50 bytes (about 1 MB), a little non-ASCII.
fn document() -> String {
    const WORDS: &[&str] = &[
        "let",
        "value",
        "=",
        "compute(x,",
        "y);",
        "if",
        "else",
        "{",
        "}",
        "return",
        "self.map",
        "// note:",
        "\"héllo\"",
        "'😀'",
        "Vec<u8>",
        "match",
        "=>",
        "Some(v)",
        "None,",
        "fn",
        "pub",
        "struct",
        "impl",
        "for",
        "in",
        "0..n",
        "+",
        "-",
        "*",
        "x_1",
        "étage",
    ];
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut text = String::with_capacity(LINES * 52);
    for _ in 0..LINES {
        let target = rng.random_range(10..=88);
        let start = text.len();
        text.push_str(&" ".repeat(4 * rng.random_range(0..4)));
        while text.len() - start < target {
            text.push_str(WORDS[rng.random_range(0..WORDS.len())]);
            text.push(' ');
        }
        text.push('\n');
    }
    text
}

/// `EDITS` small random edits in the given encoding: typing, deleting, replacing, and the
/// occasional line split or join, at random places.
fn edits(seed: u64) -> Vec<Change> {
    const INSERTS: &[&str] = &["a", "b", " ", "(", ")", ";", "é", "😀", "\n", "\r\n", "xy"];
    let mut rng = StdRng::seed_from_u64(seed);
    (0..EDITS)
        .map(|_| {
            let line = rng.random_range(0..LINES as u32);
            let character = rng.random_range(0..70);
            let start = Position { line, character };
            let end = if rng.random_bool(0.05) {
                Position {
                    line: line + 1,
                    character: 0,
                }
            } else {
                Position {
                    line,
                    character: character + rng.random_range(0..4),
                }
            };
            let text: String = (0..rng.random_range(0..4))
                .map(|_| INSERTS[rng.random_range(0..INSERTS.len())])
                .collect();
            Change {
                range: Some(Range { start, end }),
                text,
            }
        })
        .collect()
}

fn apply_all(store: &Store, edits: &[Change], enc: PositionEncoding) {
    for (version, change) in (1..).zip(edits) {
        let report = store.change(URI, version, std::slice::from_ref(change), enc);
        black_box(report.is_ok());
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and there divan only
    // smoke-runs each benchmark once, so the slower summary is skipped.
    if std::env::args().any(|arg| arg == "--bench") {
        summary();
    }
    divan::main();
}

/// Times the 2,000 edits once per encoding and measures the store's live heap bytes.
fn summary() {
    let doc = document();
    let edits = edits(SEED + 1);
    let mut out = std::io::stdout().lock();
    let lines = doc.lines().count();
    let _ = writeln!(out, "document: {} bytes, {lines} lines", doc.len());

    for enc in [PositionEncoding::Utf16, PositionEncoding::Utf8] {
        let before = LIVE.load(Ordering::Relaxed);
        let store = Store::new();
        store.open(URI, "rust", 0, &doc);
        let opened = LIVE.load(Ordering::Relaxed) - before;

        let started = Instant::now();
        apply_all(&store, &edits, enc);
        let elapsed = started.elapsed();
        let edited = LIVE.load(Ordering::Relaxed) - before;

        let snap_before = LIVE.load(Ordering::Relaxed);
        let snapshot = store.snapshot(URI);
        let snap_bytes = LIVE.load(Ordering::Relaxed) - snap_before;
        let final_len = snapshot.as_ref().map_or(0, |s| s.text.len_bytes());
        drop(snapshot);

        let per_edit = elapsed.as_secs_f64() * 1e6 / EDITS as f64;
        let ratio = |bytes: usize| bytes as f64 / doc.len() as f64;
        let _ = writeln!(
            out,
            "{enc:?}: {EDITS} edits in {:.2} ms = {per_edit:.2} µs/edit (target < 50)",
            elapsed.as_secs_f64() * 1e3
        );
        let _ = writeln!(
            out,
            "{enc:?}: store heap after open {opened} bytes ({:.2}x), after edits {edited} bytes ({:.2}x, text now {final_len} bytes; target < 3x); a snapshot costs {snap_bytes} bytes",
            ratio(opened),
            ratio(edited),
        );
    }
}

#[divan::bench(args = ["utf16", "utf8"], sample_count = 20, sample_size = 1)]
fn apply_2000_edits(bencher: divan::Bencher, enc: &str) {
    let enc = match enc {
        "utf8" => PositionEncoding::Utf8,
        _ => PositionEncoding::Utf16,
    };
    let doc = document();
    let edits = edits(SEED + 1);
    bencher
        .counter(divan::counter::ItemsCount::new(EDITS))
        .with_inputs(|| {
            let store = Store::new();
            store.open(URI, "rust", 0, &doc);
            store
        })
        .bench_local_refs(|store| apply_all(store, &edits, enc));
}

#[divan::bench(sample_count = 200, sample_size = 10)]
fn one_edit_utf16(bencher: divan::Bencher) {
    let store = Store::new();
    store.open(URI, "rust", 0, &document());
    let edits = edits(SEED + 2);
    let mut next = 0usize;
    bencher.bench_local(|| {
        let change = &edits[next % edits.len()];
        next += 1;
        // Equal versions are accepted, so one version number serves every edit.
        store.change(
            URI,
            1,
            std::slice::from_ref(change),
            PositionEncoding::Utf16,
        )
    });
}
