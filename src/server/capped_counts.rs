//! How many of something each key holds at once, each at most a cap, with
//! a slot given back when dropped: open connections per client address (the
//! listener's `max_connections_per_address`) and requests in progress per
//! API key (admission's `max_concurrent_requests_per_key`).
//!
//! The counts are sharded, each shard behind its own lock, so that keys
//! rarely wait for one another; a key whose count falls to zero is
//! forgotten, so the map holds only keys in use.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Independently locked parts of the counts.
const SHARDS: usize = 16;

/// Counts per key, at most `cap` each (0: no cap, and nothing counted).
#[derive(Debug)]
pub struct CappedCounts<K> {
    cap: usize,
    hasher: RandomState,
    shards: [Mutex<HashMap<K, usize>>; SHARDS],
}

impl<K: Hash + Eq + Copy> CappedCounts<K> {
    /// Counts allowing `cap` at once per key; 0 counts nothing.
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        })
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, HashMap<K, usize>> {
        let index = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        // Plain counts, consistent after every update.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for one more of `key`; `None` when it already holds `cap`.
    pub fn take(self: &Arc<Self>, key: K) -> Option<CountedSlot<K>> {
        if self.cap == 0 {
            return Some(CountedSlot(None));
        }
        let mut shard = self.shard(&key);
        let count = shard.entry(key).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(CountedSlot(Some((Arc::clone(self), key))))
    }

    /// How many `key` holds now.
    #[cfg(test)]
    pub fn count(&self, key: K) -> usize {
        self.shard(&key).get(&key).copied().unwrap_or(0)
    }

    /// Whether no key holds anything (and none is remembered).
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|shard| {
            shard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty()
        })
    }
}

/// One place in its key's count, given back when dropped.
#[derive(Debug)]
pub struct CountedSlot<K: Hash + Eq + Copy>(Option<(Arc<CappedCounts<K>>, K)>);

impl<K: Hash + Eq + Copy> Drop for CountedSlot<K> {
    fn drop(&mut self) {
        let Some((counts, key)) = self.0.take() else {
            return;
        };
        let mut shard = counts.shard(&key);
        if let Some(count) = shard.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                shard.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_cap_and_slots_come_back_on_drop() {
        let counts = CappedCounts::new(2);
        let first = counts.take('a').expect("a slot");
        let second = counts.take('a').expect("a slot");
        assert!(counts.take('a').is_none(), "a third for one key");
        let other = counts.take('b').expect("another key has its own cap");
        drop(first);
        assert_eq!(counts.count('a'), 1);
        let again = counts.take('a').expect("a slot given back");
        drop((second, again, other));
        assert_eq!(counts.count('a'), 0);
        assert!(counts.is_empty(), "keys holding nothing are forgotten");
    }

    #[test]
    fn a_zero_cap_counts_nothing() {
        let counts = CappedCounts::new(0);
        let slots: Vec<CountedSlot<char>> = (0..1000)
            .map(|_| counts.take('a').expect("no cap"))
            .collect();
        assert!(counts.is_empty());
        drop(slots);
    }
}
