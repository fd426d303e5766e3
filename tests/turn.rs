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
    relay.send_to(b"to loopback", peer.local_addr().unwrap()).await.unwrap();
    let mut buf = [0u8; 64];
    assert!(tokio::time::timeout(Duration::from_millis(500), peer.recv_from(&mut buf)).await.is_err(), "loopback is denied by default");
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_user_holds_a_limited_number_of_allocations() {
    let server = Server::start_with(&[("DUET_TURN_SECRET", SECRET)]);
    let (_, ice) = ice_for(&server, "alice").await;
    let (username, credential) = turn_creds(&ice);
    let addr = relay_addr(&ice);
    let mut held = Vec::new();
    for _ in 0..10 {
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
