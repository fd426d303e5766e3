//! What the relay has done, for metrics and for telling "TURN refused you" from other failures;
//! and the per-user allocation quota (a [`Quota`]), whose slots are held by the allocations
//! themselves so that an allocation however it ends (deleted, expired, its TCP connection gone,
//! the server closing) gives its slot back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use crate::quota::Slot;
use crate::quota::Quota;

/// Ports one user may hold reserved at once. A reservation is for the RTCP port beside an RTP
/// one (RFC 8656 section 7.2); browsers never ask, and a client cycling Allocate and Refresh 0
/// must not pin ports for 30 s each beyond its quota.
pub const MAX_RESERVATIONS_PER_USER: usize = 4;

/// How long the last-failure and last-allocation marks of a user are kept.
const MARKS_KEPT_MS: i64 = 24 * 3600 * 1000;

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
    /// Live allocations and reserved ports, each holding one of its user's slots.
    slots: Arc<Quota>,
    /// Reserved ports (EVEN-PORT with R), at most [`MAX_RESERVATIONS_PER_USER`] a user.
    reservations: Arc<Quota>,
    /// The last time (ms) the relay refused each user's credentials.
    auth_failed_at: Mutex<HashMap<i64, i64>>,
    /// The last time (ms) each user allocated.
    allocated_at: Mutex<HashMap<i64, i64>>,
}

impl RelayStats {
    /// Counters at zero, and a quota of `max_per_user` allocations per user.
    pub fn new(max_per_user: usize) -> Self {
        RelayStats {
            allocations_total: AtomicU64::new(0),
            relayed_bytes: AtomicU64::new(0),
            denied_peer_packets: AtomicU64::new(0),
            auth_failures_total: AtomicU64::new(0),
            refusals: Default::default(),
            slots: Quota::new(max_per_user),
            reservations: Quota::new(MAX_RESERVATIONS_PER_USER),
            auth_failed_at: Mutex::default(),
            allocated_at: Mutex::default(),
        }
    }

    pub fn refused(&self, why: Refusal) {
        self.refusals[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals so far, by reason.
    pub fn refusals(&self) -> Vec<(Refusal, u64)> {
        Refusal::ALL.iter().map(|r| (*r, self.refusals[r.index()].load(Ordering::Relaxed))).collect()
    }

    /// Credentials refused; `user` is whom a username this server issued names (its signature
    /// checked, its time run out), so the call's outcome can tell whose relay failed. A claim
    /// the relay cannot verify is counted, never kept.
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
        self.slots.held()
    }

    /// The most allocations one user may hold.
    pub fn max_per_user(&self) -> usize {
        self.slots.max_per_user()
    }

    /// One of `user`'s allocation slots, unless the user already holds the most allowed.
    pub fn take_slot(&self, user: i64) -> Option<Slot> {
        self.slots.take(user)
    }

    /// One of `user`'s few reservation slots (it goes with a quota slot).
    pub fn take_reservation(&self, user: i64) -> Option<Slot> {
        self.reservations.take(user)
    }

    /// Forgets marks older than a day, so the maps hold only users active lately.
    pub fn forget_old_marks(&self) {
        let before = crate::store::now_ms() - MARKS_KEPT_MS;
        self.auth_failed_at.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, t| *t >= before);
        self.allocated_at.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, t| *t >= before);
    }

    /// Users with a mark kept (for tests of the bound).
    pub fn marked_users(&self) -> usize {
        self.auth_failed_at.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// An allocation was made with `slot`.
    pub fn allocated(&self, slot: &Slot) {
        self.allocations_total.fetch_add(1, Ordering::Relaxed);
        self.allocated_at.lock().unwrap_or_else(|p| p.into_inner()).insert(slot.user_id(), crate::store::now_ms());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_given_back_when_dropped() {
        let stats = RelayStats::new(2);
        let a = stats.take_slot(1);
        let b = stats.take_slot(1);
        assert!(a.is_some() && b.is_some());
        assert!(stats.take_slot(1).is_none(), "at the quota");
        assert!(stats.take_slot(2).is_some(), "another user is not affected");
        assert_eq!(stats.live_allocations(), 2);
        drop(a);
        assert_eq!(stats.live_allocations(), 1);
        assert!(stats.take_slot(1).is_some());
    }
}
