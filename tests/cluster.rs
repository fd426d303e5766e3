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

/// `Call/Invite` with a seq; returns the ack or error.
async fn invite(ws: &mut Ws, to: i64, seq: i64) -> Value {
    ws.request(json!({"method": "Call/Invite", "toId": to, "data": {"media": {"audio": true, "video": true}}}), seq).await
}

async fn act(ws: &mut Ws, method: &str, call_id: &str, seq: i64) -> Value {
    ws.request(json!({"method": method, "data": {"callId": call_id}}), seq).await
}

fn acked(v: &Value) -> &Value {
    assert_eq!(v["code"], 10002, "expected an ack: {v}");
    &v["data"]
}

fn error(v: &Value) -> &str {
    assert_eq!(v["code"], 10003, "expected an error: {v}");
    v["data"]["error"].as_str().unwrap()
}

/// Offer one way, answer back, a candidate each way, between two bound connections.
async fn signals_both_ways(a: &mut Ws, alice: i64, b: &mut Ws, bob: i64, id: &str, seq: i64) {
    let sdp = json!({"callId": id, "sdp": {"type": "offer", "sdp": format!("v=0 {seq}")}});
    acked(&a.request(json!({"method": "Message/Offer", "toId": bob, "data": sdp}), seq).await);
    assert_eq!(b.wait_for(10010).await["data"], json!({"fromId": alice, "callId": id, "data": sdp}));
    let answer = json!({"callId": id, "sdp": {"type": "answer", "sdp": format!("v=0 answer {seq}")}});
    acked(&b.request(json!({"method": "Message/Answer", "toId": alice, "data": answer}), seq).await);
    assert_eq!(a.wait_for(10011).await["data"]["data"], answer);
    let cand = json!({"candidate": {"candidate": "candidate:1 1 udp 2122260223 10.0.0.1 50000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}});
    // Without a callId too: the call is found from the sender, on either node.
    acked(&b.request(json!({"method": "Message/Candidate", "toId": alice, "data": cand}), seq + 1).await);
    assert_eq!(a.wait_for(10009).await["data"]["data"], cand);
    acked(&a.request(json!({"method": "Message/Candidate", "toId": bob, "data": cand}), seq + 1).await);
    assert_eq!(b.wait_for(10009).await["data"]["fromId"], alice);
}

async fn record(server: &Server, token: &str, id: &str) -> Value {
    let mut c = server.client();
    c.token = Some(token.to_string());
    c.get(&format!("/api/calls/{id}")).await.body
}

/// Waits until the call's record says `status`.
async fn recorded(server: &Server, token: &str, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = record(server, token, id).await;
        if r["status"] == status {
            return r;
        }
        assert!(Instant::now() < deadline, "call {id} never became {status}: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
#[cfg_attr(not(duet_test_redis), ignore = "skipped: DUET_TEST_REDIS_URL is not set")]
async fn a_call_across_nodes_rings_connects_signals_both_ways_and_ends() {
    let (n1, n2) = two_nodes(&redis_url());
    let (alice, ta) = user(&n1, "alice").await;
    let (bob, tb) = user(&n1, "bob").await;
    sees(&n1, 1).await;
    sees(&n2, 1).await;
    let mut a = n1.ws(&ta).await;
    let mut b = n2.ws(&tb).await;
    wait_about(&mut a, 10006, bob).await;
    let id = acked(&invite(&mut a, bob, 1).await)["callId"].as_str().unwrap().to_string();
    assert_eq!(a.wait_for(10013).await["data"], json!({"callId": id, "toId": bob}));
    let ring = b.wait_for(10012).await;
    assert_eq!((ring["data"]["callId"].clone(), ring["data"]["fromId"].clone()), (json!(id), json!(alice)));
    // Bob's accept, on node 2, reaches the call on node 1.
    assert_eq!(acked(&act(&mut b, "Call/Accept", &id, 1).await)["callId"], id.as_str());
    assert_eq!(a.wait_for(10014).await["data"], json!({"callId": id, "by": bob}));
    for round in 0..2 {
        signals_both_ways(&mut a, alice, &mut b, bob, &id, 10 + 2 * round).await;
        signals_both_ways(&mut b, bob, &mut a, alice, &id, 20 + 2 * round).await;
    }
    let n1_view = n1.admin().get("/api/admin/node").await.body;
    assert_eq!((n1_view["calls"].clone(), n1_view["cluster"]["ownedCalls"].clone()), (json!(1), json!(1)), "{n1_view}");
    assert_eq!(n2.admin().get("/api/admin/node").await.body["calls"], 0, "the call lives on node 1 only");
    // A report from node 2 is kept on the call; Bob hangs up from node 2.
    acked(&b.request(json!({"method": "Call/Report", "data": {"callId": id, "stats": {"iceState": "connected"}}}), 40).await);
    acked(&act(&mut b, "Call/Hangup", &id, 41).await);
    let ended = a.wait_for(10016).await;
    assert_eq!((ended["data"]["reason"].clone(), ended["data"]["by"].clone()), (json!("hangup"), json!(bob)));
    let r = recorded(&n2, &tb, &id, "completed").await;
    assert_eq!(r["endReason"], "hangup", "{r}");
    // Out of the directory: both can call again, the other way round this time.
    let again = acked(&invite(&mut b, alice, 50).await)["callId"].as_str().unwrap().to_string();
    assert_eq!(a.wait_for(10012).await["data"]["callId"], again.as_str());
    acked(&act(&mut a, "Call/Reject", &again, 51).await);
    assert_eq!(b.wait_for(10015).await["data"]["by"], alice);
    recorded(&n1, &ta, &again, "rejected").await;
}

#[tokio::test]
#[cfg_attr(not(duet_test_redis), ignore = "skipped: DUET_TEST_REDIS_URL is not set")]
async fn busy_and_glare_are_decided_once_for_the_whole_cluster() {
    let (n1, n2) = two_nodes(&redis_url());
    let (alice, ta) = user(&n1, "alice").await;
    let (bob, tb) = user(&n1, "bob").await;
    let (carol, tc) = user(&n1, "carol").await;
    sees(&n1, 1).await;
    sees(&n2, 1).await;
    let mut a = n1.ws(&ta).await;
    let mut b = n2.ws(&tb).await;
    let mut c = n2.ws(&tc).await;
    wait_about(&mut a, 10006, bob).await;
    wait_about(&mut a, 10006, carol).await;
    // Glare: Alice (node 1) invites Bob (node 2); Bob, ringing, invites Alice: one call, active.
    let id = acked(&invite(&mut a, bob, 1).await)["callId"].as_str().unwrap().to_string();
    b.wait_for(10012).await;
    let merged = acked(&invite(&mut b, alice, 1).await).clone();
    assert_eq!((merged["callId"].clone(), merged["merged"].clone()), (json!(id), json!(true)), "{merged}");
    assert_eq!(a.wait_for(10014).await["data"], json!({"callId": id, "by": bob}));
    recorded(&n2, &tb, &id, "active").await;
    signals_both_ways(&mut b, bob, &mut a, alice, &id, 10).await;
    // Busy: Carol, on node 2 with Bob, calls Alice, in the call on node 1; and Bob.
    assert_eq!(error(&invite(&mut c, alice, 1).await), "busy");
    let busy = c.wait_for(10017).await;
    assert_eq!(busy["data"]["toId"], alice);
    recorded(&n2, &tc, busy["data"]["callId"].as_str().unwrap(), "busy").await;
    assert_eq!(error(&invite(&mut c, bob, 2).await), "busy");
    // Already in a call: Bob, in the call owned by node 1, invites Carol from node 2.
    assert_eq!(error(&invite(&mut b, carol, 30).await), "already_in_call");
    // A second tab of Bob on node 1 is not bound: it cannot signal into the call.
    let mut b1 = n1.ws(&tb).await;
    let offer = json!({"method": "Message/Offer", "toId": alice, "data": {"callId": id, "sdp": {"type": "offer", "sdp": "v=0"}}});
    assert_eq!(error(&b1.request(offer, 1).await), "bad_state");
    acked(&act(&mut a, "Call/Hangup", &id, 40).await);
    assert_eq!(b.wait_for(10016).await["data"]["reason"], "hangup");
    // Free again everywhere.
    let next = acked(&invite(&mut c, alice, 3).await)["callId"].as_str().unwrap().to_string();
    assert_eq!(a.wait_for(10012).await["data"]["callId"], next.as_str());
}

#[tokio::test]
#[cfg_attr(not(duet_test_redis), ignore = "skipped: DUET_TEST_REDIS_URL is not set")]
async fn a_callee_with_devices_on_two_nodes_rings_on_both_and_answers_on_one() {
    let (n1, n2) = two_nodes(&redis_url());
    let (alice, ta) = user(&n1, "alice").await;
    let (bob, tb) = user(&n1, "bob").await;
    sees(&n1, 1).await;
    sees(&n2, 1).await;
    let mut a = n1.ws(&ta).await;
    let mut b1 = n1.ws(&tb).await;
    let mut b2 = n2.ws(&tb).await;
    wait_about(&mut a, 10006, bob).await;
    // Answered on node 2: node 1's device hears it was answered elsewhere.
    let id = acked(&invite(&mut a, bob, 1).await)["callId"].as_str().unwrap().to_string();
    b1.wait_for(10012).await;
    b2.wait_for(10012).await;
    acked(&act(&mut b2, "Call/Accept", &id, 1).await);
    assert_eq!(b1.wait_for(10018).await["data"], json!({"callId": id}));
    assert_eq!(error(&act(&mut b1, "Call/Accept", &id, 1).await), "bad_state", "the second answer loses");
    a.wait_for(10014).await;
    signals_both_ways(&mut a, alice, &mut b2, bob, &id, 10).await;
    acked(&act(&mut a, "Call/Hangup", &id, 20).await);
    b2.wait_for(10016).await;
    // Cancelled while ringing on both nodes: both devices hear it.
    let id = acked(&invite(&mut a, bob, 30).await)["callId"].as_str().unwrap().to_string();
    b1.wait_for(10012).await;
    b2.wait_for(10012).await;
    acked(&act(&mut a, "Call/Cancel", &id, 31).await);
    for ws in [&mut b1, &mut b2] {
        assert_eq!(ws.wait_for(10016).await["data"]["reason"], "cancelled");
    }
    recorded(&n2, &tb, &id, "cancelled").await;
}

#[tokio::test]
#[cfg_attr(not(duet_test_redis), ignore = "skipped: DUET_TEST_REDIS_URL is not set")]
async fn a_sigkilled_owners_call_is_taken_over_and_resumes_when_the_caller_reconnects_elsewhere() {
    let p = prefix();
    let redis = redis_url();
    let mut env1 = node_env(&p, "n1", &redis);
    env1.push(("DUET_RECONNECT_GRACE_MS".into(), "8000".into()));
    let mut env2 = node_env(&p, "n2", &redis);
    env2.push(("DUET_RECONNECT_GRACE_MS".into(), "8000".into()));
    let mut n1 = Server::start_with(&refs(&env1));
    let n2 = n1.another_node(&refs(&env2));
    let (alice, ta) = user(&n1, "alice").await;
    let (bob, tb) = user(&n1, "bob").await;
    sees(&n1, 1).await;
    sees(&n2, 1).await;
    let mut a = n1.ws(&ta).await;
    let mut b = n2.ws(&tb).await;
    wait_about(&mut a, 10006, bob).await;
    let id = acked(&invite(&mut a, bob, 1).await)["callId"].as_str().unwrap().to_string();
    b.wait_for(10012).await;
    acked(&act(&mut b, "Call/Accept", &id, 1).await);
    a.wait_for(10014).await;
    // Node 1, which owns the call and holds Alice, dies.
    n1.kill();
    wait_about(&mut b, 10008, alice).await;
    let node = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = n2.admin().get("/api/admin/node").await.body;
            if v["calls"] == 1 {
                break v;
            }
            assert!(Instant::now() < deadline, "node 2 never took the call over: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert_eq!(node["cluster"]["ownedCalls"], 1, "{node}");
    // Alice comes back, on node 2, within the grace: the call resumes there.
    let mut a2 = n2.ws(&ta).await;
    let active = &a2.welcome["data"]["activeCall"];
    assert_eq!((active["callId"].clone(), active["role"].clone(), active["state"].clone()), (json!(id), json!("caller"), json!("active")), "{}", a2.welcome);
    let connected = b.wait_for(10019).await;
    assert_eq!((connected["data"]["peerId"].clone(), connected["data"]["state"].clone()), (json!(alice), json!("connected")), "{connected}");
    signals_both_ways(&mut a2, alice, &mut b, bob, &id, 10).await;
    acked(&act(&mut b, "Call/Hangup", &id, 20).await);
    a2.wait_for(10016).await;
    recorded(&n2, &tb, &id, "completed").await;
}

#[tokio::test]
#[cfg_attr(not(duet_test_redis), ignore = "skipped: DUET_TEST_REDIS_URL is not set")]
async fn a_taken_over_call_ends_peer_lost_when_nobody_comes_back() {
    let p = prefix();
    let redis = redis_url();
    let mut env = node_env(&p, "n1", &redis);
    env.push(("DUET_RECONNECT_GRACE_MS".into(), "1500".into()));
    let mut n1 = Server::start_with(&refs(&env));
    env = node_env(&p, "n2", &redis);
    env.push(("DUET_RECONNECT_GRACE_MS".into(), "1500".into()));
    let n2 = n1.another_node(&refs(&env));
    let (_, ta) = user(&n1, "alice").await;
    let (bob, tb) = user(&n1, "bob").await;
    sees(&n2, 1).await;
    let mut a = n1.ws(&ta).await;
    let mut b = n2.ws(&tb).await;
    wait_about(&mut a, 10006, bob).await;
    let id = acked(&invite(&mut a, bob, 1).await)["callId"].as_str().unwrap().to_string();
    b.wait_for(10012).await;
    acked(&act(&mut b, "Call/Accept", &id, 1).await);
    a.wait_for(10014).await;
    n1.kill();
    let ended = b.wait_for(10016).await;
    assert_eq!(ended["data"]["reason"], "peer_lost", "{ended}");
    let r = recorded(&n2, &tb, &id, "failed").await;
    assert_eq!(r["endReason"], "peer_lost", "{r}");
    // Bob is free again.
    assert_eq!(n2.admin().get("/api/admin/node").await.body["cluster"]["ownedCalls"], 0);
}

#[tokio::test]
#[cfg_attr(not(duet_test_redis), ignore = "skipped: DUET_TEST_REDIS_URL is not set")]
async fn a_dead_non_owner_loses_its_party_and_the_call_resumes_when_they_reconnect() {
    let p = prefix();
    let redis = redis_url();
    let n1 = Server::start_with(&refs(&node_env(&p, "n1", &redis)));
    let mut n2 = n1.another_node(&refs(&node_env(&p, "n2", &redis)));
    let n3 = n1.another_node(&refs(&node_env(&p, "n3", &redis)));
    let (alice, ta) = user(&n1, "alice").await;
    let (bob, tb) = user(&n1, "bob").await;
    sees(&n1, 2).await;
    sees(&n3, 2).await;
    let mut a = n1.ws(&ta).await;
    let mut b = n2.ws(&tb).await;
    wait_about(&mut a, 10006, bob).await;
    let id = acked(&invite(&mut a, bob, 1).await)["callId"].as_str().unwrap().to_string();
    b.wait_for(10012).await;
    acked(&act(&mut b, "Call/Accept", &id, 1).await);
    a.wait_for(10014).await;
    // Bob's node dies: Alice hears her peer is reconnecting; Bob comes back on node 3.
    n2.kill();
    let lost = a.wait_for(10019).await;
    assert_eq!(lost["data"]["state"], "reconnecting", "{lost}");
    let mut b3 = n3.ws(&tb).await;
    assert_eq!(b3.welcome["data"]["activeCall"]["callId"], id.as_str(), "{}", b3.welcome);
    assert_eq!(a.wait_for(10019).await["data"]["state"], "connected");
    signals_both_ways(&mut a, alice, &mut b3, bob, &id, 10).await;
}

#[tokio::test]
#[cfg_attr(not(duet_test_redis), ignore = "skipped: DUET_TEST_REDIS_URL is not set")]
async fn redis_away_mid_call_refuses_cross_node_signaling_clearly_and_the_call_goes_on_after() {
    let redis = redis_url();
    let target: std::net::SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(common::db_proxy::host_port(&redis)).unwrap().next().unwrap();
    let proxy = DbProxy::start(target);
    let through = format!("redis://{}/", proxy.addr);
    let p = prefix();
    let n1 = Server::start_with(&refs(&node_env(&p, "n1", &through)));
    let n2 = n1.another_node(&refs(&node_env(&p, "n2", &through)));
    let (alice, ta) = user(&n1, "alice").await;
    let (bob, tb) = user(&n1, "bob").await;
    let (carol, tc) = user(&n1, "carol").await;
    sees(&n1, 1).await;
    sees(&n2, 1).await;
    let mut a = n1.ws(&ta).await;
    let mut b = n2.ws(&tb).await;
    let mut c = n1.ws(&tc).await;
    wait_about(&mut a, 10006, bob).await;
    let id = acked(&invite(&mut a, bob, 1).await)["callId"].as_str().unwrap().to_string();
    b.wait_for(10012).await;
    acked(&act(&mut b, "Call/Accept", &id, 1).await);
    a.wait_for(10014).await;

    // Redis goes away, for both nodes.
    proxy.cut();
    for n in [&n1, &n2] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while n.client().get("/readyz").await.body["cluster"] != "degraded" {
            assert!(Instant::now() < deadline, "{} never reported the cluster degraded", n.addr);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Signaling across is refused with a clear 10003 both ways, not acked and lost.
    let offer = json!({"callId": id, "sdp": {"type": "offer", "sdp": "v=0 lost?"}});
    let r = a.request(json!({"method": "Message/Offer", "toId": bob, "data": offer}), 5).await;
    assert_eq!(error(&r), "unavailable", "{r}");
    let r = b.request(json!({"method": "Message/Answer", "toId": alice, "data": offer}), 5).await;
    assert_eq!(error(&r), "unavailable", "{r}");
    // Node 1 still decides alone for the users it holds: Alice is in a call, so busy.
    assert_eq!(error(&invite(&mut c, alice, 1).await), "busy");
    proxy.restore();
    sees(&n1, 1).await;
    sees(&n2, 1).await;
    // The call went on: signaling crosses again, and nobody was dropped.
    signals_both_ways(&mut a, alice, &mut b, bob, &id, 20).await;
    signals_both_ways(&mut b, bob, &mut a, alice, &id, 30).await;
    assert_eq!(record(&n1, &ta, &id).await["status"], "active");
    // Bob is still in that call, for every node: busy.
    assert_eq!(error(&invite(&mut c, bob, 2).await), "busy");
    acked(&act(&mut a, "Call/Hangup", &id, 40).await);
    assert_eq!(b.wait_for(10016).await["data"]["reason"], "hangup");
    // The call's claims were released in Redis: Carol can now call Bob, across nodes.
    let next = acked(&invite(&mut c, bob, 3).await)["callId"].as_str().unwrap().to_string();
    assert_eq!(b.wait_for(10012).await["data"]["fromId"], carol);
    acked(&act(&mut c, "Call/Cancel", &next, 4).await);
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

#[tokio::test]
#[cfg_attr(not(duet_test_redis), ignore = "skipped: DUET_TEST_REDIS_URL is not set")]
async fn the_load_generator_runs_calls_and_relays_frames_across_two_nodes() {
    let (n1, n2) = two_nodes(&redis_url());
    sees(&n1, 1).await;
    sees(&n2, 1).await;
    let out = std::process::Command::new(common::duet_bin())
        .args(["loadtest", "--url", &n1.url, "--peer-url", &n2.url, "--database-url", &n1.database_url()])
        .args(["--users", "20", "--online", "4", "--hold-secs", "0"])
        .args(["--calls", "8", "--call-rate", "40", "--calls-live", "4"])
        .args(["--relay-pairs", "4", "--relay-rate", "200", "--relay-secs", "1", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "loadtest failed: {}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["peer_url"], n2.url.as_str(), "{r}");
    assert_eq!(r["connect"]["sockets"], 16, "{r}");
    assert_eq!(r["calls"]["completed"], 8, "{r}");
    assert_eq!(r["relay"]["frames_sent"], r["relay"]["frames_delivered"], "every candidate crosses: {r}");
    // Half the users were on each node, and the calls were owned by the callers' node.
    let calls: Value = n1.admin().get("/api/admin/node").await.body;
    assert!(calls["cluster"]["ownedCalls"].as_u64().unwrap() >= 4, "the relay pairs' calls live on node 1: {calls}");
}

#[tokio::test]
#[cfg_attr(not(duet_test_redis), ignore = "skipped: DUET_TEST_REDIS_URL is not set")]
async fn across_nodes_an_unanswered_call_is_missed_and_a_dropped_tab_resumes_on_the_other_node() {
    let p = prefix();
    let redis = redis_url();
    let timing = [("DUET_RING_TIMEOUT_MS", "600"), ("DUET_RECONNECT_GRACE_MS", "5000")];
    let mut env1 = node_env(&p, "n1", &redis);
    let mut env2 = node_env(&p, "n2", &redis);
    for (k, v) in timing {
        env1.push((k.into(), v.into()));
        env2.push((k.into(), v.into()));
    }
    let n1 = Server::start_with(&refs(&env1));
    let n2 = n1.another_node(&refs(&env2));
    let (alice, ta) = user(&n1, "alice").await;
    let (bob, tb) = user(&n1, "bob").await;
    sees(&n1, 1).await;
    sees(&n2, 1).await;
    let mut a = n1.ws(&ta).await;
    let mut b = n2.ws(&tb).await;
    wait_about(&mut a, 10006, bob).await;
    // Nobody answers: the owner's ring timer ends it as missed, on both nodes.
    let id = acked(&invite(&mut a, bob, 1).await)["callId"].as_str().unwrap().to_string();
    b.wait_for(10012).await;
    assert_eq!(a.wait_for(10016).await["data"]["reason"], "timeout");
    assert_eq!(b.wait_for(10016).await["data"]["reason"], "timeout");
    recorded(&n2, &tb, &id, "missed").await;
    // A call that connects; the callee's tab on node 2 drops and comes back on node 1 in the grace.
    let id = acked(&invite(&mut a, bob, 2).await)["callId"].as_str().unwrap().to_string();
    b.wait_for(10012).await;
    acked(&act(&mut b, "Call/Accept", &id, 3).await);
    a.wait_for(10014).await;
    b.close().await;
    assert_eq!(a.wait_for(10019).await["data"]["state"], "reconnecting");
    let mut b1 = n1.ws(&tb).await;
    assert_eq!(b1.welcome["data"]["activeCall"]["callId"], id.as_str(), "{}", b1.welcome);
    assert_eq!(b1.welcome["data"]["activeCall"]["role"], "callee", "{}", b1.welcome);
    assert_eq!(a.wait_for(10019).await["data"]["state"], "connected");
    signals_both_ways(&mut a, alice, &mut b1, bob, &id, 10).await;
    acked(&act(&mut b1, "Call/Hangup", &id, 20).await);
    assert_eq!(a.wait_for(10016).await["data"]["reason"], "hangup");
    recorded(&n1, &ta, &id, "completed").await;
}
