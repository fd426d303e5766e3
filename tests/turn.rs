//! The embedded STUN/TURN relay: real STUN binding requests and real TURN allocations with the
//! credentials the server hands out, refused when expired or forged; relay safety and quotas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::{Server, user};
use hmac::{Hmac, Mac};
use serde_json::Value;
use tokio::net::UdpSocket;
use webrtc_util::Conn;

const SECRET: &str = "test-turn-secret";

fn password(username: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    base64::prelude::BASE64_STANDARD.encode(mac.finalize().into_bytes())
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// `host:port` of the embedded relay, from the server's own ICE servers.
fn relay_addr(ice: &Value) -> String {
    let url = ice["iceServers"].as_array().unwrap().iter().flat_map(|s| s["urls"].as_array().unwrap()).find_map(|u| u.as_str().unwrap().strip_prefix("turn:")).unwrap();
    url.split('?').next().unwrap().to_string()
}

async fn turn_client(server_addr: &str, username: &str, password: &str) -> (turn::client::Client, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let client = turn::client::Client::new(turn::client::ClientConfig {
        stun_serv_addr: server_addr.to_string(),
        turn_serv_addr: server_addr.to_string(),
        username: username.to_string(),
        password: password.to_string(),
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 100,
        conn: Arc::new(socket),
        vnet: None,
    })
    .await
    .unwrap();
    client.listen().await.unwrap();
    (client, local)
}

async fn ice_for(server: &Server, name: &str) -> (i64, Value) {
    let (id, token) = user(server, name).await;
    let mut c = server.client();
    c.token = Some(token);
    let a = c.get("/api/ice-servers").await;
    assert_eq!(a.status, 200, "{}", a.body);
    (id, a.body)
}

fn turn_creds(ice: &Value) -> (String, String) {
    let s = ice["iceServers"].as_array().unwrap().iter().find(|s| s.get("username").is_some()).unwrap();
    (s["username"].as_str().unwrap().to_string(), s["credential"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn ice_servers_carry_short_lived_rest_credentials() {
    let server = Server::start_with(&[("DUET_TURN_SECRET", SECRET), ("DUET_TURN_CREDENTIAL_TTL_SECS", "600")]);
    let (id, ice) = ice_for(&server, "alice").await;
    assert_eq!(ice["ttlSeconds"], 600);
    let urls: Vec<&str> = ice["iceServers"].as_array().unwrap().iter().flat_map(|s| s["urls"].as_array().unwrap()).map(|u| u.as_str().unwrap()).collect();
    assert!(urls.iter().any(|u| u.starts_with("stun:127.0.0.1:")) && urls.iter().any(|u| u.starts_with("turn:127.0.0.1:")), "{urls:?}");
    let (username, credential) = turn_creds(&ice);
    let (expiry, who) = username.split_once(':').unwrap();
    assert_eq!(who, id.to_string());
    let expiry: u64 = expiry.parse().unwrap();
    assert!(expiry > now() + 590 && expiry <= now() + 601, "{expiry}");
    assert_eq!(credential, password(&username), "coturn's use-auth-secret scheme");
    // The welcome hands out the same kind.
    let (_, token) = user(&server, "bob").await;
    let ws = server.ws(&token).await;
    assert!(ws.welcome["data"]["iceServers"][1]["username"].as_str().unwrap().ends_with(":2"));
    assert_eq!(server.client().get("/api/ice-servers").await.status, 401);
}

#[tokio::test]
async fn a_stun_binding_request_gets_the_clients_address() {
    let server = Server::start_with(&[("DUET_TURN_SECRET", SECRET)]);
    let (_, ice) = ice_for(&server, "alice").await;
    let (client, local) = turn_client(&relay_addr(&ice), "", "").await;
    let mapped = client.send_binding_request().await.unwrap();
    assert_eq!(mapped, local, "XOR-MAPPED-ADDRESS is where the request came from");
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_turn_client_allocates_and_relays_both_ways() {
    let server = Server::start_with(&[("DUET_TURN_SECRET", SECRET)]);
    let (_, ice) = ice_for(&server, "alice").await;
    let (username, credential) = turn_creds(&ice);
    let (client, _) = turn_client(&relay_addr(&ice), &username, &credential).await;
    let relay = client.allocate().await.unwrap();
    let relayed_at = relay.local_addr().unwrap();
    assert_eq!(relayed_at.ip().to_string(), "127.0.0.1");
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    relay.send_to(b"hello through the relay", peer_addr).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(Duration::from_secs(3), peer.recv_from(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..n], b"hello through the relay");
    assert_eq!(from.port(), relayed_at.port(), "the peer sees the relay address");
    peer.send_to(b"and back", from).await.unwrap();
    let (n, from) = tokio::time::timeout(Duration::from_secs(3), relay.recv_from(&mut buf)).await.unwrap().unwrap();
    assert_eq!((&buf[..n], from), (&b"and back"[..], peer_addr));
    relay.close().await.unwrap();
    client.close().await.unwrap();
}

#[tokio::test]
async fn expired_and_forged_credentials_are_refused() {
    let server = Server::start_with(&[("DUET_TURN_SECRET", SECRET)]);
    let (id, ice) = ice_for(&server, "alice").await;
    let addr = relay_addr(&ice);
    let expired = format!("{}:{id}", now() - 10);
    let (client, _) = turn_client(&addr, &expired, &password(&expired)).await;
    assert!(client.allocate().await.is_err(), "expired credentials");
    client.close().await.unwrap();
    let future = format!("{}:{id}", now() + 600);
    let (client, _) = turn_client(&addr, &future, "forged-password").await;
    assert!(client.allocate().await.is_err(), "forged password");
    client.close().await.unwrap();
    let (client, _) = turn_client(&addr, "alice", &password("alice")).await;
    assert!(client.allocate().await.is_err(), "not a REST username");
    client.close().await.unwrap();
    // A correctly signed fresh username is accepted: the refusals were for the right reasons.
    let (client, _) = turn_client(&addr, &future, &password(&future)).await;
    assert!(client.allocate().await.is_ok());
    client.close().await.unwrap();
}

#[tokio::test]
async fn the_relay_does_not_reach_private_peers_unless_allowed() {
    let server = Server::start_with(&[("DUET_TURN_SECRET", SECRET), ("DUET_TURN_ALLOWED_PEERS", "")]);
    let (_, ice) = ice_for(&server, "alice").await;
    let (username, credential) = turn_creds(&ice);
    let (client, _) = turn_client(&relay_addr(&ice), &username, &credential).await;
    let relay = client.allocate().await.unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // The permission is refused (403), so the client knows; nothing reaches the peer.
    let sent = relay.send_to(b"to loopback", peer.local_addr().unwrap()).await;
    assert!(sent.is_err(), "loopback is denied by default: {sent:?}");
    let mut buf = [0u8; 64];
    assert!(tokio::time::timeout(Duration::from_millis(300), peer.recv_from(&mut buf)).await.is_err(), "loopback is denied by default");
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_user_holds_a_limited_number_of_allocations() {
    let server = Server::start_with(&[("DUET_TURN_SECRET", SECRET)]);
    let (_, ice) = ice_for(&server, "alice").await;
    let (username, credential) = turn_creds(&ice);
    let addr = relay_addr(&ice);
    let mut held = Vec::new();
    for _ in 0..duet::turn::MAX_ALLOCATIONS_PER_USER {
        let (client, _) = turn_client(&addr, &username, &credential).await;
        let relay = client.allocate().await.unwrap();
        held.push((client, relay));
    }
    let (client, _) = turn_client(&addr, &username, &credential).await;
    assert!(client.allocate().await.is_err(), "the eleventh allocation is refused");
    // Another user is not affected.
    let (_, other) = ice_for(&server, "bob").await;
    let (u2, c2) = turn_creds(&other);
    let (client2, _) = turn_client(&addr, &u2, &c2).await;
    assert!(client2.allocate().await.is_ok());
}

#[tokio::test]
async fn external_turn_urls_replace_the_embedded_relay() {
    let server = Server::start_with(&[("DUET_TURN_SECRET", SECRET), ("DUET_TURN_LISTEN", "off"), ("DUET_TURN_URLS", "stun:turn.example.com:3478, turn:turn.example.com:3478?transport=udp,turns:turn.example.com:5349")]);
    let (_, ice) = ice_for(&server, "alice").await;
    let servers = ice["iceServers"].as_array().unwrap();
    assert_eq!(servers[0]["urls"][0], "stun:turn.example.com:3478");
    assert_eq!(servers[1]["urls"].as_array().unwrap().len(), 2);
    let (username, credential) = turn_creds(&ice);
    assert_eq!(credential, password(&username), "coturn with the same secret accepts these");
    let off = Server::start_with(&[("DUET_TURN_LISTEN", "off")]);
    let (_, ice) = ice_for(&off, "bob").await;
    assert_eq!(ice["iceServers"], serde_json::json!([]));
}

#[tokio::test]
async fn a_chosen_turn_port_that_is_taken_stops_the_start() {
    let held = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::duet_bin())
        .args(["serve"])
        .env("DUET_LISTEN", "127.0.0.1:0")
        .env("DUET_DATABASE_URL", format!("sqlite://{}/d.db", dir.path().display()))
        .env("DUET_TURN_LISTEN", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot bind the TURN port"));
}

#[tokio::test]
async fn a_taken_default_turn_port_leaves_the_server_running_without_the_relay() {
    // Whoever holds udp 3478 (this test, or another server on this machine), it is taken.
    let _held = std::net::UdpSocket::bind("0.0.0.0:3478");
    // An empty value means the default, 0.0.0.0:3478.
    let server = Server::start_with(&[("DUET_TURN_LISTEN", "")]);
    let (_, ice) = ice_for(&server, "alice").await;
    assert_eq!(ice["iceServers"], serde_json::json!([]));
    assert!(server.log.lock().unwrap().iter().any(|l| l.contains("default TURN port is taken")));
}

mod wire {
    //! The relay at the byte level: what each refusal looks like, quotas that are given back,
    //! EVEN-PORT reservations, and TURN over TCP.
    use super::*;
    use common::stun_client::{self as sc, Client, error_code, is_success, text};
    use stun::attributes::*;
    use stun::message::*;

    fn relay(server: &Server, transport: &str) -> SocketAddr {
        server.turn_addr(transport).unwrap_or_else(|| panic!("no {transport} listener in {:?}", server.log.lock().unwrap()))
    }

    async fn metric(server: &Server, line: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
        text.lines().find_map(|l| l.strip_prefix(line)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
    }

    #[tokio::test]
    async fn refusals_are_error_responses_clients_can_read() {
        let server = Server::start_with(&[("DUET_TURN_SECRET", SECRET), ("DUET_ADMIN_TOKEN", "t")]);
        let at = relay(&server, "udp");
        let (user, pass) = sc::rest_credentials(SECRET, 1, 600);

        // No credentials: 401 with the realm and a nonce (RFC 8489 section 9.2.4).
        let mut c = Client::udp(at, &user, &pass).await;
        let first = c.exchange(c.build(METHOD_ALLOCATE, &[(ATTR_REQUESTED_TRANSPORT, vec![17, 0, 0, 0])], rand::random(), false)).await;
        assert_eq!(error_code(&first), Some(401));
        assert_eq!(text(&first, ATTR_REALM).as_deref(), Some("duet"));
        let nonce = text(&first, ATTR_NONCE).unwrap();
        assert!(!nonce.is_empty());

        // Expired, forged, not a REST username: 401 again, each with a fresh nonce, never 400.
        let expired = sc::rest_credentials(SECRET, 1, -5);
        let cases = [
            (expired.0.clone(), expired.1.clone()),
            (user.clone(), "forged-password".to_string()),
            ("alice".to_string(), sc::rest_password(SECRET, "alice")),
            (format!("{}:1", 99_999_999_999u64), "x".to_string()),
        ];
        for (u, p) in cases {
            let mut c = Client::udp(at, &u, &p).await;
            let a = c.allocate(&[]).await;
            assert_eq!(error_code(&a), Some(401), "{u}/{p}");
            assert!(text(&a, ATTR_NONCE).is_some_and(|n| !n.is_empty()), "a fresh nonce with the 401");
            assert!(!a.contains(ATTR_MESSAGE_INTEGRITY), "a 401 is not signed");
        }

        // A nonce the server never issued: 438 with a new one, after which the request passes.
        let mut c = Client::udp(at, &user, &pass).await;
        c.realm = Some("duet".into());
        c.nonce = Some("0000000000000fffdeadbeefdeadbeef".into());
        let a = c.exchange(c.build(METHOD_ALLOCATE, &[(ATTR_REQUESTED_TRANSPORT, vec![17, 0, 0, 0])], rand::random(), true)).await;
        assert_eq!(error_code(&a), Some(438));
        let ok = c.allocate(&[]).await;
        assert!(is_success(&ok), "{:?}", error_code(&ok));
        assert!(ok.contains(ATTR_MESSAGE_INTEGRITY) && ok.contains(ATTR_FINGERPRINT));
        assert!(ok.contains(ATTR_LIFETIME) && ok.contains(ATTR_XORMAPPED_ADDRESS));

        // A second Allocate on the same 5-tuple: 437; the same one retransmitted: the same answer.
        let again = c.allocate(&[]).await;
        assert_eq!(error_code(&again), Some(437));
        let tid: [u8; 12] = rand::random();
        let req = c.build(METHOD_REFRESH, &[(ATTR_LIFETIME, 600u32.to_be_bytes().to_vec())], tid, true);
        let r1 = c.exchange(req.clone()).await;
        assert!(is_success(&r1));

        // Another user's credentials on this allocation: 441.
        let (other, other_pass) = sc::rest_credentials(SECRET, 2, 600);
        let (mine_u, mine_p) = (c.username.clone(), c.password.clone());
        c.username = other;
        c.password = other_pass;
        assert_eq!(error_code(&c.refresh(600).await), Some(441));
        c.username = mine_u;
        c.password = mine_p;

        // Denied peers (private, link-local; loopback is allowed for tests): 403 on both.
        for peer in ["10.1.2.3:5000", "192.168.1.1:5000", "169.254.1.1:9"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let p = c.permit(peer).await;
            assert_eq!(error_code(&p), Some(403), "{peer}");
            assert!(text(&p, ATTR_ERROR_CODE).is_some());
            assert_eq!(error_code(&c.bind_channel(0x4001, peer).await), Some(403));
        }
        assert!(is_success(&c.permit("127.0.0.1:5000".parse().unwrap()).await));
        // Channel numbers out of range, and a channel bound twice to different peers: 400.
        assert_eq!(error_code(&c.bind_channel(0x3fff, "127.0.0.1:5000".parse().unwrap()).await), Some(400));
        assert!(is_success(&c.bind_channel(0x4002, "127.0.0.1:5000".parse().unwrap()).await));
        assert_eq!(error_code(&c.bind_channel(0x4002, "127.0.0.1:5001".parse().unwrap()).await), Some(400));

        // Bad Allocates on fresh 5-tuples: TCP relay 442, no transport 400, unknown attribute 420.
        let mut d = Client::udp(at, &user, &pass).await;
        assert_eq!(error_code(&d.request(METHOD_ALLOCATE, &[(ATTR_REQUESTED_TRANSPORT, vec![6, 0, 0, 0])]).await), Some(442));
        assert_eq!(error_code(&d.request(METHOD_ALLOCATE, &[]).await), Some(400));
        let u = d.allocate(&[(sc::ATTR_UNKNOWN_TEST, vec![1, 2, 3, 4])]).await;
        assert_eq!(error_code(&u), Some(420));
        assert_eq!(u.get(ATTR_UNKNOWN_ATTRIBUTES).unwrap(), vec![0x7f, 0xaa]);
        assert_eq!(error_code(&d.allocate(&[(ATTR_REQUESTED_ADDRESS_FAMILY, vec![2, 0, 0, 0])]).await), Some(440));
        assert_eq!(error_code(&d.allocate(&[(ATTR_RESERVATION_TOKEN, vec![9; 8])]).await), Some(508), "an unknown token");
        assert_eq!(error_code(&d.allocate(&[(ATTR_RESERVATION_TOKEN, vec![9; 8]), (ATTR_EVEN_PORT, vec![0])]).await), Some(400));
        assert_eq!(error_code(&d.refresh(600).await), Some(437), "no allocation here");
        // None of that cost anything: one live allocation, c's.
        assert_eq!(metric(&server, "duet_turn_allocations ").await, 1.0);

        // Every refusal is counted by reason.
        for (reason, at_least) in [
            ("no_credentials", 1.0),
            ("bad_credentials", 4.0),
            ("stale_nonce", 1.0),
            ("allocation_mismatch", 2.0),
            ("wrong_credentials", 1.0),
            ("forbidden_peer", 6.0),
            ("bad_request", 4.0),
            ("unsupported_transport", 1.0),
            ("unknown_attribute", 1.0),
            ("address_family", 1.0),
            ("insufficient_capacity", 1.0),
        ] {
            let n = metric(&server, &format!("duet_turn_refusals_total{{reason=\"{reason}\"}} ")).await;
            assert!(n >= at_least, "{reason}: {n}");
        }
    }

    #[tokio::test]
    async fn quota_slots_come_back_however_an_allocation_ends() {
        let server = Server::start_with(&[("DUET_TURN_SECRET", SECRET)]);
        let (udp, tcp) = (relay(&server, "udp"), relay(&server, "tcp"));
        let (user, pass) = sc::rest_credentials(SECRET, 7, 600);
        let mut held = Vec::new();
        const MAX: usize = duet::turn::MAX_ALLOCATIONS_PER_USER;
        for i in 0..MAX {
            // Half over TCP: a closed connection must give its slot back too.
            let mut c = if i % 2 == 0 { Client::udp(udp, &user, &pass).await } else { Client::tcp(tcp, &user, &pass).await };
            assert!(is_success(&c.allocate(&[]).await), "allocation {i}");
            held.push(c);
        }
        // At the quota: 486, again and again, and none of it is held against the user.
        for _ in 0..5 {
            let mut c = Client::udp(udp, &user, &pass).await;
            assert_eq!(error_code(&c.allocate(&[]).await), Some(486));
            let mut c = Client::udp(udp, &user, &pass).await;
            assert_eq!(error_code(&c.allocate(&[(ATTR_EVEN_PORT, vec![0x80])]).await), Some(486), "an RTP/RTCP pair too");
        }
        assert_eq!(metric(&server, "duet_turn_allocations ").await, MAX as f64);
        // Another user is not affected.
        let (u2, p2) = sc::rest_credentials(SECRET, 8, 600);
        assert!(is_success(&Client::udp(udp, &u2, &p2).await.allocate(&[]).await));

        // Deleted (lifetime 0) and closed (TCP connection gone): both slots come back.
        let mut first = held.remove(0);
        let gone = first.refresh(0).await;
        assert!(is_success(&gone) && gone.get(ATTR_LIFETIME).unwrap() == vec![0, 0, 0, 0]);
        drop(held.remove(0)); // a TCP one
        let mut waited = 0;
        let expected = (MAX - 2 + 1) as f64;
        while metric(&server, "duet_turn_allocations ").await != expected && waited < 50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += 1;
        }
        assert_eq!(metric(&server, "duet_turn_allocations ").await, expected, "the quota - 2 + the other user's");
        for _ in 0..2 {
            assert!(is_success(&Client::udp(udp, &user, &pass).await.allocate(&[]).await));
        }
        assert_eq!(error_code(&Client::udp(udp, &user, &pass).await.allocate(&[]).await), Some(486));
    }

    #[tokio::test]
    async fn even_port_reserves_the_next_port_for_its_token() {
        let server = Server::start_with(&[("DUET_TURN_SECRET", SECRET)]);
        let at = relay(&server, "udp");
        let (user, pass) = sc::rest_credentials(SECRET, 3, 600);
        let mut rtp = Client::udp(at, &user, &pass).await;
        let a = rtp.allocate(&[(ATTR_EVEN_PORT, vec![0x80]), (ATTR_DONT_FRAGMENT, vec![])]).await;
        let port = Client::relayed(&a).port();
        assert_eq!(port % 2, 0, "EVEN-PORT");
        let token = a.get(ATTR_RESERVATION_TOKEN).expect("the R bit asks for a reservation");
        assert_eq!(token.len(), 8);
        let mut rtcp = Client::udp(at, &user, &pass).await;
        let b = rtcp.allocate(&[(ATTR_RESERVATION_TOKEN, token.clone())]).await;
        assert_eq!(Client::relayed(&b).port(), port + 1, "the reserved port");
        let mut late = Client::udp(at, &user, &pass).await;
        assert_eq!(error_code(&late.allocate(&[(ATTR_RESERVATION_TOKEN, token)]).await), Some(508), "a token is good once");
        // Without the R bit: an even port and no token.
        let mut plain = Client::udp(at, &user, &pass).await;
        let c = plain.allocate(&[(ATTR_EVEN_PORT, vec![0x00])]).await;
        assert_eq!(Client::relayed(&c).port() % 2, 0);
        assert!(!c.contains(ATTR_RESERVATION_TOKEN));
    }

    #[tokio::test]
    async fn turn_over_tcp_relays_channel_data_and_indications() {
        let server = Server::start_with(&[("DUET_TURN_SECRET", SECRET)]);
        let at = relay(&server, "tcp");
        let (user, pass) = sc::rest_credentials(SECRET, 4, 600);
        let mut c = Client::tcp(at, &user, &pass).await;
        let relayed = Client::relayed(&c.allocate(&[]).await);
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peer_addr = peer.local_addr().unwrap();
        assert!(is_success(&c.bind_channel(0x4000, peer_addr).await));
        // Odd lengths: the stream framing pads ChannelData to 4 bytes both ways.
        c.channel_data(0x4000, b"hello").await;
        let mut buf = [0u8; 64];
        let (n, from) = tokio::time::timeout(Duration::from_secs(2), peer.recv_from(&mut buf)).await.unwrap().unwrap();
        assert_eq!((&buf[..n], from.port()), (&b"hello"[..], relayed.port()));
        peer.send_to(b"back!", from).await.unwrap();
        let frame = c.recv(Duration::from_secs(2)).await.unwrap();
        assert_eq!(&frame[..4], &[0x40, 0x00, 0x00, 0x05]);
        assert_eq!(frame.len(), 12, "padded");
        assert_eq!(&frame[4..9], b"back!");
        // A peer with a permission but no channel arrives as a Data indication.
        let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert!(is_success(&c.permit(other.local_addr().unwrap()).await));
        other.send_to(b"indicated", relayed).await.unwrap();
        let frame = c.recv(Duration::from_secs(2)).await.unwrap();
        let mut m = Message::new();
        m.raw = frame;
        m.decode().unwrap();
        assert_eq!(m.typ, MessageType::new(METHOD_DATA, CLASS_INDICATION));
        assert_eq!(m.get(ATTR_DATA).unwrap(), b"indicated");
        assert_eq!(sc::unxor(&m.get(ATTR_XOR_PEER_ADDRESS).unwrap(), &m.transaction_id.0), other.local_addr().unwrap());
        // A peer without permission is not relayed.
        let stranger = UdpSocket::bind("127.0.0.2:0").await.unwrap();
        stranger.send_to(b"unasked", relayed).await.unwrap();
        assert!(c.recv(Duration::from_millis(200)).await.is_none());
    }

    #[tokio::test]
    async fn an_allocation_outlives_the_credentials_it_was_made_with() {
        let server = Server::start_with(&[("DUET_TURN_SECRET", SECRET)]);
        let at = relay(&server, "udp");
        // Credentials that expire within two seconds: whole seconds, so one second could tick
        // over before the Allocate and refuse it.
        let (user, pass) = sc::rest_credentials(SECRET, 5, 2);
        let expiry: u64 = user.split(':').next().unwrap().parse().unwrap();
        let mut c = Client::udp(at, &user, &pass).await;
        assert!(is_success(&c.allocate(&[]).await));
        let now = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        tokio::time::sleep(Duration::from_secs(expiry).saturating_sub(now()) + Duration::from_millis(50)).await;
        // A long call keeps its relay: refreshes, permissions and channels still pass...
        assert!(is_success(&c.refresh(600).await));
        assert!(is_success(&c.permit("127.0.0.1:9".parse().unwrap()).await));
        // ...but the expired credentials make no new allocation, and a forged password on the
        // old allocation is still refused.
        let mut d = Client::udp(at, &user, &pass).await;
        assert_eq!(error_code(&d.allocate(&[]).await), Some(401));
        c.password = "forged".into();
        assert_eq!(error_code(&c.refresh(600).await), Some(401));
    }
}
