//! The relay's whole request path (`src/turn/`): what one client sends, frame after frame,
//! through `Server::handle`, as a stream client. Each chunk of the input is a frame, sent as it
//! is or, when its flag says so, made into a request of a method the relay serves, with the
//! chunk's attributes and good credentials (a real nonce, a real MESSAGE-INTEGRITY), so the
//! fuzzer gets past the credential check into Allocate, Refresh, CreatePermission, ChannelBind
//! and Send. Whatever the bytes: no panic; every answer is STUN with a right FINGERPRINT and the
//! request's transaction id; the quota holds.
//!
//! Chunk: `[flags, len_hi, len_lo, bytes...]`. flags bit 0: build and sign; bit 1: user 2
//! instead of user 1; bits 2-3: one of four client ports (four 5-tuples).
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use duet::turn::credentials::Credentials;
use duet::turn::link::{FiveTuple, Link, Transport};
use duet::turn::policy::PeerPolicy;
use duet::turn::server::Server;
use duet::turn::stats::RelayStats;
use duet::turn::wire;
use libfuzzer_sys::fuzz_target;
use stun::attributes::*;
use stun::message::*;

const SECRET: &str = "fuzz-secret";
const QUOTA: usize = 3;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime"))
}

const METHODS: [Method; 6] = [METHOD_ALLOCATE, METHOD_REFRESH, METHOD_CREATE_PERMISSION, METHOD_CHANNEL_BIND, METHOD_BINDING, METHOD_SEND];

/// A request of the chunk's method with its attributes (type u16, length u8, value), signed.
fn signed(chunk: &[u8], username: &str, password: &str, nonce: &str) -> Vec<u8> {
    let Some((&pick, mut rest)) = chunk.split_first() else { return Vec::new() };
    let method = METHODS[usize::from(pick) % METHODS.len()];
    let class = if method == METHOD_SEND { CLASS_INDICATION } else { CLASS_REQUEST };
    let mut m = Message::new();
    m.typ = MessageType::new(method, class);
    m.transaction_id = stun::agent::TransactionId([pick; 12]);
    m.write_header();
    while rest.len() >= 3 {
        let typ = AttrType(u16::from_be_bytes([rest[0], rest[1]]));
        let len = usize::from(rest[2]).min(rest.len() - 3);
        m.add(typ, &rest[3..3 + len]);
        rest = &rest[3 + len..];
    }
    m.add(ATTR_USERNAME, username.as_bytes());
    m.add(ATTR_REALM, duet::turn::REALM.as_bytes());
    m.add(ATTR_NONCE, nonce.as_bytes());
    let _ = stun::integrity::MessageIntegrity::new_long_term_integrity(username.into(), duet::turn::REALM.into(), password.into()).add_to(&mut m);
    let _ = stun::fingerprint::FINGERPRINT.add_to(&mut m);
    m.raw
}

async fn run(data: &[u8]) {
    let credentials = Credentials::new(SECRET.into(), Duration::from_secs(600));
    let stats = Arc::new(RelayStats::new(QUOTA));
    let ip = "127.0.0.1".parse().expect("an address");
    let policy = PeerPolicy::new(vec!["127.0.0.0/8".parse().expect("a range")]);
    let server = Server::new(duet::turn::REALM, credentials.clone(), policy, ip, ip, stats.clone());
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let link = Link::Stream(tx);
    let five = |port: u16| FiveTuple { client: SocketAddr::new(ip, 40000 + port), server: SocketAddr::new(ip, 3478), transport: Transport::Tcp };
    // The nonce a client learns from its first 401.
    let mut hello = Message::new();
    hello.typ = MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST);
    hello.write_header();
    server.handle(&hello.raw, five(0), &link).await;
    let first = rx.try_recv().expect("a 401");
    let nonce = wire::decode(&first).and_then(|m| m.get(ATTR_NONCE).ok()).and_then(|n| String::from_utf8(n).ok()).expect("a nonce");
    let users = [credentials.issue(1), credentials.issue(2)];

    let mut rest = data;
    while rest.len() >= 3 {
        let flags = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let chunk = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let (username, password) = &users[usize::from(flags >> 1 & 1)];
        let frame = if flags & 1 == 1 { signed(chunk, username, password, &nonce) } else { chunk.to_vec() };
        server.handle(&frame, five(u16::from(flags >> 2 & 3)), &link).await;
        while let Ok(answer) = rx.try_recv() {
            let Some(m) = wire::decode(&answer) else { panic!("an answer that is not STUN: {answer:?}") };
            assert!(m.contains(ATTR_FINGERPRINT), "every answer carries FINGERPRINT");
            assert_eq!(&answer[8..20], &frame[8..20], "an answer to the request's transaction");
        }
        assert!(stats.live_allocations() <= 2 * QUOTA, "two users, {QUOTA} each");
    }
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(run(data));
});
