//! Admission: at most `DUET_WS_MAX_PER_USER` open connections per user (PROTOCOL.md section 7).
//! A slot is taken before the upgrade and held by the connection until it ends, however it ends
//! (the slot is given back when dropped). It is a lock held for a map lookup, not a message to an
//! actor, so a connect storm can neither queue behind it nor time out on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct Admission {
    open: Mutex<HashMap<i64, usize>>,
    max_per_user: usize,
}

/// One connection's place under its user's cap; dropping it frees the place.
pub struct Slot {
    admission: Arc<Admission>,
    user_id: i64,
}

impl Admission {
    pub fn new(max_per_user: usize) -> Arc<Admission> {
        Arc::new(Admission { open: Mutex::new(HashMap::new()), max_per_user })
    }

    pub fn max_per_user(&self) -> usize {
        self.max_per_user
    }

    /// A slot for one more connection of `user_id`, or `None` at the cap.
    pub fn admit(self: &Arc<Self>, user_id: i64) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(user_id).or_insert(0);
        if *n >= self.max_per_user {
            return None;
        }
        *n += 1;
        Some(Slot { admission: self.clone(), user_id })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.user_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_holds_and_dropped_slots_come_back() {
        let a = Admission::new(2);
        let s1 = a.admit(7);
        let s2 = a.admit(7);
        assert!(s1.is_some() && s2.is_some());
        assert!(a.admit(7).is_none());
        assert!(a.admit(8).is_some(), "another user has slots of their own");
        drop(s1);
        assert!(a.admit(7).is_some());
    }
}
