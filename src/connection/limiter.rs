//! Per-connection token bucket (PROTOCOL.md section 7): by default 100 frames a second sustained,
//! bursts of 200 (`DUET_WS_RATE_PER_SEC`, `DUET_WS_RATE_BURST`). A connection that stays over the
//! limit for the abuse window is closed.

use std::time::{Duration, Instant};

pub const RATE_PER_SEC: f64 = 100.0;
pub const BURST: f64 = 200.0;

/// A refused frame more than this long after the previous one starts a new abuse episode.
const EPISODE_GAP: Duration = Duration::from_secs(1);

pub struct FrameLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
    /// When the current run of refused frames began.
    abuse_since: Option<Instant>,
    last_refused: Option<Instant>,
    /// How long abuse may last before the connection is closed.
    abuse_window: Duration,
}

/// The limiter's verdict on one frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Refuse,
    /// Refused, and the abuse has lasted the whole window: close with 1008.
    Close,
}

impl FrameLimiter {
    pub fn new(abuse_window: Duration) -> Self {
        Self::with_rate(RATE_PER_SEC, BURST, abuse_window)
    }

    pub fn with_rate(rate: f64, burst: f64, abuse_window: Duration) -> Self {
        FrameLimiter { rate, burst, tokens: burst, refilled: Instant::now(), abuse_since: None, last_refused: None, abuse_window }
    }

    pub fn check(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allow;
        }
        let new_episode = self.last_refused.is_none_or(|t| now.saturating_duration_since(t) > EPISODE_GAP);
        if new_episode {
            self.abuse_since = Some(now);
        }
        self.last_refused = Some(now);
        match self.abuse_since {
            Some(since) if now.saturating_duration_since(since) >= self.abuse_window => Verdict::Close,
            _ => Verdict::Refuse,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate_then_close() {
        let start = Instant::now();
        let mut l = FrameLimiter::new(Duration::from_secs(10));
        for _ in 0..200 {
            assert_eq!(l.check(start), Verdict::Allow);
        }
        assert_eq!(l.check(start), Verdict::Refuse);
        // 10 ms later, one more token.
        assert_eq!(l.check(start + Duration::from_millis(10)), Verdict::Allow);
        // Flooding at 1000/s for 10 s: refused throughout, closed at the end.
        let mut verdict = Verdict::Allow;
        for ms in 11..=10_020u64 {
            verdict = l.check(start + Duration::from_millis(ms));
            if verdict == Verdict::Close {
                assert!(ms >= 10_000, "closed after {ms} ms");
                break;
            }
        }
        assert_eq!(verdict, Verdict::Close);
    }

    #[test]
    fn a_pause_forgives() {
        let start = Instant::now();
        let mut l = FrameLimiter::new(Duration::from_secs(10));
        for _ in 0..201 {
            l.check(start);
        }
        // Quiet for 5 s, then a burst is allowed again.
        assert_eq!(l.check(start + Duration::from_secs(5)), Verdict::Allow);
    }
}
