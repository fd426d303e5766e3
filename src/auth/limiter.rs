//! Failed-login limiter: counts failures per username and per client address in a window, and
//! locks the key once it reaches its limit, so password guessing gets 429 with Retry-After.
//! In memory: a restart forgets the counts, which only helps a guesser once per restart.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many tracked keys, stale ones are swept on the next failure.
const SWEEP_AT: usize = 10_000;

struct Window {
    started: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

pub struct LoginLimiter {
    /// Failures allowed per username; an address gets four times as many (a shared NAT).
    max_failures: u32,
    /// Length of the counting window and of a lockout.
    window: Duration,
    keys: Mutex<HashMap<String, Window>>,
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        LoginLimiter { max_failures, window, keys: Mutex::new(HashMap::new()) }
    }

    fn keys_for(username_key: &str, addr: &str) -> [(String, u32); 2] {
        [(format!("user:{username_key}"), 1), (format!("addr:{addr}"), 4)]
    }

    /// Seconds to wait if either the username or the address is locked, else `None`.
    pub fn check(&self, username_key: &str, addr: &str) -> Option<u64> {
        let now = Instant::now();
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        Self::keys_for(username_key, addr)
            .iter()
            .filter_map(|(k, _)| keys.get(k)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| (until - now).as_secs_f64().ceil() as u64)
            .max()
    }

    /// Counts a failure against both keys, locking whichever reaches its limit.
    pub fn failed(&self, username_key: &str, addr: &str) {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() > SWEEP_AT {
            let window = self.window;
            keys.retain(|_, w| now.duration_since(w.started) < window || w.locked_until.is_some_and(|u| u > now));
        }
        for (key, factor) in Self::keys_for(username_key, addr) {
            let w = keys.entry(key).or_insert(Window { started: now, failures: 0, locked_until: None });
            if now.duration_since(w.started) >= self.window && w.locked_until.is_none_or(|u| u <= now) {
                *w = Window { started: now, failures: 0, locked_until: None };
            }
            w.failures += 1;
            if w.failures >= self.max_failures.saturating_mul(factor) {
                w.locked_until = Some(now + self.window);
            }
        }
    }

    /// A successful login clears the username's count (the address keeps its own).
    pub fn succeeded(&self, username_key: &str) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.remove(&format!("user:{username_key}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_a_username_after_its_limit_and_an_address_later() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        for _ in 0..2 {
            l.failed("alice", "1.2.3.4");
        }
        assert_eq!(l.check("alice", "1.2.3.4"), None);
        l.failed("alice", "1.2.3.4");
        assert!(l.check("alice", "1.2.3.4").is_some_and(|s| s > 0 && s <= 60));
        // Another user from the same address is not locked yet...
        assert_eq!(l.check("bob", "1.2.3.4"), None);
        // ...until the address itself reaches four times the limit.
        for i in 0..9 {
            l.failed(&format!("user{i}"), "1.2.3.4");
        }
        assert!(l.check("bob", "1.2.3.4").is_some());
        assert_eq!(l.check("bob", "5.6.7.8"), None);
    }

    #[test]
    fn success_clears_the_username() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        l.failed("alice", "a");
        l.failed("alice", "a");
        l.succeeded("alice");
        l.failed("alice", "a");
        assert_eq!(l.check("alice", "b"), None);
    }
}
