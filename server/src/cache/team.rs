//! The third cache layer: entries in the team's Redis, and one upstream call per key across processes.
//!
//! Entries are stored as JSON sealed with a checksum (`team::seal`), with the disk tier's TTL.
//! They hold the answer and its accounting, never a key or the prompt (the Redis key is the
//! prompt's hash). A damaged or foreign value is a miss.
//!
//! Single flight across processes: the process that misses takes a short lock in Redis
//! ([`LOCK_TTL`]), looks in Redis once more (the answer may have landed between its miss and
//! its lock), and computes, extending the lock while it does; the others poll for the answer
//! while the lock stands. When the lock goes without an answer (the holder failed, or died and
//! its lock expired) or the wait passes [`MAX_WAIT`], they ask themselves. With Redis
//! unavailable, each process computes on its own.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::team::{Bound, Lock, Team};

use super::flight::Marks;
use super::{CacheKey, Entry};

/// How long a computation lock stands unless its holder extends it (every third of it, while
/// it computes): a holder killed mid-call stops blocking the others after at most this long.
pub(crate) const LOCK_TTL: Duration = Duration::from_secs(15);
/// The longest a process waits for another's answer: the largest deadline a tier may have
/// (`budget_ms` is at most 600 s), and a little more.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(610);
/// How often a waiter looks for the answer.
const POLL: Duration = Duration::from_millis(20);

/// The entry another process stored under `key`, checked; `None` on a miss or a fault.
pub(crate) async fn read(team: &Team, key: &CacheKey, bound: Bound) -> Option<Entry> {
    let raw = team.get(&key.to_hex(), bound).await?;
    match serde_json::from_slice::<Entry>(&raw) {
        Ok(entry) => Some(entry),
        Err(e) => {
            tracing::warn!("a team cache entry that does not decode was ignored: {e}");
            None
        }
    }
}

/// Stores `entry` under `key` for `ttl_secs`.
pub(crate) async fn write(team: &Team, key: &CacheKey, entry: &Entry, ttl_secs: u64) {
    if let Ok(value) = serde_json::to_vec(entry) {
        team.put(&key.to_hex(), &value, ttl_secs).await;
    }
}

/// Runs `compute` unless another process already is, in which case its answer is awaited.
/// An answer that came from another process sets `marks.mark_team()`. An answer computed here
/// is written to Redis before the lock goes, so the waiters find it.
///
/// With `recheck` (not a `fresh` request), Redis is read again once the lock is ours: another
/// process may have stored the answer and let its lock go between our miss and our lock.
pub(crate) async fn compute_once<E, F>(
    team: &Team,
    key: CacheKey,
    ttl_secs: u64,
    recheck: bool,
    marks: &Arc<Marks>,
    compute: F,
) -> Result<Entry, E>
where
    F: Future<Output = Result<Entry, E>>,
{
    let hex = key.to_hex();
    match team.lock(&hex, LOCK_TTL).await {
        Lock::Acquired(token) => {
            // Cancelled (every waiter here gone), the lock goes at once, in the background:
            // the other processes need not wait out its expiry.
            let held = Held {
                team: team.clone(),
                hex: hex.clone(),
                token: Some(token),
            };
            if recheck {
                if let Some(entry) = read(team, &key, Bound::Action).await {
                    held.release().await;
                    marks.mark_team();
                    return Ok(entry);
                }
            }
            let token = held.token.clone().unwrap_or_default();
            let result = tokio::select! {
                result = compute => result,
                never = keep_locked(team, &hex, &token) => match never {},
            };
            if let Ok(entry) = &result {
                write(team, &key, entry, ttl_secs).await;
            }
            held.release().await;
            result
        }
        Lock::Unavailable => compute.await,
        Lock::Held => {
            if let Some(entry) = wait_for(team, &key).await {
                marks.mark_team();
                return Ok(entry);
            }
            compute.await
        }
    }
}

/// Extends the lock every third of [`LOCK_TTL`] for as long as it is polled; stops extending
/// (and waits forever) once the lock is lost or Redis is away.
async fn keep_locked(team: &Team, hex: &str, token: &str) -> std::convert::Infallible {
    loop {
        tokio::time::sleep(LOCK_TTL / 3).await;
        if !team.extend(hex, token, LOCK_TTL).await {
            return std::future::pending().await;
        }
    }
}

/// The lock this process holds; dropped unreleased (a cancelled computation), it is released
/// in the background.
struct Held {
    team: Team,
    hex: String,
    token: Option<String>,
}

impl Held {
    async fn release(mut self) {
        if let Some(token) = self.token.take() {
            self.team.unlock(&self.hex, &token).await;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            self.team.unlock_in_background(&self.hex, token);
        }
    }
}

/// Polls for the answer of the process holding `key`'s lock: the entry once it is there,
/// `None` when the lock went without one, Redis stopped answering, or [`LOCK_TTL`] passed.
async fn wait_for(team: &Team, key: &CacheKey) -> Option<Entry> {
    let hex = key.to_hex();
    let deadline = tokio::time::Instant::now() + MAX_WAIT;
    loop {
        if let Some(entry) = read(team, key, Bound::Call).await {
            return Some(entry);
        }
        match team.locked(&hex, Bound::Call).await {
            Some(true) => {}
            // The lock went: the answer may have landed just before it.
            Some(false) => return read(team, key, Bound::Call).await,
            None => return None,
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::debug!(key = %hex, "another process's answer did not come in time; asking ourselves");
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}
