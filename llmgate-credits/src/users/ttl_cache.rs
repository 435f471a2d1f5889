//! A small bounded map whose entries expire: the in-process caches on the request path.
//!
//! A reader that missed asks the database, then inserts what it read. If a write invalidated
//! the cache meanwhile, that read may be stale: every removal bumps a generation, and an insert
//! tagged with an older generation is dropped.
//!
//! An expired entry is kept (until capacity pushes it out) for [`TtlCache::get_stale`]: when
//! the database cannot be reached, the last answer it gave is better than none, for up to
//! [`STALE_IF_ERROR`] past its expiry. Invalidations still remove entries at once, so a stale
//! answer is never one this process knows to be wrong.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use llmgate_core::sync;

/// How long past its expiry an entry may still answer while the database is unreachable.
pub(crate) const STALE_IF_ERROR: Duration = Duration::from_secs(15 * 60);

#[derive(Debug)]
struct State<K, V> {
    entries: HashMap<K, (V, Instant)>,
    generation: u64,
}

/// Entries live `ttl`; at `capacity` the expired ones go first, then an arbitrary half.
#[derive(Debug)]
pub(crate) struct TtlCache<K, V> {
    state: Mutex<State<K, V>>,
    ttl: Duration,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                entries: HashMap::new(),
                generation: 0,
            }),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// A map locked by a panicking thread still holds valid cache entries.
    fn lock(&self) -> MutexGuard<'_, State<K, V>> {
        sync::lock(&self.state)
    }

    /// Take this before reading what will be inserted.
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// The entry while it is fresh.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.get_within(key, Duration::ZERO)
    }

    /// The entry even if it expired up to [`STALE_IF_ERROR`] ago: for when the database that
    /// would refresh it cannot be reached.
    pub(crate) fn get_stale(&self, key: &K) -> Option<V> {
        self.get_within(key, STALE_IF_ERROR)
    }

    fn get_within(&self, key: &K, past_expiry: Duration) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let state = self.lock();
        match state.entries.get(key) {
            Some((value, expires)) if *expires + past_expiry > Instant::now() => {
                Some(value.clone())
            }
            _ => None,
        }
    }

    /// Insert a value read after [`TtlCache::generation`] returned `generation`; dropped when
    /// something was invalidated since.
    pub(crate) fn insert(&self, generation: u64, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut state = self.lock();
        if state.generation != generation {
            return;
        }
        if state.entries.len() >= self.capacity && !state.entries.contains_key(&key) {
            state.entries.retain(|_, (_, expires)| *expires > now);
            if state.entries.len() >= self.capacity {
                let drop: Vec<K> = state
                    .entries
                    .keys()
                    .take(self.capacity / 2 + 1)
                    .cloned()
                    .collect();
                for key in drop {
                    state.entries.remove(&key);
                }
            }
        }
        state.entries.insert(key, (value, now + self.ttl));
    }

    pub(crate) fn remove(&self, key: &K) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.remove(key);
    }

    /// Drop every entry the predicate picks (e.g. all entries of one user).
    pub(crate) fn remove_where(&self, mut pick: impl FnMut(&K, &V) -> bool) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.retain(|key, (value, _)| !pick(key, value));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_capacity_is_kept() {
        let cache = TtlCache::new(Duration::from_secs(60), 4);
        for i in 0..10 {
            cache.insert(cache.generation(), i, i * 10);
            assert!(cache.len() <= 4);
        }
        assert_eq!(cache.get(&9), Some(90));
        cache.remove_where(|_, v| *v == 90);
        assert_eq!(cache.get(&9), None);

        let expired = TtlCache::new(Duration::from_nanos(1), 4);
        expired.insert(0, 1, 1);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(expired.get(&1), None);
        // Still there for a database outage, until it is invalidated.
        assert_eq!(expired.get_stale(&1), Some(1));
        expired.remove(&1);
        assert_eq!(expired.get_stale(&1), None);

        let off = TtlCache::new(Duration::ZERO, 4);
        off.insert(0, 1, 1);
        assert_eq!(off.get(&1), None);
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_cached() {
        let cache = TtlCache::new(Duration::from_secs(60), 4);
        let before_read = cache.generation();
        // A writer changes the row and invalidates while the reader is in the database.
        cache.remove(&"ann");
        cache.insert(before_read, "ann", "stale");
        assert_eq!(cache.get(&"ann"), None);
        cache.insert(cache.generation(), "ann", "fresh");
        assert_eq!(cache.get(&"ann"), Some("fresh"));
    }
}
