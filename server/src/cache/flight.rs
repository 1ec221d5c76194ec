//! In-flight sharing: identical concurrent requests wait on one computation.
//!
//! A computation is a `Shared` future that its waiters poll; the map keeps only a weak
//! handle, so the computation lives exactly as long as some waiter does. A guard moved into
//! the computation removes its map entry when the computation finishes or is dropped.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::{BoxFuture, FutureExt, Shared, WeakShared};

use super::{CacheKey, Entry};

type Compute<E> = BoxFuture<'static, Result<Entry, E>>;
type Map = HashMap<CacheKey, Registered>;

#[derive(Default)]
pub(crate) struct Flights {
    map: Arc<Mutex<Map>>,
    next_id: AtomicU64,
}

struct Registered {
    id: u64,
    /// A `Flight<E>`; erased because callers may use different error types.
    flight: Box<dyn Any + Send + Sync>,
}

struct Flight<E> {
    shared: WeakShared<Compute<E>>,
    marks: Arc<Marks>,
}

/// What the waiters of one computation learn besides its result.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    /// Set by the first waiter to receive the result: that one reports the spend.
    claimed: AtomicBool,
    /// The computation found the answer in the team's Redis (another process paid for it).
    team: AtomicBool,
}

impl Marks {
    /// The answer came from another process through the team tier: every waiter is a
    /// (team) hit, and none reports spend.
    pub(crate) fn mark_team(&self) {
        self.team.store(true, Ordering::Release);
        self.claimed.store(true, Ordering::Release);
    }
}

pub(crate) enum Joined<E> {
    /// Found in the cache while registering, nothing to wait for.
    Hit(Entry),
    Wait(Waiter<E>),
}

pub(crate) struct Waiter<E> {
    shared: Shared<Compute<E>>,
    marks: Arc<Marks>,
}

impl<E: Clone + Send + Sync + 'static> Waiter<E> {
    /// Waits for the shared result, with `cached` (false for exactly one waiter, unless the
    /// answer came from the team tier) and whether it came from the team tier.
    pub(crate) async fn wait(self) -> Result<(Entry, bool, bool), E> {
        let result = self.shared.await;
        result.map(|entry| {
            let cached = self.marks.claimed.swap(true, Ordering::AcqRel);
            (entry, cached, self.marks.team.load(Ordering::Acquire))
        })
    }
}

impl Flights {
    /// Joins the computation in flight for `key`, or (when `recheck` finds nothing) starts
    /// `start()` as a new one. `recheck` runs under the map lock.
    pub(crate) fn join_or_start<E, F>(
        &self,
        key: CacheKey,
        recheck: impl FnOnce() -> Option<Entry>,
        start: impl FnOnce(u64, Arc<Marks>) -> F,
    ) -> Joined<E>
    where
        E: Clone + Send + Sync + 'static,
        F: Future<Output = Result<Entry, E>> + Send + 'static,
    {
        let mut map = lock(&self.map);
        let running = map
            .get(&key)
            .and_then(|r| r.flight.downcast_ref::<Flight<E>>())
            .and_then(|f| Some((f.shared.upgrade()?, Arc::clone(&f.marks))));
        if let Some((shared, marks)) = running {
            return Joined::Wait(Waiter { shared, marks });
        }
        if let Some(entry) = recheck() {
            return Joined::Hit(entry);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let guard = Deregister {
            map: Arc::clone(&self.map),
            key,
            id,
        };
        let marks = Arc::new(Marks::default());
        let compute = start(id, Arc::clone(&marks));
        let shared = async move {
            let _guard = guard;
            compute.await
        }
        .boxed()
        .shared();
        if let Some(weak) = shared.downgrade() {
            let flight = Flight {
                shared: weak,
                marks: Arc::clone(&marks),
            };
            map.insert(
                key,
                Registered {
                    id,
                    flight: Box::new(flight),
                },
            );
        }
        Joined::Wait(Waiter { shared, marks })
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }
}

/// Removes a flight's map entry when its computation finishes or is dropped, unless a newer
/// flight has taken the key meanwhile.
struct Deregister {
    map: Arc<Mutex<Map>>,
    key: CacheKey,
    id: u64,
}

impl Drop for Deregister {
    fn drop(&mut self) {
        let mut map = lock(&self.map);
        if map.get(&self.key).is_some_and(|r| r.id == self.id) {
            map.remove(&self.key);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
