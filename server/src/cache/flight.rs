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
    claimed: Arc<AtomicBool>,
}

pub(crate) enum Joined<E> {
    /// Found in the cache while registering, nothing to wait for.
    Hit(Entry),
    Wait(Waiter<E>),
}

pub(crate) struct Waiter<E> {
    shared: Shared<Compute<E>>,
    /// Set by the first waiter to receive the result: that one reports the spend.
    claimed: Arc<AtomicBool>,
}

impl<E: Clone + Send + Sync + 'static> Waiter<E> {
    /// Waits for the shared result; the bool is `cached` (false for exactly one waiter).
    pub(crate) async fn wait(self) -> Result<(Entry, bool), E> {
        let result = self.shared.await;
        result.map(|entry| (entry, self.claimed.swap(true, Ordering::AcqRel)))
    }
}

impl Flights {
    /// Joins the computation in flight for `key`, or (when `recheck` finds nothing) starts
    /// `start()` as a new one. `recheck` runs under the map lock.
    pub(crate) fn join_or_start<E, F>(
        &self,
        key: CacheKey,
        recheck: impl FnOnce() -> Option<Entry>,
        start: impl FnOnce(u64) -> F,
    ) -> Joined<E>
    where
        E: Clone + Send + Sync + 'static,
        F: Future<Output = Result<Entry, E>> + Send + 'static,
    {
        let mut map = lock(&self.map);
        let running = map
            .get(&key)
            .and_then(|r| r.flight.downcast_ref::<Flight<E>>())
            .and_then(|f| Some((f.shared.upgrade()?, Arc::clone(&f.claimed))));
        if let Some((shared, claimed)) = running {
            return Joined::Wait(Waiter { shared, claimed });
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
        let compute = start(id);
        let shared = async move {
            let _guard = guard;
            compute.await
        }
        .boxed()
        .shared();
        let claimed = Arc::new(AtomicBool::new(false));
        if let Some(weak) = shared.downgrade() {
            let flight = Flight {
                shared: weak,
                claimed: Arc::clone(&claimed),
            };
            map.insert(
                key,
                Registered {
                    id,
                    flight: Box::new(flight),
                },
            );
        }
        Joined::Wait(Waiter { shared, claimed })
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
