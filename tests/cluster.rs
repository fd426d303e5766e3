//! Several real `duet serve` processes on one database and the machine's Redis
//! (`DUET_TEST_REDIS_URL`): presence shared and announced once per user across nodes, chat and
//! the lobby to every connection on every node, a SIGKILLed node's users going offline on the
//! others, Redis cut (through a proxy the test controls) and back. Reported skipped without
//! `DUET_TEST_REDIS_URL`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{DbProxy, Server, Ws, user};
use serde_json::{Value, json};

fn redis_url() -> String {
    std::env::var("DUET_TEST_REDIS_URL").expect("DUET_TEST_REDIS_URL")
}

/// Settings of one node of the test's own cluster (its own key prefix, so tests do not meet).
fn node_env(prefix: &str, node: &str, redis: &str) -> Vec<(String, String)> {
    [
        ("DUET_REDIS_URL", redis.to_string()),
        ("DUET_REDIS_PREFIX", prefix.to_string()),
        ("DUET_NODE_ID", node.to_string()),
        ("DUET_CLUSTER_HEARTBEAT_MS", "100".to_string()),
        ("DUET_CLUSTER_NODE_EXPIRY_MS", "600".to_string()),
        ("DUET_ADMIN_TOKEN", common::ADMIN_TOKEN.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn prefix() -> String {
    format!("duet-test-{:08x}", rand::random::<u32>())
}

fn refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Two nodes on one database and cluster.
fn two_nodes(redis: &str) -> (Server, Server) {
    let p = prefix();
    let n1 = Server::start_with(&refs(&node_env(&p, "n1", redis)));
    let n2 = n1.another_node(&refs(&node_env(&p, "n2", redis)));
    (n1, n2)
}

/// Waits until `server`'s operator API says it sees `peers` other nodes, Redis answering.
async fn sees(server: &Server, peers: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = server.admin().get("/api/admin/node").await;
        if a.body["cluster"]["healthy"] == true && a.body["cluster"]["peers"].as_array().is_some_and(|p| p.len() == peers) {
            return a.body;
        }
        assert!(Instant::now() < deadline, "{} does not see {peers} peers: {}", server.addr, a.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The frames with `code` about user `id` among `frames`.
fn about(frames: &[Value], code: u64, id: i64) -> usize {
    frames.iter().filter(|f| f["code"] == code && (f["data"]["id"] == id || f["data"]["fromId"] == id)).count()
}

async fn wait_about(ws: &mut Ws, code: u64, id: i64) -> Value {
    loop {
        let f = ws.wait_for(code).await;
        if f["data"]["id"] == id || f["data"]["fromId"] == id {
            return f;
        }
    }
}

#[tokio::test]
#[cfg_attr(not(duet_test_redis), ignore = "skipped: DUET_TEST_REDIS_URL is not set")]
async fn presence_is_shared_and_announced_once_per_user_across_nodes() {
    let (n1, n2) = two_nodes(&redis_url());
    let (alice, ta) = user(&n1, "alice").await;
    let (bob, tb) = user(&n1, "bob").await;
    sees(&n1, 1).await;
    sees(&n2, 1).await;
    let mut a = n1.ws(&ta).await;
    // Bob on node 2: Alice, on node 1, hears he is online; his contact list shows her online.
    let b2 = n2.ws(&tb).await;
    wait_about(&mut a, 10006, bob).await;
    let mut c = n2.client();
    c.token = Some(tb.clone());
    let list = c.get("/api/users").await;
    let alice_there = list.body.as_array().unwrap().iter().find(|u| u["id"] == alice).cloned().unwrap();
    assert_eq!(alice_there["status"], "available", "{}", list.body);
    // A second tab of Bob, on node 1: no second 10006.
    let b1 = n1.ws(&tb).await;
    assert_eq!(about(&a.drain(Duration::from_millis(500)).await, 10006, bob), 0);
    // His node 2 tab goes: still online (node 1). The last goes: 10008 once.
    b2.close().await;
    assert_eq!(about(&a.drain(Duration::from_millis(500)).await, 10008, bob), 0, "still online on node 1");
    b1.close().await;
    wait_about(&mut a, 10008, bob).await;
    assert_eq!(about(&a.drain(Duration::from_millis(500)).await, 10008, bob), 0, "offline once");
    let node = n1.admin().get("/api/admin/node").await.body;
    assert_eq!(node["node"], "n1");
    assert_eq!(node["cluster"]["peers"], json!(["n2"]));
    let metrics = reqwest::get(format!("{}/metrics", n1.url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("duet_node_info{node=\"n1\"} 1") && metrics.contains("duet_cluster_nodes 2"), "{metrics}");
}

#[tokio::test]
#[cfg_attr(not(duet_test_redis), ignore = "skipped: DUET_TEST_REDIS_URL is not set")]
async fn chat_and_the_lobby_reach_every_connection_on_every_node_once() {
    let (n1, n2) = two_nodes(&redis_url());
    let (alice, ta) = user(&n1, "alice").await;
    let (bob, tb) = user(&n1, "bob").await;
    let (_carol, tc) = user(&n1, "carol").await;
    sees(&n1, 1).await;
    sees(&n2, 1).await;
    let mut a = n1.ws(&ta).await;
    let mut b1 = n1.ws(&tb).await;
    let mut b2 = n2.ws(&tb).await;
    let mut c = n2.ws(&tc).await;
    wait_about(&mut a, 10006, bob).await;
    let ack = a.request(json!({"method": "Message/Send", "toId": bob, "message": "across nodes", "fromId": alice}), 1).await;
    assert_eq!(ack["code"], 10002, "{ack}");
    for ws in [&mut b1, &mut b2] {
        let m = ws.wait_for(10005).await;
        assert_eq!((m["data"]["message"].clone(), m["data"]["fromId"].clone()), (json!("across nodes"), json!(alice)));
    }
    // Routed to Bob's nodes only: Carol, on node 2, gets nothing of it.
    let ack = a.request(json!({"method": "Message/Send", "toId": 0, "message": "hello lobby"}), 2).await;
    assert_eq!(ack["code"], 10002);
    for ws in [&mut b1, &mut b2, &mut c] {
        let frames = ws.drain(Duration::from_millis(600)).await;
        let texts: Vec<&Value> = frames.iter().filter(|f| f["code"] == 10005).map(|f| &f["data"]["message"]).collect();
        assert!(texts.iter().filter(|t| **t == "hello lobby").count() == 1, "the lobby once: {texts:?}");
        assert!(!texts.iter().any(|t| *t == "across nodes"), "no copies of the direct message: {texts:?}");
    }
    // A reply from node 2 reaches node 1.
    let ack = b2.request(json!({"method": "Message/Send", "toId": alice, "message": "back"}), 3).await;
    assert_eq!(ack["code"], 10002);
    assert_eq!(a.wait_for(10005).await["data"]["message"], "back");
}

#[tokio::test]
#[cfg_attr(not(duet_test_redis), ignore = "skipped: DUET_TEST_REDIS_URL is not set")]
async fn a_sigkilled_nodes_users_go_offline_on_the_others_within_the_expiry() {
    let p = prefix();
    let redis = redis_url();
    let n1 = Server::start_with(&refs(&node_env(&p, "n1", &redis)));
    let mut n2 = n1.another_node(&refs(&node_env(&p, "n2", &redis)));
    let n3 = n1.another_node(&refs(&node_env(&p, "n3", &redis)));
    let (_, ta) = user(&n1, "alice").await;
    let (bob, tb) = user(&n1, "bob").await;
    let (_, tc) = user(&n1, "carol").await;
    sees(&n1, 2).await;
    sees(&n3, 2).await;
    let mut a = n1.ws(&ta).await;
    let mut c = n3.ws(&tc).await;
    let _b = n2.ws(&tb).await;
    wait_about(&mut a, 10006, bob).await;
    wait_about(&mut c, 10006, bob).await;
    let killed = Instant::now();
    n2.kill();
    wait_about(&mut a, 10008, bob).await;
    wait_about(&mut c, 10008, bob).await;
    assert!(killed.elapsed() < Duration::from_secs(3), "offline after {:?} (expiry 600 ms)", killed.elapsed());
    sees(&n1, 1).await;
}

#[tokio::test]
#[cfg_attr(not(duet_test_redis), ignore = "skipped: DUET_TEST_REDIS_URL is not set")]
async fn redis_away_degrades_the_cluster_refuses_cross_node_chat_and_heals() {
    let redis = redis_url();
    let target: std::net::SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(common::db_proxy::host_port(&redis)).unwrap().next().unwrap();
    let proxy = DbProxy::start(target);
    let through = format!("redis://{}/", proxy.addr);
    let p = prefix();
    let n1 = Server::start_with(&refs(&node_env(&p, "n1", &through)));
    let n2 = n1.another_node(&refs(&node_env(&p, "n2", &redis)));
    let (alice, ta) = user(&n1, "alice").await;
    let (bob, tb) = user(&n1, "bob").await;
    sees(&n1, 1).await;
    let mut a = n1.ws(&ta).await;
    let mut b = n2.ws(&tb).await;
    wait_about(&mut a, 10006, bob).await;
    assert_eq!(n1.client().get("/readyz").await.body["cluster"], "ok");

    proxy.cut();
    let deadline = Instant::now() + Duration::from_secs(5);
    while n1.client().get("/readyz").await.body["cluster"] != "degraded" {
        assert!(Instant::now() < deadline, "node 1 never reported the cluster degraded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(n1.client().get("/readyz").await.status, 200, "still serving its own users");
    // Bob is on node 2, out of reach: refused with a clear 10003, not acked and lost.
    let refused = a.request(json!({"method": "Message/Send", "toId": bob, "message": "lost?"}), 1).await;
    assert_eq!(refused["code"], 10003, "{refused}");
    assert_eq!(refused["data"]["error"], "unavailable", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("another node"), "{refused}");
    // Node 2 sees node 1 stop heartbeating: Alice is offline there.
    wait_about(&mut b, 10008, alice).await;

    proxy.restore();
    sees(&n1, 1).await;
    // Healed: each sees the other again, and chat crosses.
    wait_about(&mut b, 10006, alice).await;
    let ack = a.request(json!({"method": "Message/Send", "toId": bob, "message": "healed"}), 2).await;
    assert_eq!(ack["code"], 10002, "{ack}");
    assert_eq!(b.wait_for(10005).await["data"]["message"], "healed");
}

#[tokio::test]
#[cfg_attr(not(duet_test_redis), ignore = "skipped: DUET_TEST_REDIS_URL is not set")]
async fn a_call_to_a_user_only_on_another_node_is_refused_clearly() {
    let (n1, n2) = two_nodes(&redis_url());
    let (_, ta) = user(&n1, "alice").await;
    let (bob, tb) = user(&n1, "bob").await;
    sees(&n1, 1).await;
    let mut a = n1.ws(&ta).await;
    let _b = n2.ws(&tb).await;
    wait_about(&mut a, 10006, bob).await;
    let r = a.request(json!({"method": "Call/Invite", "toId": bob, "data": {"media": {"audio": true, "video": false}}}), 1).await;
    assert_eq!(r["code"], 10003, "{r}");
    assert!(r["message"].as_str().unwrap().contains("another node"), "{r}");
}

#[tokio::test]
#[cfg_attr(not(duet_test_redis), ignore = "skipped: DUET_TEST_REDIS_URL is not set")]
async fn in_call_status_reaches_watchers_on_other_nodes() {
    let (n1, n2) = two_nodes(&redis_url());
    let (alice, ta) = user(&n1, "alice").await;
    let (carol, tc) = user(&n1, "carol").await;
    let (_, tb) = user(&n1, "bob").await;
    sees(&n1, 1).await;
    sees(&n2, 1).await;
    let mut b = n2.ws(&tb).await;
    let mut a = n1.ws(&ta).await;
    let mut c = n1.ws(&tc).await;
    wait_about(&mut b, 10006, alice).await;
    wait_about(&mut b, 10006, carol).await;
    // A call on node 1: Bob, on node 2, sees both in a call, then available again.
    let ack = a.request(json!({"method": "Call/Invite", "toId": carol, "data": {"media": {"audio": true, "video": false}}}), 1).await;
    let id = ack["data"]["callId"].as_str().expect("an invite ack").to_string();
    c.wait_for(10012).await;
    assert_eq!(c.request(json!({"method": "Call/Accept", "data": {"callId": id}}), 1).await["code"], 10002);
    let s = wait_about(&mut b, 10004, alice).await;
    assert_eq!(s["data"]["status"], "in_call", "{s}");
    assert_eq!(a.request(json!({"method": "Call/Hangup", "data": {"callId": id}}), 2).await["code"], 10002);
    loop {
        let s = wait_about(&mut b, 10004, alice).await;
        if s["data"]["status"] == "available" {
            break;
        }
    }
}
