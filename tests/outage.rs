//! A database outage (issue 13): a TCP proxy the test controls sits between duet and a real
//! PostgreSQL or MariaDB, and is cut during a call and during chat, then restored. Live calls keep
//! signaling, chat that cannot be stored is refused (never acknowledged and lost), the call's
//! record lands terminal once the database is back, `/readyz` goes 503 and back to 200 with no
//! restart, and nothing answers a 5xx other than 503.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Server, Ws};
use serde_json::{Value, json};

const SETTINGS: &[(&str, &str)] = &[
    ("DUET_DATABASE_QUERY_TIMEOUT_MS", "1000"),
    ("DUET_DATABASE_CONNECT_TIMEOUT_MS", "500"),
    ("DUET_RING_TIMEOUT_MS", "60000"),
    ("DUET_RECONNECT_GRACE_MS", "60000"),
];

/// Polls `/readyz` until it answers `want`; returns when it did.
async fn readyz_becomes(server: &Server, want: u16, statuses: &mut Vec<(String, u16)>) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = server.client().get("/readyz").await.status;
        statuses.push(("/readyz".into(), status));
        if status == want {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "/readyz did not become {want}; last {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One signaling round both ways; the frames must arrive promptly, database or not.
async fn signal_both_ways(a: &mut Ws, b: &mut Ws, a_id: i64, b_id: i64, call: &str, round: i64) {
    let started = Instant::now();
    let offer = json!({"callId": call, "sdp": {"type": "offer", "sdp": format!("v=0 outage {round}")}});
    let ack = a.request(json!({"method": "Message/Offer", "toId": b_id, "data": offer}), 100 + round).await;
    assert_eq!(ack["code"], 10002, "{ack}");
    assert_eq!(b.wait_for(10010).await["data"]["data"], offer);
    let cand = json!({"callId": call, "candidate": {"candidate": format!("candidate:{round} 1 udp 2122260223 10.0.0.1 5000{round} typ host"), "sdpMid": "0", "sdpMLineIndex": 0}});
    let ack = b.request(json!({"method": "Message/Candidate", "toId": a_id, "data": cand}), 200 + round).await;
    assert_eq!(ack["code"], 10002, "{ack}");
    assert_eq!(a.wait_for(10009).await["data"]["data"], cand);
    assert!(started.elapsed() < Duration::from_millis(800), "signaling waited on something: {:?}", started.elapsed());
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// The database goes down: connections closed, new ones refused.
    Cut,
    /// The network drops everything: sockets stay open and silent.
    Stall,
}

async fn outage(backend: Backend, kind: Kind) {
    common::backends::use_backend(backend);
    let (server, proxy) = Server::start_through_proxy(SETTINGS);
    let mut statuses: Vec<(String, u16)> = Vec::new();
    let (alice, alice_token) = common::user(&server, "alice").await;
    let (bob, bob_token) = common::user(&server, "bob").await;
    let mut a = server.ws(&alice_token).await;
    let mut b = server.ws(&bob_token).await;
    let mut history = server.client();
    history.token = Some(alice_token.clone());

    // A call, up and signaling; a chat message stored before the outage.
    let ack = a.request(json!({"method": "Call/Invite", "toId": bob, "data": {"media": {"audio": true, "video": true}}}), 1).await;
    let call = ack["data"]["callId"].as_str().unwrap().to_string();
    b.wait_for(10012).await;
    assert_eq!(b.request(json!({"method": "Call/Accept", "data": {"callId": call}}), 1).await["code"], 10002);
    a.wait_for(10014).await;
    signal_both_ways(&mut a, &mut b, alice, bob, &call, 0).await;
    let before = a.request(json!({"method": "Message/Send", "toId": bob, "message": "before the outage"}), 2).await;
    assert_eq!(before["code"], 10002, "{before}");
    b.wait_for(10005).await;

    // The cut.
    let t0 = Instant::now();
    match kind {
        Kind::Cut => proxy.cut(),
        Kind::Stall => proxy.stall(),
    }
    let down_at = readyz_becomes(&server, 503, &mut statuses).await;

    // The live call keeps signaling, both ways, again and again.
    for round in 1..4 {
        signal_both_ways(&mut a, &mut b, alice, bob, &call, round).await;
    }
    // Chat is refused with a clear error, and the message reaches no one.
    let refused = a.request(json!({"method": "Message/Send", "toId": bob, "message": "during the outage"}), 3).await;
    assert_eq!(refused["code"], 10003, "{refused}");
    assert_eq!(refused["data"]["error"], "unavailable", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("database"), "{refused}");
    let seen: Vec<Value> = b.drain(Duration::from_millis(300)).await;
    assert!(seen.iter().all(|f| f["code"] != 10005), "a refused message was delivered: {seen:?}");
    // HTTP that needs the database answers 503 `unavailable`, saying why.
    for path in ["/api/calls", "/api/me", &format!("/api/messages?with={bob}")] {
        let answer = history.get(path).await;
        statuses.push((path.to_string(), answer.status));
        assert_eq!((answer.status, answer.error()), (503, "unavailable"), "{path}: {}", answer.body);
        assert!(answer.body["message"].as_str().unwrap().contains("database"), "{}", answer.body);
    }
    // A new WebSocket cannot be authenticated: 503 at the upgrade, not a socket that dies.
    let upgrade = common::ws_refused(&format!("{}?token={alice_token}", server.ws_url()), &[]).await;
    statuses.push(("/ws".into(), upgrade));
    assert_eq!(upgrade, 503);
    let login = server.client().post("/api/login", json!({"username": "alice", "password": "password123"})).await;
    statuses.push(("/api/login".into(), login.status));
    assert_eq!(login.status, 503, "{}", login.body);
    // The call ends while its record cannot be written: both parties hear it at once.
    let hangup = a.request(json!({"method": "Call/Hangup", "data": {"callId": call}}), 4).await;
    assert_eq!(hangup["code"], 10002, "{hangup}");
    assert_eq!(b.wait_for(10016).await["data"]["callId"], call.as_str());

    // The database comes back; duet recovers by itself, on the same process.
    let pid = server.pid();
    let t1 = Instant::now();
    proxy.restore();
    let up_at = readyz_becomes(&server, 200, &mut statuses).await;
    assert_eq!(server.pid(), pid);

    // The call's final record landed, terminal; chat works again; the refused message is nowhere.
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        let answer = history.get(&format!("/api/calls/{call}")).await;
        statuses.push(("/api/calls/{id}".into(), answer.status));
        if answer.status == 200 && answer.body["status"] == "completed" {
            break answer.body;
        }
        assert!(Instant::now() < deadline, "the call's record is not terminal: {} {}", answer.status, answer.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(record["endReason"], "hangup", "{record}");
    assert!(record["endedAt"].is_string() && record["answeredAt"].is_string(), "{record}");
    let after = a.request(json!({"method": "Message/Send", "toId": bob, "message": "after the outage"}), 5).await;
    assert_eq!(after["code"], 10002, "{after}");
    let messages = history.get(&format!("/api/messages?with={bob}")).await;
    let texts: Vec<&str> = messages.body.as_array().unwrap().iter().map(|m| m["message"].as_str().unwrap()).collect();
    assert_eq!(texts, ["after the outage", "before the outage"]);
    // A fresh call works.
    let ack = b.request(json!({"method": "Call/Invite", "toId": alice, "data": {"media": {"audio": true, "video": false}}}), 6).await;
    assert_eq!(ack["code"], 10002, "{ack}");

    // Operators see the outage in the metrics, and nothing left queued.
    let metrics = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    let name = format!("duet_database_unavailable_total{{backend=\"{}\"}}", if backend == Backend::Postgres { "postgres" } else { "mysql" });
    assert!(metrics.lines().any(|l| l.starts_with(&name)), "{name} in\n{metrics}");
    assert!(metrics.lines().any(|l| l == "duet_call_records_pending 0"), "{metrics}");

    let bad: Vec<_> = statuses.iter().filter(|(_, s)| *s >= 500 && *s != 503).collect();
    assert!(bad.is_empty(), "5xx other than 503: {bad:?}");
    eprintln!(
        "{backend:?} {kind:?} outage timeline: cut at 0 ms, /readyz 503 at {} ms, restored at {} ms, /readyz 200 at {} ms, call record terminal at {} ms",
        down_at.duration_since(t0).as_millis(),
        t1.duration_since(t0).as_millis(),
        up_at.duration_since(t0).as_millis(),
        t0.elapsed().as_millis()
    );
}

#[tokio::test]
#[cfg_attr(not(duet_test_postgres), ignore = "skipped: DUET_TEST_POSTGRES_URL is not set")]
async fn postgres_cut_off_loses_nothing_and_recovers_by_itself() {
    outage(Backend::Postgres, Kind::Cut).await;
}

#[tokio::test]
#[cfg_attr(not(duet_test_postgres), ignore = "skipped: DUET_TEST_POSTGRES_URL is not set")]
async fn postgres_behind_a_silent_network_is_noticed_within_the_timeouts() {
    outage(Backend::Postgres, Kind::Stall).await;
}

#[tokio::test]
#[cfg_attr(not(duet_test_mysql), ignore = "skipped: DUET_TEST_MYSQL_URL is not set")]
async fn mysql_cut_off_loses_nothing_and_recovers_by_itself() {
    outage(Backend::Mysql, Kind::Cut).await;
}

#[tokio::test]
#[cfg_attr(not(duet_test_mysql), ignore = "skipped: DUET_TEST_MYSQL_URL is not set")]
async fn mysql_behind_a_silent_network_is_noticed_within_the_timeouts() {
    outage(Backend::Mysql, Kind::Stall).await;
}
