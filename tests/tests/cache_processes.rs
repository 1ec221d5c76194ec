//! Several processes on one cache file: concurrent writers see each other, and a writer
//! killed with SIGKILL leaves a store that opens and serves only intact entries.
//!
//! The second process is this test binary run again with `CODETIER_CACHE_CHILD` set, which
//! makes the ignored `child_entry` test act as the child.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codetier::cache::{key, Cache, CacheKey, Entry};
use codetier::config::{CacheConfig, Config};
use codetier::provider::{Answer, TokenUsage};

const ROLE: &str = "CODETIER_CACHE_CHILD";
const DIR: &str = "CODETIER_CACHE_CHILD_DIR";
const PAIR_COUNT: usize = 150;

fn config(dir: &Path) -> CacheConfig {
    // No memory tier: every read goes to the shared file.
    CacheConfig {
        dir: Some(dir.to_path_buf()),
        memory_entries: 0,
        ..Config::default().cache
    }
}

fn item_key(writer: &str, i: usize) -> CacheKey {
    key(
        "review",
        "deepseek-v4-flash",
        1,
        &format!("{writer} prompt {i}"),
    )
}

fn item(writer: &str, i: usize) -> Entry {
    Entry {
        answer: Answer {
            text: format!("{writer} answer {i} ") + &"lorem ipsum ".repeat(i % 13 * 40),
            reasoning: format!("reasoning {i}"),
            tier: "flash".into(),
            model: "deepseek-v4-flash".into(),
            usage: TokenUsage {
                input_tokens: i as u64,
                output_tokens: 2 * i as u64,
                estimated: false,
            },
            // Dyadic, so the JSON round trip is exact even without serde_json's float_roundtrip.
            cost_usd: Some(i as f64 / 1024.0),
            finish_reason: None,
        },
        created_unix: 1_700_000_000 + i as u64,
    }
}

fn child(role: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary path"));
    cmd.args([
        "--exact",
        "child_entry",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ROLE, role)
    .env(DIR, dir);
    cmd
}

/// Writes this side's entries while reading the other side's, then waits until all of the
/// other side's entries are visible and intact.
fn write_and_read(dir: &Path, mine: &str, theirs: &str) -> Result<(), String> {
    let cache = Cache::open(&config(dir));
    if let Some(w) = cache.warning() {
        return Err(format!("{mine}: {w}"));
    }
    for i in 0..PAIR_COUNT {
        cache.put(&item_key(mine, i), &item(mine, i));
        if let Some(found) = cache.get(&item_key(theirs, i / 2)) {
            if found != item(theirs, i / 2) {
                return Err(format!("{mine}: entry {theirs} {} differs", i / 2));
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..PAIR_COUNT {
        loop {
            match cache.get(&item_key(theirs, i)) {
                Some(found) if found == item(theirs, i) => break,
                Some(_) => return Err(format!("{mine}: entry {theirs} {i} differs")),
                None if Instant::now() > deadline => {
                    let missing = (i..PAIR_COUNT)
                        .filter(|&j| cache.get(&item_key(theirs, j)).is_none())
                        .count();
                    let totals = cache.stats();
                    return Err(format!(
                        "{mine}: entry {theirs} {i} never appeared ({missing} of theirs from \
                         {i} on missing; warning: {:?}; store: {totals:?})",
                        cache.warning()
                    ));
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
    for i in 0..PAIR_COUNT {
        if cache.get(&item_key(mine, i)).as_ref() != Some(&item(mine, i)) {
            return Err(format!("{mine}: own entry {i} lost"));
        }
    }
    match cache.warning() {
        Some(w) => Err(format!("{mine}: {w}")),
        None => Ok(()),
    }
}

#[test]
#[ignore = "the child process of the other tests in this file"]
fn child_entry() {
    let (Ok(role), Some(dir)) = (std::env::var(ROLE), std::env::var_os(DIR)) else {
        return;
    };
    let dir = Path::new(&dir);
    match role.as_str() {
        "pair" => write_and_read(dir, "child", "parent").expect("child side"),
        "endless" => {
            let cache = Cache::open(&config(dir));
            assert_eq!(cache.warning(), None);
            let mut out = std::io::stdout().lock();
            for i in 0.. {
                cache.put(&item_key("killed", i), &item("killed", i));
                // Reported only after the put returned, so the parent knows it committed.
                std::io::Write::write_all(&mut out, format!("{i}\n").as_bytes()).expect("stdout");
                std::io::Write::flush(&mut out).expect("stdout");
            }
        }
        other => panic!("unknown child role {other}"),
    }
}

#[test]
fn two_processes_write_and_read_the_same_cache_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let child = child("pair", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ours = write_and_read(dir.path(), "parent", "child");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "child failed (parent side: {ours:?}): {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ours.unwrap();
    let cache = Cache::open(&config(dir.path()));
    let report = cache.verify().unwrap();
    assert!(report.integrity_ok, "{}", report.integrity);
    assert_eq!((report.rows, report.damaged), (2 * PAIR_COUNT as u64, 0));
}

#[test]
fn a_writer_killed_with_sigkill_leaves_a_sound_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = child("endless", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(writer.stdout.take().unwrap()).lines();
    let mut committed = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(Ok(line)) = lines.next() {
        if let Ok(i) = line.trim().parse::<usize>() {
            committed = Some(i);
            if i >= 400 || Instant::now() > deadline {
                break;
            }
        }
    }
    // `Child::kill` sends SIGKILL on Unix: no destructor, no checkpoint, mid-transaction.
    writer.kill().unwrap();
    writer.wait().unwrap();
    let committed = committed.expect("the writer reported progress");

    let cache = Cache::open(&config(dir.path()));
    assert_eq!(cache.warning(), None);
    let report = cache.verify().unwrap();
    assert!(report.integrity_ok, "{}", report.integrity);
    assert_eq!(report.damaged, 0);
    assert!(
        report.rows as usize > committed,
        "{} rows, {committed} committed",
        report.rows
    );
    for i in 0..report.rows as usize + 100 {
        match cache.get(&item_key("killed", i)) {
            Some(found) => assert_eq!(found, item("killed", i), "entry {i}"),
            None => assert!(i > committed, "committed entry {i} lost"),
        }
    }
    // The store still takes writes after the crash.
    cache.put(&item_key("after", 0), &item("after", 0));
    assert_eq!(cache.get(&item_key("after", 0)), Some(item("after", 0)));
}
