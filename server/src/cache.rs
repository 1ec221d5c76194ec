//! Response cache: a memory LRU in front of a crash-safe SQLite store, plus in-flight sharing.
//!
//! Lookups go memory, then disk. The disk store is one SQLite file in WAL mode that several
//! codetier processes (one per editor window, plus the CLI) read and write at once. Any
//! disk fault turns the disk tier off with one warning and the cache keeps working from
//! memory; a damaged row is a miss, never a corrupted answer.
//!
//! With a team tier (`team.rs`), lookups go on to the team's Redis after the disk, writes go to
//! all three, and identical requests in different processes share one upstream call.
//!
//! Identical requests running at the same time share one computation (`Cache::share`):
//! the computation runs inside a `futures::future::Shared` that every waiter polls, so it
//! lives as long as one waiter does, and dropping the last waiter drops it, which cancels
//! the upstream request.

mod disk;
mod flight;
mod memory;
mod team;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::CacheConfig;
use crate::provider::Answer;
use crate::team::Team;

use disk::Disk;
use flight::Flights;
use memory::Memory;

/// Identity of one request: blake3 over action, model, prompt-template version and prompt.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CacheKey({})", self.to_hex())
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The cache key of one request.
///
/// Each field is hashed with its length in front, so no two different field tuples give the
/// same byte stream ("ab" + "c" differs from "a" + "bc"). The hasher runs in blake3's key
/// derivation mode with a context string of its own, so these keys never collide with any
/// other blake3 use of the same bytes.
pub fn key(action: &str, model: &str, template_version: u32, prompt: &str) -> CacheKey {
    let mut h = blake3::Hasher::new_derive_key("codetier response cache key v1");
    for field in [action, model] {
        h.update(&(field.len() as u64).to_le_bytes());
        h.update(field.as_bytes());
    }
    h.update(&template_version.to_le_bytes());
    h.update(&(prompt.len() as u64).to_le_bytes());
    h.update(prompt.as_bytes());
    CacheKey(*h.finalize().as_bytes())
}

/// One complete, successful answer as stored in the cache.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Stored flat (`text`, `reasoning`, `tier`, `model`, `usage`, `cost_usd`), as entries were
    /// before the answer had a type of its own, so that older caches still read.
    #[serde(flatten)]
    pub answer: Answer,
    pub created_unix: u64,
}

impl Entry {
    /// `answer`, stored now.
    pub fn new(answer: Answer) -> Entry {
        Entry {
            answer,
            created_unix: unix_now(),
        }
    }
}

/// An answer `Cache::share_served` gave, and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Served {
    pub entry: Entry,
    /// From a cache, or from a computation another caller paid for.
    pub cached: bool,
    /// From the team's Redis (another process paid for it).
    pub team: bool,
}

/// The outcome of a read.
#[derive(Clone, Debug, PartialEq)]
pub enum Lookup {
    Hit(Entry),
    Miss,
}

/// What `codetier cache stats` shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CacheStats {
    /// Entries on disk when the disk store is active, else in memory.
    pub entries: u64,
    /// Bytes of the stored answers (not the file size) on disk, else in memory.
    pub bytes: u64,
    /// Lookups answered by this process since it started.
    pub hits: u64,
    /// Of `hits`, those answered by the team's Redis.
    #[serde(skip_serializing_if = "is_zero")]
    pub team_hits: u64,
    pub misses: u64,
    pub oldest_unix: Option<u64>,
    /// The SQLite file, when a cache directory is known.
    pub path: Option<PathBuf>,
    pub disk_active: bool,
    pub memory_entries: u64,
    pub memory_bytes: u64,
}

impl CacheStats {
    /// Share of lookups that hit, `None` before the first lookup.
    pub fn hit_rate(&self) -> Option<f64> {
        let total = self.hits + self.misses;
        (total > 0).then(|| self.hits as f64 / total as f64)
    }
}

/// The result of `Cache::verify`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VerifyReport {
    pub rows: u64,
    /// Rows whose checksum or encoding does not match.
    pub damaged: u64,
    pub integrity_ok: bool,
    /// SQLite's own integrity check output ("ok" when sound).
    pub integrity: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("the disk cache at {} failed: {message}", path.display())]
    Store { path: PathBuf, message: String },
    #[error("cannot clear the disk cache at {}: {message}", path.display())]
    Clear { path: PathBuf, message: String },
    #[error("the disk cache at {} is not in use", path.display())]
    Inactive { path: PathBuf },
    #[error("there is no disk cache: it is turned off or no cache directory is known")]
    NoDisk,
}

/// The response cache. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` when the cache is turned off in the configuration.
    memory: Option<Mutex<Memory>>,
    disk: Option<Disk>,
    ttl_secs: u64,
    /// Why there is no disk store at all (no cache directory known).
    warning: Option<String>,
    last_taken_warning: Mutex<Option<String>>,
    hits: AtomicU64,
    team_hits: AtomicU64,
    misses: AtomicU64,
    flights: Flights,
    /// The team tier, when there is one and it shares the cache.
    team: RwLock<Option<Team>>,
    /// Test clock: seconds since the epoch, or 0 for the system clock.
    fixed_now: AtomicU64,
}

impl Cache {
    /// Opens the cache described by `cfg`. Never fails: without a usable disk store it runs
    /// from memory and `warning()` says why (the reason is also logged once).
    pub fn open(cfg: &CacheConfig) -> Cache {
        Cache::with_disk(cfg, false)
    }

    /// Like [`Cache::open`], but returns at once: the disk store opens on a thread of its
    /// own once [`Cache::open_in_background`] is called, or else on its first use; whatever
    /// needs it first waits for it. Memory hits never wait.
    pub fn open_lazily(cfg: &CacheConfig) -> Cache {
        Cache::with_disk(cfg, true)
    }

    fn with_disk(cfg: &CacheConfig, lazily: bool) -> Cache {
        if !cfg.enabled {
            return Cache::build(cfg, None, None);
        }
        match cache_dir(cfg) {
            Some(dir) => {
                let disk = Disk::lazy(&dir, cfg.ttl_days, cfg.max_disk_bytes, unix_now());
                let cache = Cache::build(cfg, Some(disk), None);
                if !lazily {
                    cache.wait_open();
                }
                cache
            }
            None => {
                let message = "codetier cannot find a directory for its disk cache (neither \
                               XDG_CACHE_HOME nor HOME is set, and cache.dir is not configured). \
                               Answers are cached in memory only until codetier restarts."
                    .to_string();
                tracing::warn!("{message}");
                Cache::build(cfg, None, Some(message))
            }
        }
    }

    /// Opens the disk store on a thread of its own (at once when it is open already). The
    /// thread holds no strong reference: a cache dropped meanwhile closes its store as soon
    /// as the opening is done.
    pub fn open_in_background(&self) {
        let opening = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("codetier-cache-open".into())
            .spawn(move || {
                if let Some(disk) = opening.upgrade().as_ref().and_then(|i| i.disk.as_ref()) {
                    disk.ensure_open();
                }
            });
        if spawned.is_err() {
            // No thread to spare: the first use opens it.
            tracing::debug!("the disk cache opens on its first use");
        }
    }

    /// Returns once the disk store is open (or known to be unusable); at once without one.
    pub fn wait_open(&self) {
        if let Some(disk) = &self.inner.disk {
            disk.ensure_open();
        }
    }

    /// A cache that never touches the disk.
    pub fn memory_only(cfg: &CacheConfig) -> Cache {
        Cache::build(cfg, None, None)
    }

    fn build(cfg: &CacheConfig, disk: Option<Disk>, warning: Option<String>) -> Cache {
        let memory = cfg
            .enabled
            .then(|| Mutex::new(Memory::new(cfg.memory_entries, cfg.memory_bytes)));
        Cache {
            inner: Arc::new(Inner {
                memory,
                disk,
                ttl_secs: u64::from(cfg.ttl_days) * 86_400,
                warning,
                last_taken_warning: Mutex::new(None),
                hits: AtomicU64::new(0),
                team_hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                flights: Flights::default(),
                team: RwLock::new(None),
                fixed_now: AtomicU64::new(0),
            }),
        }
    }

    /// Puts the team tier behind the local ones (`None` takes it away). A team that does not
    /// share the cache (`team.share_cache = false`) is not used.
    pub fn set_team(&self, team: Option<Team>) {
        let team = team.filter(Team::share_cache);
        *self.inner.team.write().unwrap_or_else(|e| e.into_inner()) = team;
    }

    fn team(&self) -> Option<Team> {
        self.inner
            .team
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Why the disk store (or the team tier) is not in use, as a sentence for the user;
    /// `None` while it works.
    pub fn warning(&self) -> Option<String> {
        self.inner
            .warning
            .clone()
            .or_else(|| self.inner.disk.as_ref()?.warning())
            .or_else(|| self.team()?.warning())
    }

    /// Like `warning()`, but returns each distinct warning only once, for showing it to the
    /// user exactly once.
    pub fn take_warning(&self) -> Option<String> {
        let current = self.warning()?;
        let mut last = lock(&self.inner.last_taken_warning);
        if last.as_deref() == Some(current.as_str()) {
            return None;
        }
        *last = Some(current.clone());
        Some(current)
    }

    /// Reads an entry: memory first, then disk (a disk hit is promoted to memory).
    pub fn get(&self, key: &CacheKey) -> Option<Entry> {
        let found = self.inner.read(key);
        self.inner.count(found.is_some());
        found
    }

    /// `get` as a `Lookup`.
    pub fn lookup(&self, key: &CacheKey) -> Lookup {
        self.get(key).map_or(Lookup::Miss, Lookup::Hit)
    }

    /// Stores an entry in memory and on disk. Callers store only complete, successful answers.
    pub fn put(&self, key: &CacheKey, entry: &Entry) {
        let now = self.inner.now();
        self.inner.put_memory(key, entry, now);
        if let Some(disk) = &self.inner.disk {
            disk.put(key, entry, now);
        }
    }

    /// Answers from the cache or runs `compute`, sharing one run among identical concurrent
    /// requests.
    ///
    /// Returns the entry and `cached`: `true` when it came from the cache or from a
    /// computation another caller had already paid for, `false` for exactly one caller per
    /// computation (the first to receive the result), so spend is counted once.
    ///
    /// - `fresh` skips the read but still joins a computation in flight (its answer is as
    ///   fresh), and the new answer replaces the stored one.
    /// - Only `Ok` answers are stored; an error goes to every waiter and is never cached.
    /// - Dropping a waiter never cancels the computation while another waiter remains;
    ///   dropping the last one drops `compute`, which cancels its upstream request.
    ///
    /// Memory reads run inline. Disk reads and writes run on `spawn_blocking`, because a
    /// write lock held by another process can make them wait up to a second.
    pub async fn share<E, F>(
        &self,
        key: CacheKey,
        fresh: bool,
        compute: F,
    ) -> Result<(Entry, bool), E>
    where
        E: Clone + Send + Sync + 'static,
        F: Future<Output = Result<Entry, E>> + Send + 'static,
    {
        self.share_served(key, fresh, compute)
            .await
            .map(|s| (s.entry, s.cached))
    }

    /// [`Cache::share`], saying also whether the answer came from the team tier.
    ///
    /// With a team tier, a local miss looks in Redis next (a hit there is stored locally too),
    /// and a computation first takes the key's lock in Redis, so identical requests in other
    /// processes wait for this one's answer instead of asking upstream themselves.
    pub async fn share_served<E, F>(
        &self,
        key: CacheKey,
        fresh: bool,
        compute: F,
    ) -> Result<Served, E>
    where
        E: Clone + Send + Sync + 'static,
        F: Future<Output = Result<Entry, E>> + Send + 'static,
    {
        let served = |entry, team| Served {
            entry,
            cached: true,
            team,
        };
        let team = self.team();
        if !fresh {
            if let Some(entry) = self.inner.read_memory(&key) {
                self.inner.count(true);
                return Ok(served(entry, false));
            }
            if let Some(entry) = Inner::read_disk_async(&self.inner, key).await {
                self.inner.count(true);
                return Ok(served(entry, false));
            }
            if let Some(team) = &team {
                if let Some(entry) = team::read(team, &key, crate::team::Bound::Action).await {
                    self.inner.count(true);
                    self.inner.team_hits.fetch_add(1, Ordering::Relaxed);
                    Inner::store_local_async(&self.inner, key, entry.clone()).await;
                    return Ok(served(entry, true));
                }
            }
            self.inner.count(false);
        }
        let inner = Arc::clone(&self.inner);
        let recheck = !fresh;
        let joined = self.inner.flights.join_or_start(
            key,
            // Under the flights lock a finished flight has already stored its answer, so a
            // second look at memory closes the gap between our miss and joining.
            || recheck.then(|| inner.read_memory(&key)).flatten(),
            |_, marks| {
                let inner = Arc::clone(&self.inner);
                async move {
                    let result = match &team {
                        Some(team) => {
                            team::compute_once(team, key, inner.ttl_secs, recheck, &marks, compute)
                                .await
                        }
                        None => compute.await,
                    };
                    if let Ok(entry) = &result {
                        // The team's copy is written by `compute_once` (before its lock goes).
                        Inner::store_local_async(&inner, key, entry.clone()).await;
                    }
                    result
                }
            },
        );
        match joined {
            flight::Joined::Hit(entry) => Ok(served(entry, false)),
            flight::Joined::Wait(waiter) => {
                let (entry, cached, team) = waiter.wait().await?;
                if team && !fresh {
                    // Counted as a miss above; another process's answer made it a team hit.
                    self.inner.misses.fetch_sub(1, Ordering::Relaxed);
                    self.inner.count(true);
                    self.inner.team_hits.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Served {
                    entry,
                    cached,
                    team,
                })
            }
        }
    }

    /// Entry and byte counts, hits and misses since start, and where the store lives.
    pub fn stats(&self) -> CacheStats {
        let (memory_entries, memory_bytes, memory_oldest) = match &self.inner.memory {
            Some(m) => {
                let m = lock(m);
                (m.len() as u64, m.bytes() as u64, m.oldest_unix())
            }
            None => (0, 0, None),
        };
        let disk = self.inner.disk.as_ref();
        let totals = disk.and_then(Disk::totals);
        let disk_active = disk.is_some_and(Disk::is_active);
        let (entries, bytes, oldest_unix) = match totals {
            Some(t) => (t.entries, t.bytes, t.oldest_unix),
            None => (memory_entries, memory_bytes, memory_oldest),
        };
        CacheStats {
            entries,
            bytes,
            hits: self.inner.hits.load(Ordering::Relaxed),
            team_hits: self.inner.team_hits.load(Ordering::Relaxed),
            misses: self.inner.misses.load(Ordering::Relaxed),
            oldest_unix,
            path: disk.map(|d| d.path().to_path_buf()),
            disk_active,
            memory_entries,
            memory_bytes,
        }
    }

    /// Empties memory and disk; returns how many entries were removed (on disk when there is
    /// a disk store). A damaged disk file is removed and a new one started.
    pub fn clear(&self) -> Result<u64, CacheError> {
        let in_memory = self.inner.memory.as_ref().map_or(0, |m| lock(m).clear());
        match &self.inner.disk {
            Some(disk) => disk.clear(),
            None => Ok(in_memory),
        }
    }

    /// Checks the disk store: SQLite's integrity check plus every row's checksum.
    pub fn verify(&self) -> Result<VerifyReport, CacheError> {
        self.inner.disk.as_ref().ok_or(CacheError::NoDisk)?.verify()
    }

    /// Test hook: pins the clock used for expiry.
    #[cfg(test)]
    fn set_now(&self, unix: u64) {
        self.inner.fixed_now.store(unix, Ordering::Relaxed);
    }
}

impl Inner {
    fn now(&self) -> u64 {
        match self.fixed_now.load(Ordering::Relaxed) {
            0 => unix_now(),
            fixed => fixed,
        }
    }

    /// Entries stored before this second are expired.
    fn expired_before(&self, now: u64) -> u64 {
        if self.ttl_secs == 0 {
            0
        } else {
            now.saturating_sub(self.ttl_secs)
        }
    }

    fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn read(&self, key: &CacheKey) -> Option<Entry> {
        self.read_memory(key).or_else(|| self.read_disk(key))
    }

    fn read_memory(&self, key: &CacheKey) -> Option<Entry> {
        let now = self.now();
        lock(self.memory.as_ref()?).get(key, self.expired_before(now))
    }

    fn read_disk(&self, key: &CacheKey) -> Option<Entry> {
        let row = self.disk.as_ref()?.get(key, self.now())?;
        // Promote with the row's own creation time so memory expires it with the disk row.
        if let Some(m) = &self.memory {
            lock(m).put(*key, row.entry.clone(), row.created);
        }
        Some(row.entry)
    }

    async fn read_disk_async(this: &Arc<Inner>, key: CacheKey) -> Option<Entry> {
        if !this.disk.as_ref().is_some_and(Disk::is_active) {
            return None;
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return this.read_disk(&key);
        }
        let inner = Arc::clone(this);
        tokio::task::spawn_blocking(move || inner.read_disk(&key))
            .await
            .ok()
            .flatten()
    }

    fn put_memory(&self, key: &CacheKey, entry: &Entry, now: u64) {
        if let Some(m) = &self.memory {
            lock(m).put(*key, entry.clone(), now);
        }
    }

    async fn store_local_async(this: &Arc<Inner>, key: CacheKey, entry: Entry) {
        let now = this.now();
        this.put_memory(&key, &entry, now);
        if !this.disk.as_ref().is_some_and(Disk::is_active) {
            return;
        }
        let inner = Arc::clone(this);
        let write = move || {
            if let Some(disk) = &inner.disk {
                disk.put(&key, &entry, now);
            }
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Awaited so a CLI run that exits right after its answer has written it; if every
            // waiter is dropped meanwhile the write still completes on its own thread.
            let _ = tokio::task::spawn_blocking(write).await;
        } else {
            write();
        }
    }
}

/// `cfg.dir`, else `$XDG_CACHE_HOME/codetier`, else `~/.cache/codetier`.
fn cache_dir(cfg: &CacheConfig) -> Option<PathBuf> {
    cfg.dir.clone().or_else(crate::paths::cache_dir)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
