//! SQLite tier of the response cache: one WAL-mode file shared by every codetier process.
//!
//! Every row carries a blake3 checksum of its value, verified on each read, so a damaged
//! row is a miss and never a corrupted answer. Any error that means the store cannot be
//! trusted or written (full disk, damaged file, no permission) turns the disk tier off for
//! the rest of the process with one warning; a busy lock held by another process only
//! skips the one operation.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OptionalExtension};

use super::{CacheError, CacheKey, Entry, VerifyReport};

/// File name inside the cache directory. A future incompatible schema takes a new name.
pub(crate) const FILE_NAME: &str = "cache.sqlite3";

/// How long a write waits for another process's write lock before giving up on that write.
const BUSY_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long opening keeps trying while other processes hold the locks it needs.
const OPEN_PATIENCE: Duration = Duration::from_secs(3);
/// Size cap and expiry are enforced on open and then once per this many writes.
const MAINTAIN_EVERY: u32 = 64;
/// `last_used` is refreshed on a read only when it is older than this, so hits stay reads.
const TOUCH_SECS: u64 = 3600;
/// Eviction brings the store down to this share of `max_disk_bytes`, so it runs in batches.
const EVICT_TO_PERCENT: u64 = 90;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
    key BLOB PRIMARY KEY,
    value BLOB NOT NULL,
    checksum BLOB NOT NULL,
    created INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_last_used ON entries(last_used);
CREATE INDEX IF NOT EXISTS entries_created ON entries(created);
";

pub(crate) struct Disk {
    path: PathBuf,
    /// The opening (directory, connection, schema, first maintenance) runs once, on the first
    /// use or ahead of it on a thread of its own ([`Disk::lazy`]); every use waits for it.
    opened: Once,
    /// The clock at construction, for the maintenance run on open.
    opened_at: u64,
    /// `None` once the store is off (failed to open, or failed for good at runtime).
    conn: Mutex<Option<Connection>>,
    ttl_secs: u64,
    max_bytes: u64,
    writes: AtomicU32,
    checksum_warned: AtomicBool,
    warning: Mutex<Option<String>>,
}

/// What a row read from disk held.
pub(crate) struct Row {
    pub(crate) entry: Entry,
    pub(crate) created: u64,
}

/// Totals over the rows on disk.
pub(crate) struct Totals {
    pub(crate) entries: u64,
    pub(crate) bytes: u64,
    pub(crate) oldest_unix: Option<u64>,
}

impl Disk {
    /// Opens (creating if needed) the store in `dir`. Never fails: on error the store is off
    /// and `warning()` says why.
    #[cfg(test)]
    pub(crate) fn open(dir: &Path, ttl_days: u32, max_bytes: u64, now: u64) -> Disk {
        let disk = Disk::lazy(dir, ttl_days, max_bytes, now);
        disk.ensure_open();
        disk
    }

    /// The store in `dir`, opened on its first use (or by [`Disk::ensure_open`]) rather than
    /// now, so a caller on a latency path can open it off that path.
    pub(crate) fn lazy(dir: &Path, ttl_days: u32, max_bytes: u64, now: u64) -> Disk {
        Disk {
            path: dir.join(FILE_NAME),
            opened: Once::new(),
            opened_at: now,
            conn: Mutex::new(None),
            ttl_secs: u64::from(ttl_days) * 86_400,
            max_bytes,
            writes: AtomicU32::new(0),
            checksum_warned: AtomicBool::new(false),
            warning: Mutex::new(None),
        }
    }

    /// Opens the store unless that happened already; returns once it is open or off.
    pub(crate) fn ensure_open(&self) {
        self.opened.call_once(|| {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            let opened = create_dir(dir)
                .map_err(|e| format!("the directory cannot be created ({e})"))
                .and_then(|()| connect_patiently(&self.path).map_err(|e| reason(&e)));
            match opened {
                Ok(conn) => {
                    let mut guard = lock(&self.conn);
                    let maintained = self.maintain_with(&conn, self.opened_at);
                    *guard = Some(conn);
                    if let Err(e) = maintained {
                        self.fail(&mut guard, &e, "maintain");
                    }
                }
                Err(why) => self.set_warning(format!(
                    "codetier cannot use its disk cache at {}: {why}. Answers are cached in memory \
                     only until codetier restarts.",
                    self.path.display()
                )),
            }
        });
    }

    /// The connection, once the store is open; `None` while it is off.
    fn conn(&self) -> MutexGuard<'_, Option<Connection>> {
        self.ensure_open();
        lock(&self.conn)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn is_active(&self) -> bool {
        self.conn().is_some()
    }

    pub(crate) fn warning(&self) -> Option<String> {
        self.ensure_open();
        lock(&self.warning).clone()
    }

    /// Reads one row. Expired, damaged and unreadable rows are misses and are deleted.
    pub(crate) fn get(&self, key: &CacheKey, now: u64) -> Option<Row> {
        let mut guard = self.conn();
        let conn = guard.as_ref()?;
        let found = conn
            .prepare_cached(
                "SELECT value, checksum, created, last_used FROM entries WHERE key = ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![key.as_bytes()], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .optional()
            });
        let (value, checksum, created, last_used) = match found {
            Ok(Some(row)) => row,
            Ok(None) => return None,
            Err(e) => {
                self.fail(&mut guard, &e, "read");
                return None;
            }
        };
        let created = u64::try_from(created).unwrap_or(0);
        if self.expired(created, now) {
            delete(conn, key);
            return None;
        }
        let entry = (blake3::hash(&value).as_bytes() == checksum.as_slice())
            .then(|| serde_json::from_slice::<Entry>(&value).ok())
            .flatten();
        let Some(entry) = entry else {
            delete(conn, key);
            if !self.checksum_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    path = %self.path.display(),
                    "codetier found a damaged entry in its disk cache and ignored it"
                );
            }
            return None;
        };
        if now.saturating_sub(u64::try_from(last_used).unwrap_or(0)) >= TOUCH_SECS {
            touch(conn, key, now);
        }
        Some(Row { entry, created })
    }

    /// Writes one row; every `MAINTAIN_EVERY` writes also purges expired rows and evicts the
    /// least recently used ones over the size cap.
    pub(crate) fn put(&self, key: &CacheKey, entry: &Entry, now: u64) {
        let value = match serde_json::to_vec(entry) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode a cache entry; not stored on disk");
                return;
            }
        };
        let checksum = blake3::hash(&value);
        let when = clamp_i64(now);
        let size = clamp_i64(value.len() as u64);
        {
            let mut guard = self.conn();
            let Some(conn) = guard.as_ref() else { return };
            let write = || {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO entries (key, value, checksum, created, last_used, size) \
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![key.as_bytes(), value, checksum.as_bytes(), when, size])
                })
            };
            // An answer not stored is paid for again later, so a write that found another
            // process's lock held past the busy timeout gets one more wait before it is skipped.
            let written = match write() {
                Err(e) if is_transient(&e) => write(),
                other => other,
            };
            if let Err(e) = written {
                self.fail(&mut guard, &e, "write");
                return;
            }
        }
        if self.writes.fetch_add(1, Ordering::Relaxed) % MAINTAIN_EVERY == MAINTAIN_EVERY - 1 {
            self.maintain(now);
        }
    }

    /// Deletes every row and returns how many there were. On a store that is off (for
    /// example a damaged file), removes the file and starts a new one.
    pub(crate) fn clear(&self) -> Result<u64, CacheError> {
        let mut guard = self.conn();
        if let Some(conn) = guard.as_ref() {
            let removed = conn
                .execute("DELETE FROM entries", [])
                .map_err(|e| self.error(&e))?;
            // Give the space back now; another process reading at this moment only makes
            // this best effort.
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;");
            return Ok(removed as u64);
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut name = self.path.clone().into_os_string();
            name.push(suffix);
            match std::fs::remove_file(&name) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(CacheError::Clear {
                        path: self.path.clone(),
                        message: e.to_string(),
                    })
                }
            }
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let conn = create_dir(dir)
            .map_err(|e| e.to_string())
            .and_then(|()| connect_patiently(&self.path).map_err(|e| reason(&e)))
            .map_err(|message| CacheError::Clear {
                path: self.path.clone(),
                message,
            })?;
        *guard = Some(conn);
        *lock(&self.warning) = None;
        tracing::info!(path = %self.path.display(), "codetier started a new disk cache");
        Ok(0)
    }

    pub(crate) fn totals(&self) -> Option<Totals> {
        let mut guard = self.conn();
        let conn = guard.as_ref()?;
        let totals = conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(created) FROM entries",
            [],
            |r| {
                Ok(Totals {
                    entries: r.get::<_, i64>(0)?.try_into().unwrap_or(0),
                    bytes: r.get::<_, i64>(1)?.try_into().unwrap_or(0),
                    oldest_unix: r.get::<_, Option<i64>>(2)?.and_then(|t| t.try_into().ok()),
                })
            },
        );
        match totals {
            Ok(t) => Some(t),
            Err(e) => {
                self.fail(&mut guard, &e, "read");
                None
            }
        }
    }

    /// Runs SQLite's integrity check and verifies the checksum of every row.
    pub(crate) fn verify(&self) -> Result<VerifyReport, CacheError> {
        let guard = self.conn();
        let Some(conn) = guard.as_ref() else {
            return Err(CacheError::Inactive {
                path: self.path.clone(),
            });
        };
        let run = || -> rusqlite::Result<VerifyReport> {
            let mut check = conn.prepare("PRAGMA integrity_check")?;
            let messages: Vec<String> = check
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut report = VerifyReport {
                rows: 0,
                damaged: 0,
                integrity_ok: messages == ["ok"],
                integrity: messages.join("; "),
            };
            let mut rows = conn.prepare("SELECT value, checksum FROM entries")?;
            let mut cursor = rows.query([])?;
            while let Some(row) = cursor.next()? {
                let value: Vec<u8> = row.get(0)?;
                let checksum: Vec<u8> = row.get(1)?;
                report.rows += 1;
                let good = blake3::hash(&value).as_bytes() == checksum.as_slice()
                    && serde_json::from_slice::<Entry>(&value).is_ok();
                if !good {
                    report.damaged += 1;
                }
            }
            Ok(report)
        };
        run().map_err(|e| self.error(&e))
    }

    /// Purges expired rows and evicts least recently used rows over the size cap.
    pub(crate) fn maintain(&self, now: u64) {
        let mut guard = self.conn();
        let Some(conn) = guard.as_ref() else { return };
        if let Err(e) = self.maintain_with(conn, now) {
            self.fail(&mut guard, &e, "maintain");
        }
    }

    fn maintain_with(&self, conn: &Connection, now: u64) -> rusqlite::Result<()> {
        if self.ttl_secs > 0 {
            let cutoff = clamp_i64(now.saturating_sub(self.ttl_secs));
            conn.execute("DELETE FROM entries WHERE created < ?1", params![cutoff])?;
        }
        if self.max_bytes == 0 {
            return Ok(());
        }
        let total: i64 = conn.query_row("SELECT COALESCE(SUM(size), 0) FROM entries", [], |r| {
            r.get(0)
        })?;
        let total = u64::try_from(total).unwrap_or(0);
        if total <= self.max_bytes {
            return Ok(());
        }
        let target = (u128::from(self.max_bytes) * u128::from(EVICT_TO_PERCENT) / 100) as u64;
        let mut victims = Vec::new();
        let mut left = total;
        {
            let mut stmt = conn.prepare("SELECT key, size FROM entries ORDER BY last_used ASC")?;
            let mut rows = stmt.query([])?;
            while left > target {
                let Some(row) = rows.next()? else { break };
                victims.push(row.get::<_, Vec<u8>>(0)?);
                left = left.saturating_sub(u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0));
            }
        }
        let tx = conn.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM entries WHERE key = ?1")?;
            for key in &victims {
                stmt.execute(params![key])?;
            }
        }
        tx.commit()?;
        tracing::debug!(evicted = victims.len(), "disk cache over its size cap");
        Ok(())
    }

    fn expired(&self, created: u64, now: u64) -> bool {
        self.ttl_secs > 0 && created < now.saturating_sub(self.ttl_secs)
    }

    /// Handles an SQLite error: busy locks skip the operation, anything else turns the
    /// store off with one warning.
    fn fail(&self, conn: &mut MutexGuard<'_, Option<Connection>>, e: &rusqlite::Error, op: &str) {
        if is_transient(e) {
            tracing::debug!(error = %e, op, "disk cache busy; skipped");
            return;
        }
        if conn.take().is_some() {
            self.set_warning(format!(
                "codetier stopped using its disk cache at {}: {}. Answers are cached in memory \
                 only until codetier restarts.",
                self.path.display(),
                reason(e)
            ));
        }
    }

    fn set_warning(&self, message: String) {
        tracing::warn!("{message}");
        *lock(&self.warning) = Some(message);
    }

    fn error(&self, e: &rusqlite::Error) -> CacheError {
        CacheError::Store {
            path: self.path.clone(),
            message: reason(e),
        }
    }

    /// Test hook: caps the file at `pages` pages so writes fail with SQLITE_FULL, the error
    /// a full disk gives.
    #[cfg(test)]
    pub(crate) fn limit_pages(&self, pages: u32) {
        if let Some(conn) = self.conn().as_ref() {
            let _ = conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()));
        }
    }

    /// Test hook: runs a statement on the open connection.
    #[cfg(test)]
    pub(crate) fn execute(&self, sql: &str) {
        if let Some(conn) = self.conn().as_ref() {
            let _ = conn.execute_batch(sql);
        }
    }
}

/// [`connect`], tried again while another connection holds a lock it needs. Processes
/// starting together (a multi-root workspace, parallel CI jobs) open the same new file at
/// once, and SQLite reports some of those conflicts (switching to WAL, the first schema)
/// without waiting in its busy handler.
fn connect_patiently(path: &Path) -> rusqlite::Result<Connection> {
    let deadline = std::time::Instant::now() + OPEN_PATIENCE;
    let mut pause = Duration::from_millis(2);
    loop {
        match connect(path) {
            Err(e) if is_transient(&e) && std::time::Instant::now() + pause < deadline => {
                tracing::debug!(error = %e, "disk cache busy while opening; trying again");
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::debug!(mode, "disk cache could not switch to WAL mode");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(SCHEMA)?;
    // Read a row now so that a damaged file shows up at open rather than on the first hit.
    conn.query_row(
        "SELECT COUNT(*) FROM (SELECT 1 FROM entries LIMIT 1)",
        [],
        |_| Ok(()),
    )?;
    Ok(conn)
}

/// Creates the directory, private to the user on Unix: cached answers quote their code.
fn create_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn delete(conn: &Connection, key: &CacheKey) {
    let result = conn
        .prepare_cached("DELETE FROM entries WHERE key = ?1")
        .and_then(|mut stmt| stmt.execute(params![key.as_bytes()]));
    if let Err(e) = result {
        tracing::debug!(error = %e, "could not delete a stale cache row");
    }
}

/// Refreshes `last_used` without waiting for another process's lock: a hit must stay fast,
/// and a missed refresh only makes eviction slightly less precise.
fn touch(conn: &Connection, key: &CacheKey, now: u64) {
    let _ = conn.busy_timeout(Duration::ZERO);
    let result = conn
        .prepare_cached("UPDATE entries SET last_used = ?2 WHERE key = ?1")
        .and_then(|mut stmt| stmt.execute(params![key.as_bytes(), clamp_i64(now)]));
    if let Err(e) = result {
        tracing::debug!(error = %e, "could not refresh a cache row");
    }
    let _ = conn.busy_timeout(BUSY_TIMEOUT);
}

fn is_transient(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Says in words a user understands why the store cannot be used.
fn reason(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => "the disk is full".into(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            "the cache file is damaged (run `codetier cache clear` to start a new one)".into()
        }
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            "codetier has no permission to write there".into()
        }
        Some(ErrorCode::CannotOpen) => format!("the cache file cannot be opened ({e})"),
        _ => e.to_string(),
    }
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
