//! The request path as an attacker drives it, in process: forged and tampered requests straight
//! into [`Server::handle`], the answers read back from a stream link.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use stun::attributes::*;
use stun::message::*;
use tokio::sync::mpsc;

use super::Server;
use crate::turn::credentials::Credentials;
use crate::turn::link::{FiveTuple, Link, Transport};
use crate::turn::policy::PeerPolicy;
use crate::turn::stats::RelayStats;
use crate::turn::wire;

const SECRET: &str = "unit-secret";

struct Relay {
    server: Server,
    link: Link,
    answers: mpsc::Receiver<Vec<u8>>,
    five: FiveTuple,
}

fn relay() -> Relay {
    let credentials = Credentials::new(SECRET.into(), Duration::from_secs(600));
    let stats = Arc::new(RelayStats::new(4));
    let ip = "127.0.0.1".parse().unwrap();
    let server = Server::new(crate::turn::REALM, credentials, PeerPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]), ip, ip, stats);
    let (tx, answers) = mpsc::channel(64);
    let five = FiveTuple { client: "127.0.0.1:40000".parse().unwrap(), server: "127.0.0.1:3478".parse().unwrap(), transport: Transport::Tcp };
    Relay { server, link: Link::Stream(tx), answers, five }
}

impl Relay {
    async fn ask(&mut self, request: &[u8]) -> Message {
        self.server.handle(request, self.five, &self.link).await;
        let bytes = self.answers.try_recv().expect("every request is answered");
        wire::decode(&bytes).expect("the answer is STUN")
    }

    /// A fresh nonce, from the 401 to an unsigned request.
    async fn nonce(&mut self) -> String {
        let answer = self.ask(&request(METHOD_ALLOCATE, &[], None)).await;
        String::from_utf8(answer.get(ATTR_NONCE).unwrap()).unwrap()
    }
}

/// A request with `attrs`, signed as `(username, password, nonce)` when given.
fn request(method: Method, attrs: &[(AttrType, Vec<u8>)], sign: Option<(&str, &str, &str)>) -> Vec<u8> {
    let mut m = Message::new();
    m.typ = MessageType::new(method, CLASS_REQUEST);
    m.transaction_id = stun::agent::TransactionId(rand::random());
    m.write_header();
    for (t, v) in attrs {
        m.add(*t, v);
    }
    if let Some((username, password, nonce)) = sign {
        m.add(ATTR_USERNAME, username.as_bytes());
        m.add(ATTR_REALM, crate::turn::REALM.as_bytes());
        m.add(ATTR_NONCE, nonce.as_bytes());
        stun::integrity::MessageIntegrity::new_long_term_integrity(username.into(), crate::turn::REALM.into(), password.into()).add_to(&mut m).unwrap();
    }
    stun::fingerprint::FINGERPRINT.add_to(&mut m).unwrap();
    m.raw
}

fn code(m: &Message) -> Option<u16> {
    m.get(ATTR_ERROR_CODE).ok().map(|v| u16::from(v[2]) * 100 + u16::from(v[3]))
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// The attack: Allocate requests with a good nonce, a made-up MESSAGE-INTEGRITY and a username
/// naming any user. Each is refused and counted; none is kept under the user it names. Only a
/// username the relay issued (its signature right, its time run out) is put down to its user.
#[tokio::test]
async fn unverified_claims_keep_nothing_per_user() {
    let mut r = relay();
    let nonce = r.nonce().await;
    let transport = [(ATTR_REQUESTED_TRANSPORT, vec![17, 0, 0, 0])];
    for user in 1..=2000i64 {
        let username = format!("{}:{user}", if user % 2 == 0 { now() + 600 } else { now() - 600 });
        let answer = r.ask(&request(METHOD_ALLOCATE, &transport, Some((&username, "not-the-password", &nonce)))).await;
        assert_eq!(code(&answer), Some(401), "user {user}");
    }
    assert_eq!(r.server.stats.marked_users(), 0, "nothing kept for claims the relay cannot verify");
    assert_eq!(r.server.stats.auth_failures_total.load(std::sync::atomic::Ordering::Relaxed), 2000);
    // Credentials this relay issued, expired: that failure is the user's.
    let expired = format!("{}:77", now() - 5);
    let password = Credentials::new(SECRET.into(), Duration::from_secs(600)).password(&expired);
    let answer = r.ask(&request(METHOD_ALLOCATE, &transport, Some((&expired, &password, &nonce)))).await;
    assert_eq!(code(&answer), Some(401));
    assert!(r.server.stats.last_auth_failure(77).is_some());
    assert_eq!(r.server.stats.marked_users(), 1);
}

/// RFC 8489 section 14.5: a CreatePermission signed for one peer, with a second peer appended
/// after MESSAGE-INTEGRITY (and FINGERPRINT made again): only the signed peer is permitted.
#[tokio::test]
async fn a_peer_appended_after_message_integrity_is_not_permitted() {
    let mut r = relay();
    let nonce = r.nonce().await;
    let (username, password) = Credentials::new(SECRET.into(), Duration::from_secs(600)).issue(5);
    let sign = Some((username.as_str(), password.as_str(), nonce.as_str()));
    let allocated = r.ask(&request(METHOD_ALLOCATE, &[(ATTR_REQUESTED_TRANSPORT, vec![17, 0, 0, 0])], sign)).await;
    assert_eq!(allocated.typ.class, CLASS_SUCCESS_RESPONSE, "{:?}", code(&allocated));

    let honest: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let evil: SocketAddr = "127.0.0.66:6666".parse().unwrap();
    let mut m = Message::new();
    m.typ = MessageType::new(METHOD_CREATE_PERMISSION, CLASS_REQUEST);
    m.transaction_id = stun::agent::TransactionId(rand::random());
    m.write_header();
    let tid = m.transaction_id.0;
    m.add(ATTR_XOR_PEER_ADDRESS, &wire::xor_addr_value(honest, &tid));
    m.add(ATTR_USERNAME, username.as_bytes());
    m.add(ATTR_REALM, crate::turn::REALM.as_bytes());
    m.add(ATTR_NONCE, nonce.as_bytes());
    stun::integrity::MessageIntegrity::new_long_term_integrity(username.clone(), crate::turn::REALM.into(), password.clone()).add_to(&mut m).unwrap();
    m.add(ATTR_XOR_PEER_ADDRESS, &wire::xor_addr_value(evil, &tid));
    stun::fingerprint::FINGERPRINT.add_to(&mut m).unwrap();
    let answer = r.ask(&m.raw).await;
    assert_eq!(answer.typ.class, CLASS_SUCCESS_RESPONSE, "the signed part is a good request: {:?}", code(&answer));
    let alloc = r.server.allocations.get(&r.five).unwrap();
    assert!(alloc.permitted(honest.ip()));
    assert!(!alloc.permitted(evil.ip()), "the appended peer must be ignored");
}

/// An Allocate with EVEN-PORT's R bit reserves a second port; then Refresh 0, again and again.
/// Each reservation holds a slot of the quota and one of the user's few reservations, so the
/// cycle stops at the quota instead of pinning ports for 30 s each.
#[tokio::test]
async fn reservations_count_against_the_quota() {
    let mut r = relay();
    let nonce = r.nonce().await;
    let (username, password) = Credentials::new(SECRET.into(), Duration::from_secs(600)).issue(9);
    let sign = Some((username.as_str(), password.as_str(), nonce.as_str()));
    let even_r = [(ATTR_REQUESTED_TRANSPORT, vec![17, 0, 0, 0]), (ATTR_EVEN_PORT, vec![0x80])];
    let mut refused_at = None;
    for cycle in 0..20 {
        let a = r.ask(&request(METHOD_ALLOCATE, &even_r, sign)).await;
        if code(&a) == Some(486) {
            refused_at = Some(cycle);
            break;
        }
        assert_eq!(a.typ.class, CLASS_SUCCESS_RESPONSE, "cycle {cycle}: {:?}", code(&a));
        assert!(a.contains(ATTR_RESERVATION_TOKEN));
        let gone = r.ask(&request(METHOD_REFRESH, &[(ATTR_LIFETIME, vec![0, 0, 0, 0])], sign)).await;
        assert_eq!(gone.typ.class, CLASS_SUCCESS_RESPONSE);
    }
    // A quota of 4: three reservations leave one slot, too few for an allocation and its
    // reservation.
    assert_eq!(refused_at, Some(3), "the cycle stops at the quota");
    assert_eq!(r.server.allocations.reserved(), 3);
    assert_eq!(r.server.stats.live_allocations(), 3, "each reservation holds a slot");
    // A plain allocation still fits in what is left.
    let plain = r.ask(&request(METHOD_ALLOCATE, &[(ATTR_REQUESTED_TRANSPORT, vec![17, 0, 0, 0])], sign)).await;
    assert_eq!(plain.typ.class, CLASS_SUCCESS_RESPONSE, "{:?}", code(&plain));
}
