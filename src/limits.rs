//! Abuse limits, each a setting (PROTOCOL.md section 7): registrations per address an hour, chat
//! messages per user a minute, invites from one user to the same person a minute, call reports
//! per user a minute, and stored chat per user a day. Counted in memory, per node, in fixed
//! windows; a refusal says how long to wait. (Open WebSockets per address are slots: quota.rs.)

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Settings;
use crate::store::{Store, StoreResult};

/// Past this many tracked keys, those whose window is over are swept on the next hit.
const SWEEP_AT: usize = 10_000;

const DAY_MS: i64 = 86_400_000;

/// At most `limit` hits per key in each `period`.
pub struct Window<K> {
    limit: u32,
    period: Duration,
    keys: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: Hash + Eq> Window<K> {
    pub fn new(limit: u32, period: Duration) -> Self {
        Window { limit, period, keys: Mutex::new(HashMap::new()) }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Counts one hit; `Err(seconds to wait)` once the key is over its limit (a refused hit is
    /// not counted, so a client that waits is served).
    pub fn hit(&self, key: K) -> Result<(), u64> {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() > SWEEP_AT {
            let period = self.period;
            keys.retain(|_, (since, _)| now.duration_since(*since) < period);
        }
        let (since, n) = keys.entry(key).or_insert((now, 0));
        if now.duration_since(*since) >= self.period {
            (*since, *n) = (now, 0);
        }
        if *n >= self.limit {
            return Err((self.period.saturating_sub(now.duration_since(*since))).as_secs_f64().ceil().max(1.0) as u64);
        }
        *n += 1;
        Ok(())
    }
}

/// At most `max` stored messages per user per UTC day; each user's count is read from the
/// database on their first message of the day (so a restart forgets nothing), then kept here.
pub struct DailyCap {
    max: u32,
    counts: Mutex<HashMap<i64, (i64, u32)>>,
}

impl DailyCap {
    pub fn new(max: u32) -> Self {
        DailyCap { max, counts: Mutex::new(HashMap::new()) }
    }

    pub fn max(&self) -> u32 {
        self.max
    }

    /// Takes one of `user`'s messages for today; `Ok(false)` at the cap.
    pub async fn take(&self, store: &Store, user: i64, now_ms: i64) -> StoreResult<bool> {
        let day = now_ms.div_euclid(DAY_MS);
        let known = self.counts.lock().unwrap_or_else(|p| p.into_inner()).get(&user).filter(|(d, _)| *d == day).map(|(_, n)| *n);
        let sent = match known {
            Some(n) => n,
            None => u32::try_from(store.messages_sent_since(user, day * DAY_MS).await?).unwrap_or(u32::MAX),
        };
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.len() > SWEEP_AT {
            counts.retain(|_, (d, _)| *d == day);
        }
        let entry = counts.entry(user).or_insert((day, sent));
        if entry.0 != day {
            *entry = (day, sent);
        }
        // Two messages racing past the read above are both counted here.
        entry.1 = entry.1.max(sent);
        if entry.1 >= self.max {
            return Ok(false);
        }
        entry.1 += 1;
        Ok(true)
    }
}

/// Every abuse limit of one node.
pub struct Limits {
    pub registrations: Window<IpAddr>,
    pub chat: Window<i64>,
    pub invites: Window<(i64, i64)>,
    pub reports: Window<i64>,
    pub chat_daily: DailyCap,
}

impl Limits {
    pub fn new(s: &Settings) -> Self {
        const MINUTE: Duration = Duration::from_secs(60);
        Limits {
            registrations: Window::new(s.register_per_hour, Duration::from_secs(3600)),
            chat: Window::new(s.chat_per_minute, MINUTE),
            invites: Window::new(s.invites_per_minute, MINUTE),
            reports: Window::new(s.call_reports_per_minute, MINUTE),
            chat_daily: DailyCap::new(s.chat_daily_max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_refuses_past_its_limit_says_how_long_and_keys_are_apart() {
        let w = Window::new(2, Duration::from_secs(60));
        assert_eq!(w.hit(1), Ok(()));
        assert_eq!(w.hit(1), Ok(()));
        assert!(matches!(w.hit(1), Err(s) if (1..=60).contains(&s)));
        assert_eq!(w.hit(2), Ok(()), "another key has its own count");
        let short = Window::new(1, Duration::from_millis(1));
        assert_eq!(short.hit(1), Ok(()));
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(short.hit(1), Ok(()), "a new window starts afresh");
    }
}
