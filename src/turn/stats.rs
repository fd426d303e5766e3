//! What the relay has done, for metrics and for telling "TURN refused you" from other failures;
//! and the per-user allocation quota, whose slots are held by the allocations themselves so that
//! an allocation however it ends (deleted, expired, its TCP connection gone, the server closing)
//! gives its slot back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Why the relay refused a request: the label of `duet_turn_refusals_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401 to a request without credentials: the first leg of every authenticated exchange.
    NoCredentials,
    /// 401: an expired, malformed or forged username or password.
    BadCredentials,
    /// 438: the nonce is unknown or too old; the client retries with the fresh one.
    StaleNonce,
    /// 441: a request on an allocation with another user's credentials.
    WrongCredentials,
    /// 403: a permission or channel for a peer in a denied range.
    ForbiddenPeer,
    /// 486: the user holds the most allocations allowed.
    Quota,
    /// 437: no allocation on this 5-tuple, or another one there already.
    Mismatch,
    /// 400: a malformed or incomplete request.
    BadRequest,
    /// 420: a comprehension-required attribute the relay does not know.
    UnknownAttribute,
    /// 442: a relay transport other than UDP.
    UnsupportedTransport,
    /// 440: an address family the relay does not serve.
    AddressFamily,
    /// 443: a peer of the other address family than the relay address.
    PeerAddressFamily,
    /// 508: no relay port could be had (or the reservation is gone).
    Capacity,
}

impl Refusal {
    pub const ALL: [Refusal; 13] = [
        Refusal::NoCredentials,
        Refusal::BadCredentials,
        Refusal::StaleNonce,
        Refusal::WrongCredentials,
        Refusal::ForbiddenPeer,
        Refusal::Quota,
        Refusal::Mismatch,
        Refusal::BadRequest,
        Refusal::UnknownAttribute,
        Refusal::UnsupportedTransport,
        Refusal::AddressFamily,
        Refusal::PeerAddressFamily,
        Refusal::Capacity,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::NoCredentials => "no_credentials",
            Refusal::BadCredentials => "bad_credentials",
            Refusal::StaleNonce => "stale_nonce",
            Refusal::WrongCredentials => "wrong_credentials",
            Refusal::ForbiddenPeer => "forbidden_peer",
            Refusal::Quota => "quota",
            Refusal::Mismatch => "allocation_mismatch",
            Refusal::BadRequest => "bad_request",
            Refusal::UnknownAttribute => "unknown_attribute",
            Refusal::UnsupportedTransport => "unsupported_transport",
            Refusal::AddressFamily => "address_family",
            Refusal::PeerAddressFamily => "peer_address_family",
            Refusal::Capacity => "insufficient_capacity",
        }
    }

    /// The STUN error code and reason phrase sent for it.
    pub fn code(self) -> (u16, &'static str) {
        match self {
            Refusal::NoCredentials | Refusal::BadCredentials => (401, "Unauthorized"),
            Refusal::StaleNonce => (438, "Stale Nonce"),
            Refusal::WrongCredentials => (441, "Wrong Credentials"),
            Refusal::ForbiddenPeer => (403, "Forbidden"),
            Refusal::Quota => (486, "Allocation Quota Reached"),
            Refusal::Mismatch => (437, "Allocation Mismatch"),
            Refusal::BadRequest => (400, "Bad Request"),
            Refusal::UnknownAttribute => (420, "Unknown Attribute"),
            Refusal::UnsupportedTransport => (442, "Unsupported Transport Protocol"),
            Refusal::AddressFamily => (440, "Address Family not Supported"),
            Refusal::PeerAddressFamily => (443, "Peer Address Family Mismatch"),
            Refusal::Capacity => (508, "Insufficient Capacity"),
        }
    }

    fn index(self) -> usize {
        Refusal::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

#[derive(Default)]
pub struct RelayStats {
    /// Allocations ever made.
    pub allocations_total: AtomicU64,
    /// Bytes relayed, both directions.
    pub relayed_bytes: AtomicU64,
    /// Datagrams dropped because their peer is in a denied range or has no permission.
    pub denied_peer_packets: AtomicU64,
    /// Credential refusals (expired, malformed, forged, another user's), in all.
    pub auth_failures_total: AtomicU64,
    refusals: [AtomicU64; Refusal::ALL.len()],
    /// Live allocations in all, and per user.
    live_total: AtomicUsize,
    live: Mutex<HashMap<i64, usize>>,
    /// The last time (ms) the relay refused each user's credentials.
    auth_failed_at: Mutex<HashMap<i64, i64>>,
    /// The last time (ms) each user allocated.
    allocated_at: Mutex<HashMap<i64, i64>>,
}

impl RelayStats {
    pub fn refused(&self, why: Refusal) {
        self.refusals[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals so far, by reason.
    pub fn refusals(&self) -> Vec<(Refusal, u64)> {
        Refusal::ALL.iter().map(|r| (*r, self.refusals[r.index()].load(Ordering::Relaxed))).collect()
    }

    /// Credentials refused; `user` is whoever the username names, even if expired, so operators
    /// (and the call's outcome) can tell whose relay failed.
    pub fn auth_failed(&self, user: Option<i64>) {
        self.auth_failures_total.fetch_add(1, Ordering::Relaxed);
        if let Some(u) = user {
            self.auth_failed_at.lock().unwrap_or_else(|p| p.into_inner()).insert(u, crate::store::now_ms());
        }
    }

    /// When the relay last refused this user's credentials, if ever.
    pub fn last_auth_failure(&self, user: i64) -> Option<i64> {
        self.auth_failed_at.lock().unwrap_or_else(|p| p.into_inner()).get(&user).copied()
    }

    /// When this user last allocated, if ever.
    pub fn last_allocation(&self, user: i64) -> Option<i64> {
        self.allocated_at.lock().unwrap_or_else(|p| p.into_inner()).get(&user).copied()
    }

    /// Allocations live now.
    pub fn live_allocations(&self) -> usize {
        self.live_total.load(Ordering::Relaxed)
    }

    /// One of `user`'s allocation slots, unless the user already holds `max`.
    pub fn take_slot(self: &Arc<Self>, user: i64, max: usize) -> Option<Slot> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let held = live.entry(user).or_insert(0);
        if *held >= max {
            return None;
        }
        *held += 1;
        self.live_total.fetch_add(1, Ordering::Relaxed);
        Some(Slot { stats: self.clone(), user })
    }

    /// An allocation was made with `slot`.
    pub fn allocated(&self, slot: &Slot) {
        self.allocations_total.fetch_add(1, Ordering::Relaxed);
        self.allocated_at.lock().unwrap_or_else(|p| p.into_inner()).insert(slot.user, crate::store::now_ms());
    }
}

/// One allocation's place in its user's quota; dropping it gives the place back.
pub struct Slot {
    stats: Arc<RelayStats>,
    user: i64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut live = self.stats.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = live.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                live.remove(&self.user);
            }
        }
        self.stats.live_total.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_given_back_when_dropped() {
        let stats = Arc::new(RelayStats::default());
        let a = stats.take_slot(1, 2);
        let b = stats.take_slot(1, 2);
        assert!(a.is_some() && b.is_some());
        assert!(stats.take_slot(1, 2).is_none(), "at the quota");
        assert!(stats.take_slot(2, 2).is_some(), "another user is not affected");
        assert_eq!(stats.live_allocations(), 2);
        drop(a);
        assert_eq!(stats.live_allocations(), 1);
        assert!(stats.take_slot(1, 2).is_some());
    }
}
