//! Counted places per user (or per address), given back when dropped: the caps on a user's and
//! on an address's open WebSockets (`connection/admission.rs`) and on a user's relay allocations
//! (`turn/stats.rs`). A slot is a
//! lock held for a map lookup, not a message to an actor, so a storm can neither queue behind it
//! nor time out on it; and whoever holds the slot gives it back however it ends.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct Quota<K = i64> {
    open: Mutex<HashMap<K, usize>>,
    /// Slots held in all, for gauges.
    held: AtomicUsize,
    max_per_user: usize,
}

/// One place under its user's (or address's) cap; dropping it frees the place.
pub struct Slot<K: Hash + Eq + Clone = i64> {
    quota: Arc<Quota<K>>,
    key: K,
}

impl Slot<i64> {
    pub fn user_id(&self) -> i64 {
        self.key
    }
}

impl<K: Hash + Eq + Clone> Quota<K> {
    pub fn new(max_per_user: usize) -> Arc<Quota<K>> {
        Arc::new(Quota { open: Mutex::new(HashMap::new()), held: AtomicUsize::new(0), max_per_user })
    }

    pub fn max_per_user(&self) -> usize {
        self.max_per_user
    }

    /// Slots held now, by every user.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// A slot for one more of `user_id`'s, or `None` at the cap.
    pub fn take(self: &Arc<Self>, key: K) -> Option<Slot<K>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key.clone()).or_insert(0);
        if *n >= self.max_per_user {
            return None;
        }
        *n += 1;
        self.held.fetch_add(1, Ordering::Relaxed);
        Some(Slot { quota: self.clone(), key })
    }
}

impl<K: Hash + Eq + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut open = self.quota.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
        self.quota.held.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_holds_and_dropped_slots_come_back() {
        let q = Quota::new(2);
        let s1 = q.take(7);
        let s2 = q.take(7);
        assert!(s1.is_some() && s2.is_some());
        assert!(q.take(7).is_none());
        assert!(q.take(8).is_some(), "another user has slots of their own");
        assert_eq!(q.held(), 2, "the dropped slot of user 8 is back already");
        drop(s1);
        assert_eq!(q.held(), 1);
        assert!(q.take(7).is_some());
    }
}
