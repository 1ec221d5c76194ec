//! Team tier: one Redis shared by a team's processes, behind tight timeouts, for cache entries, locks, the day's spend, token buckets and cooldowns.
//!
//! One action's calls to Redis together run under `team.timeout_ms` (50 ms by default; see
//! [`scoped`]): what is left of it bounds each call. The first call that fails or runs out of
//! time turns the team tier off for [`RETRY_AFTER`]: calls in that window return at once as
//! "unavailable", so an action waits on a Redis that is down or slow at most once per window,
//! and goes on with its local tiers. Background bookings and the polls of a process waiting for
//! another's answer have the same bound per call, outside any action's. The user is told once
//! per process (`warning`); the cause is logged without the URL or its password.
//!
//! Nothing here knows what a cache entry is: values are opaque bytes, sealed with a checksum
//! (`codec.rs`). Keys are the caller's hashes under `team.key_prefix`.

mod codec;
mod scripts;
mod spend;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

use crate::config::TeamConfig;

pub use codec::{open, seal};
pub use spend::{day_of, reset_in_words, seconds_to_midnight, DayStats, TierDay};

/// The default of `team.timeout_ms`: how long one action may wait on Redis, all its calls
/// (connecting included) together, before it goes on without it.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(50);

tokio::task_local! {
    /// Time the current action has spent waiting on Redis.
    static SPENT: std::cell::Cell<Duration>;
}

/// Runs `action` with its own Redis time budget (`team.timeout_ms`, all its calls together).
/// Outside a scope each call has the whole bound to itself.
pub async fn scoped<F: std::future::Future>(action: F) -> F::Output {
    SPENT
        .scope(std::cell::Cell::new(Duration::ZERO), action)
        .await
}

/// Which bound a call is under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// What is left of the action's budget (see [`scoped`]).
    Action,
    /// The whole bound for this call alone: background bookings, and the polls of a process
    /// that waits for another's answer (that wait is bounded by the lock, not by Redis).
    Call,
}
/// After a failed call, how long the team tier stays off before Redis is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(3);
/// Bound on one call of an explicit command (`codetier team stats`, `doctor`), which may wait
/// longer than an editor action.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// What the user is told, once, when Redis stops answering. Fixed words: the cause goes to the
/// log, so the same outage is never shown twice in different words.
pub const UNAVAILABLE: &str = "codetier's team tier (Redis) is not answering: answers, spend and \
                               rate limits are kept on this machine only until it is back \
                               (the log says why)";

/// A lock on one computation, taken by the first process to miss.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lock {
    /// This process holds it under `token`; release it with [`Team::unlock`].
    Acquired(String),
    /// Another process computes the answer.
    Held,
    /// Redis did not answer: compute without a lock.
    Unavailable,
}

/// Why the team tier is not there, for `doctor` and `team stats`; never holds the URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TeamError {
    #[error("no team tier: `team.redis_url_env` is not set in your user configuration")]
    NotConfigured,
    #[error(
        "no team tier: the environment variable {0} (named by `team.redis_url_env`) is not set"
    )]
    NoUrl(String),
    #[error("the URL in {var} is not usable: {why}")]
    BadUrl { var: String, why: String },
    #[error("the team's Redis did not answer: {0}")]
    Unreachable(String),
}

/// A handle on the team's Redis. Cheap to clone; clones share the connection and the state.
#[derive(Clone)]
pub struct Team {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    /// Said in place of the URL wherever one would appear: "$CODETIER_REDIS_URL".
    var: String,
    /// Strings that must never reach a log line: the URL and its password.
    secrets: Vec<String>,
    prefix: String,
    share_cache: bool,
    daily_budget_usd: Option<f64>,
    timeout: Duration,
    conn: Mutex<Option<MultiplexedConnection>>,
    down_until: Mutex<Option<Instant>>,
    /// Set on the first outage; `take_warning` reads it once.
    down_once: AtomicBool,
    /// Set once the user was told.
    told: AtomicBool,
    /// Background writes not yet finished (`flush` waits for them).
    pending: AtomicUsize,
    settled: tokio::sync::Notify,
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Team")
            .field("url", &format_args!("${}", self.inner.var))
            .field("prefix", &self.inner.prefix)
            .finish()
    }
}

impl Team {
    /// The team tier `cfg` describes, reading the URL from the environment; `Ok(None)` when
    /// `team.redis_url_env` is unset.
    pub fn from_config(cfg: &TeamConfig) -> Result<Option<Team>, TeamError> {
        let Some(var) = cfg.redis_url_env.as_deref() else {
            return Ok(None);
        };
        match std::env::var(var) {
            Ok(url) if !url.trim().is_empty() => Team::connect(var, url.trim(), cfg).map(Some),
            _ => Err(TeamError::NoUrl(var.to_owned())),
        }
    }

    /// Like [`Team::from_config`] for a server or CLI run: a missing or bad URL is logged (never
    /// the URL itself) and there is no team tier.
    pub fn from_config_logged(cfg: &TeamConfig) -> Option<Team> {
        match Team::from_config(cfg) {
            Ok(team) => team,
            Err(e) => {
                tracing::warn!("{e}; working without it");
                None
            }
        }
    }

    fn connect(var: &str, url: &str, cfg: &TeamConfig) -> Result<Team, TeamError> {
        let bad = |why: &str| TeamError::BadUrl {
            var: var.to_owned(),
            why: why.to_owned(),
        };
        let scheme = url.split("://").next().unwrap_or_default();
        if !matches!(scheme, "redis" | "rediss" | "unix" | "redis+unix") {
            return Err(bad(
                "expected redis://, rediss:// or unix:// (a socket path)",
            ));
        }
        let client = redis::Client::open(url).map_err(|e| bad(e.category()))?;
        let mut secrets = vec![url.to_owned()];
        if let Some(password) = client.get_connection_info().redis_settings().password() {
            if !password.is_empty() {
                secrets.push(password.to_owned());
            }
        }
        Ok(Team {
            inner: Arc::new(Inner {
                client,
                var: var.to_owned(),
                secrets,
                prefix: cfg.key_prefix.clone(),
                share_cache: cfg.share_cache,
                daily_budget_usd: cfg.daily_budget_usd,
                timeout: Duration::from_millis(cfg.timeout_ms.max(1)),
                conn: Mutex::new(None),
                down_until: Mutex::new(None),
                down_once: AtomicBool::new(false),
                told: AtomicBool::new(false),
                pending: AtomicUsize::new(0),
                settled: tokio::sync::Notify::new(),
            }),
        })
    }

    /// The environment variable the URL came from, for messages.
    pub fn url_var(&self) -> &str {
        &self.inner.var
    }

    pub fn share_cache(&self) -> bool {
        self.inner.share_cache
    }

    pub fn daily_budget_usd(&self) -> Option<f64> {
        self.inner.daily_budget_usd
    }

    /// Whether Redis is believed to answer now (no outage in the last [`RETRY_AFTER`]).
    pub fn is_up(&self) -> bool {
        lock(&self.inner.down_until).is_none_or(|until| Instant::now() >= until)
    }

    /// [`UNAVAILABLE`] once per process, after the first outage; `None` ever after.
    pub fn take_warning(&self) -> Option<String> {
        let down = self.inner.down_once.load(Ordering::Acquire);
        (down && !self.inner.told.swap(true, Ordering::AcqRel)).then(|| UNAVAILABLE.to_owned())
    }

    /// The current outage in words, while there is one.
    pub fn warning(&self) -> Option<String> {
        (!self.is_up()).then(|| UNAVAILABLE.to_owned())
    }

    /// `{prefix}:{kind}:{rest}`.
    fn key(&self, kind: &str, rest: &str) -> String {
        format!("{}:{kind}:{rest}", self.inner.prefix)
    }

    /// Runs `f` on the connection under `bound`; `None` when Redis is off for now, does not
    /// answer in time or fails (which turns it off for [`RETRY_AFTER`]).
    async fn call<T, F, Fut>(&self, bound: Bound, f: F) -> Option<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_up() {
            return None;
        }
        let spent = match bound {
            Bound::Action => SPENT
                .try_with(std::cell::Cell::get)
                .unwrap_or(Duration::ZERO),
            Bound::Call => Duration::ZERO,
        };
        let limit = self.inner.timeout.saturating_sub(spent);
        if limit.is_zero() {
            self.went_down(&format!(
                "this action's calls took its whole {} ms",
                self.inner.timeout.as_millis()
            ));
            return None;
        }
        let started = Instant::now();
        let work = async {
            let conn = self.connection(limit).await?;
            f(conn).await
        };
        let outcome = tokio::time::timeout(limit, work).await;
        if bound == Bound::Action {
            let _ = SPENT.try_with(|c| c.set(c.get() + started.elapsed()));
        }
        match outcome {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                self.went_down(&e.to_string());
                None
            }
            Err(_) => {
                self.went_down(&format!("no answer within {} ms", limit.as_millis()));
                None
            }
        }
    }

    /// Connects in the background, so the first action does not wait for the handshake. A
    /// failure here turns nothing off (the first action finds out); [`Team::flush`] does not
    /// wait for it.
    pub fn warm_up(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let team = self.clone();
        handle.spawn(async move {
            if team.is_up() {
                let _ =
                    tokio::time::timeout(COMMAND_TIMEOUT, team.connection(COMMAND_TIMEOUT)).await;
            }
        });
    }

    async fn connection(&self, timeout: Duration) -> redis::RedisResult<MultiplexedConnection> {
        if let Some(conn) = lock(&self.inner.conn).clone() {
            return Ok(conn);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let conn = self
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *lock(&self.inner.conn) = Some(conn.clone());
        Ok(conn)
    }

    fn went_down(&self, cause: &str) {
        // A connection that failed is not reused: the next try after the pause reconnects.
        *lock(&self.inner.conn) = None;
        *lock(&self.inner.down_until) = Some(Instant::now() + RETRY_AFTER);
        let first = !self.inner.down_once.swap(true, Ordering::AcqRel);
        let cause = self.scrub(cause);
        if first {
            tracing::warn!(
                "the team's Redis (${}) failed: {cause}; working on local tiers, retrying in {} s",
                self.inner.var,
                RETRY_AFTER.as_secs()
            );
        } else {
            tracing::debug!(
                "the team's Redis (${}) failed again: {cause}",
                self.inner.var
            );
        }
    }

    /// `text` with the URL and the password masked.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.inner.secrets {
            out = out.replace(secret.as_str(), crate::logging::MASK);
        }
        out
    }

    /// Runs `f` in the background (bookings that must not delay an answer); [`Team::flush`]
    /// waits for them. Without a runtime it does nothing.
    fn spawn<F>(&self, f: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = Arc::clone(&self.inner);
        inner.pending.fetch_add(1, Ordering::AcqRel);
        handle.spawn(async move {
            f.await;
            if inner.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                inner.settled.notify_waiters();
            }
        });
    }

    /// Waits (at most `bound`) for the background bookings to reach Redis: a CLI run calls
    /// it before it exits.
    pub async fn flush(&self, bound: Duration) {
        let wait = async {
            while self.inner.pending.load(Ordering::Acquire) > 0 {
                let settled = self.inner.settled.notified();
                if self.inner.pending.load(Ordering::Acquire) == 0 {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(20), settled).await;
            }
        };
        let _ = tokio::time::timeout(bound, wait).await;
    }

    // ---- cache entries ----

    /// The sealed value stored under `key`, checked; `None` on a miss, a damaged value or when
    /// Redis is unavailable.
    pub async fn get(&self, key: &str, bound: Bound) -> Option<Vec<u8>> {
        let k = self.key("cache", key);
        let raw: Option<Vec<u8>> = self
            .call(bound, |mut c| async move {
                redis::cmd("GET").arg(&k).query_async(&mut c).await
            })
            .await
            .flatten();
        let raw = raw?;
        let opened = codec::open(&raw);
        if opened.is_none() {
            tracing::warn!("a damaged team cache entry was ignored (checksum mismatch)");
        }
        opened.map(<[u8]>::to_vec)
    }

    /// Stores `value` (sealed) under `key` for `ttl_secs`.
    pub async fn put(&self, key: &str, value: &[u8], ttl_secs: u64) {
        let k = self.key("cache", key);
        let sealed = codec::seal(value);
        let _: Option<()> = self
            .call(Bound::Action, |mut c| async move {
                redis::cmd("SET")
                    .arg(&k)
                    .arg(sealed)
                    .arg("EX")
                    .arg(ttl_secs.max(1))
                    .query_async(&mut c)
                    .await
            })
            .await;
    }

    // ---- cross-process single flight ----

    /// Tries to take the computation lock of `key` for `ttl`.
    pub async fn lock(&self, key: &str, ttl: Duration) -> Lock {
        let k = self.key("lock", key);
        let token = format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let value = token.clone();
        let set: Option<Option<String>> = self
            .call(Bound::Action, |mut c| async move {
                redis::cmd("SET")
                    .arg(&k)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl.as_millis().max(1) as u64)
                    .query_async(&mut c)
                    .await
            })
            .await;
        match set {
            None => Lock::Unavailable,
            Some(Some(_ok)) => Lock::Acquired(token),
            Some(None) => Lock::Held,
        }
    }

    /// Releases the lock of `key` if `token` still holds it (it may have expired and been
    /// taken by another process).
    pub async fn unlock(&self, key: &str, token: &str) {
        self.release(key, token.to_owned(), Bound::Action).await;
    }

    /// The release script for `key` and `token`, under `bound`.
    async fn release(&self, key: &str, token: String, bound: Bound) {
        let k = self.key("lock", key);
        let _: Option<i64> = self
            .call(bound, |mut c| async move {
                scripts::release()
                    .key(&k)
                    .arg(token)
                    .invoke_async(&mut c)
                    .await
            })
            .await;
    }

    /// Extends the lock of `key` to `ttl` from now while `token` still holds it; `false` when
    /// it does not (expired and taken, or Redis unavailable).
    pub async fn extend(&self, key: &str, token: &str, ttl: Duration) -> bool {
        let k = self.key("lock", key);
        let token = token.to_owned();
        let extended: Option<i64> = self
            .call(Bound::Call, |mut c| async move {
                scripts::extend()
                    .key(&k)
                    .arg(token)
                    .arg(ttl.as_millis().max(1) as u64)
                    .invoke_async(&mut c)
                    .await
            })
            .await;
        extended == Some(1)
    }

    /// [`Team::unlock`] in the background, for a holder that was dropped.
    pub fn unlock_in_background(&self, key: &str, token: String) {
        let team = self.clone();
        let key = key.to_owned();
        self.spawn(async move { team.release(&key, token, Bound::Call).await });
    }

    /// Whether the lock of `key` is still held; `None` when Redis is unavailable.
    pub async fn locked(&self, key: &str, bound: Bound) -> Option<bool> {
        let k = self.key("lock", key);
        self.call(bound, |mut c| async move {
            redis::cmd("EXISTS")
                .arg(&k)
                .query_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|n| n > 0)
    }

    // ---- rate limits and cooldowns ----

    /// Takes a token from `model`'s shared bucket of `per_minute`: `Some(0)` granted,
    /// `Some(ms)` none for another `ms`, `None` when Redis is unavailable (go ahead).
    pub async fn take_token(&self, model: &str, per_minute: u32) -> Option<u64> {
        let k = self.key("bucket", model);
        self.call(Bound::Action, |mut c| async move {
            scripts::bucket()
                .key(&k)
                .arg(per_minute.max(1))
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|ms| ms.max(0) as u64)
    }

    /// Tells the other processes to skip `model` for `open_for` (its breaker opened here).
    pub fn share_cooldown(&self, model: &str, open_for: Duration) {
        let k = self.key("cooldown", model);
        let team = self.clone();
        self.spawn(async move {
            let _: Option<()> = team
                .call(Bound::Call, |mut c| async move {
                    redis::cmd("SET")
                        .arg(&k)
                        .arg(1)
                        .arg("PX")
                        .arg(open_for.as_millis().max(1) as u64)
                        .query_async(&mut c)
                        .await
                })
                .await;
        });
    }

    /// How much longer another process asked to skip `model`; `None` when it did not (or
    /// Redis is unavailable).
    pub async fn cooldown(&self, model: &str) -> Option<Duration> {
        let k = self.key("cooldown", model);
        let ms: i64 = self
            .call(Bound::Action, |mut c| async move {
                redis::cmd("PTTL").arg(&k).query_async(&mut c).await
            })
            .await?;
        (ms > 0).then(|| Duration::from_millis(ms as u64))
    }

    // ---- the day's spend ----

    /// Today's shared spend in USD; `None` when Redis is unavailable.
    pub async fn spent_today(&self) -> Option<f64> {
        let k = self.key("day", &day_of(spend::unix_now()));
        let spent: Option<f64> = self
            .call(Bound::Action, |mut c| async move {
                redis::cmd("HGET")
                    .arg(&k)
                    .arg(spend::TOTAL_COST)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Some(spent.unwrap_or(0.0))
    }

    /// Books one upstream request of `tier` and its cost into today's ledger, in the background.
    pub fn book_request(&self, tier: &str, cost_usd: Option<f64>) {
        self.book(spend::request_fields(tier, cost_usd));
    }

    /// Books one lookup of `tier`: answered from a cache (`team` when from Redis) or not.
    pub fn book_lookup(&self, tier: &str, hit: bool, team: bool) {
        self.book(spend::lookup_fields(tier, hit, team));
    }

    fn book(&self, fields: Vec<(String, spend::Add)>) {
        let k = self.key("day", &day_of(spend::unix_now()));
        let team = self.clone();
        self.spawn(async move {
            let _: Option<()> = team
                .call(Bound::Call, |mut c| async move {
                    spend::pipeline(&k, &fields).query_async(&mut c).await
                })
                .await;
        });
    }

    /// Today's ledger, for `codetier team stats` (waits up to [`COMMAND_TIMEOUT`]).
    pub async fn day_stats(&self) -> Result<DayStats, TeamError> {
        let now = spend::unix_now();
        let day = day_of(now);
        let k = self.key("day", &day);
        let fields: std::collections::HashMap<String, String> = self
            .command(|mut c| async move { redis::cmd("HGETALL").arg(&k).query_async(&mut c).await })
            .await?;
        Ok(DayStats::from_fields(
            day,
            seconds_to_midnight(now),
            self.inner.daily_budget_usd,
            &fields,
        ))
    }

    /// One round trip, for `doctor`: how long a PING took.
    pub async fn ping(&self) -> Result<Duration, TeamError> {
        let started = Instant::now();
        let _: String = self
            .command(|mut c| async move { redis::cmd("PING").query_async(&mut c).await })
            .await?;
        Ok(started.elapsed())
    }

    /// A call for an explicit command: a longer bound, and the error in words (scrubbed).
    async fn command<T, F, Fut>(&self, f: F) -> Result<T, TeamError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let work = async {
            let conn = self.connection(COMMAND_TIMEOUT).await?;
            f(conn).await
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                *lock(&self.inner.conn) = None;
                Err(TeamError::Unreachable(self.scrub(&e.to_string())))
            }
            Err(_) => Err(TeamError::Unreachable(format!(
                "no answer within {} s",
                COMMAND_TIMEOUT.as_secs()
            ))),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
