//! Abuse limits (PROTOCOL.md section 7), each set low here through its setting: registrations
//! per address, open WebSockets per address, chat per minute and per day, invites to the same
//! person, call reports. Every refusal is clear, stores nothing, and touches no one else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, user};
use serde_json::{Value, json};

fn error(v: &Value) -> String {
    assert_eq!(v["code"], 10003, "an error: {v}");
    v["data"]["error"].as_str().unwrap_or_default().to_string()
}

fn ok(v: &Value) {
    assert_eq!(v["code"], 10002, "an ack: {v}");
}

#[tokio::test]
async fn registrations_are_limited_per_address_and_say_when_to_come_back() {
    let server = Server::start_with(&[("DUET_REGISTER_PER_HOUR", "3"), ("DUET_TRUSTED_PROXIES", "127.0.0.1")]);
    let register = |name: &str, from: Option<&str>| {
        let mut req = reqwest::Client::new().post(format!("{}/api/register", server.url)).json(&json!({"username": name, "password": "password123"}));
        if let Some(f) = from {
            req = req.header("X-Forwarded-For", f);
        }
        async move {
            let r = req.send().await.unwrap();
            let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            (r.status().as_u16(), retry, r.json::<Value>().await.unwrap())
        }
    };
    for name in ["ann", "ben", "cat"] {
        assert_eq!(register(name, Some("198.51.100.1")).await.0, 201);
    }
    let (status, retry, body) = register("dan", Some("198.51.100.1")).await;
    assert_eq!((status, body["error"].as_str()), (429, Some("rate_limited")), "{body}");
    assert!(retry.is_some_and(|s| s > 0 && s <= 3600), "Retry-After in seconds: {retry:?}");
    // Nothing was made: the name is free, and another client registers it.
    assert_eq!(register("dan", Some("198.51.100.2")).await.0, 201);
    // A refused name counts as well: a script trying names pays for each.
    for _ in 0..3 {
        assert_eq!(register("x", Some("198.51.100.3")).await.0, 400);
    }
    assert_eq!(register("eve", Some("198.51.100.3")).await.0, 429);
}

#[tokio::test]
async fn open_websockets_are_capped_per_address() {
    // Clients behind a proxy on this machine: loopback itself is exempt.
    let server = Server::start_with(&[("DUET_WS_MAX_PER_ADDRESS", "2"), ("DUET_TRUSTED_PROXIES", "127.0.0.1")]);
    let from = [("X-Forwarded-For", "198.51.100.7")];
    let (_, ta) = user(&server, "alice").await;
    let (_, tb) = user(&server, "bob").await;
    let (_, tc) = user(&server, "carol").await;
    let a = server.ws_with(&ta, &from).await;
    let _b = server.ws_with(&tb, &from).await;
    // Another user, but the same address: the third socket is refused before the upgrade.
    let status = common::ws_refused(&format!("{}?token={tc}", server.ws_url()), &from).await;
    assert_eq!(status, 429);
    // Another address, and the machine itself, are not affected.
    assert_eq!(common::ws_refused(&format!("{}?token={tc}", server.ws_url()), &[("X-Forwarded-For", "198.51.100.8")]).await, 101);
    assert_eq!(common::ws_refused(&format!("{}?token={tc}", server.ws_url()), &[]).await, 101);
    // A closed socket gives its place back.
    a.close().await;
    let mut placed = false;
    for _ in 0..50 {
        if common::ws_refused(&format!("{}?token={tc}", server.ws_url()), &from).await == 101 {
            placed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(placed, "the place was given back");
}

#[tokio::test]
async fn chat_is_limited_per_minute_and_refused_messages_are_not_stored() {
    let server = Server::start_with(&[("DUET_CHAT_PER_MINUTE", "3")]);
    let (_, ta) = user(&server, "alice").await;
    let (bob, tb) = user(&server, "bob").await;
    let mut a = server.ws(&ta).await;
    let mut b = server.ws(&tb).await;
    for i in 0..3 {
        ok(&a.request(json!({"method": "Message/Send", "toId": bob, "message": format!("hi {i}")}), i).await);
    }
    let r = a.request(json!({"method": "Message/Send", "toId": bob, "message": "one too many"}), 9).await;
    assert_eq!(error(&r), "rate_limited");
    assert!(r["message"].as_str().unwrap().contains("nothing was stored"), "{r}");
    let mut c = server.client();
    c.token = Some(ta.clone());
    let history = c.get(&format!("/api/messages?with={bob}")).await.body;
    assert_eq!(history.as_array().map(Vec::len), Some(3), "{history}");
    // Bob's own quota is his.
    let alice = a.welcome["data"]["user"]["id"].as_i64().unwrap();
    ok(&b.request(json!({"method": "Message/Send", "toId": alice, "message": "hello back"}), 1).await);
}

#[tokio::test]
async fn stored_chat_is_capped_per_day_and_a_restart_does_not_reset_the_count() {
    let mut server = Server::start_with(&[("DUET_CHAT_DAILY_MAX", "2")]);
    let (_, ta) = user(&server, "alice").await;
    let (bob, _) = user(&server, "bob").await;
    let mut a = server.ws(&ta).await;
    ok(&a.request(json!({"method": "Message/Send", "toId": bob, "message": "one"}), 1).await);
    ok(&a.request(json!({"method": "Message/Send", "toId": 0, "message": "two, to the lobby"}), 2).await);
    let r = a.request(json!({"method": "Message/Send", "toId": bob, "message": "three"}), 3).await;
    assert_eq!(error(&r), "rate_limited");
    assert!(r["message"].as_str().unwrap().contains("tomorrow"), "{r}");
    drop(a);
    server.restart();
    let mut a = server.ws(&ta).await;
    assert_eq!(error(&a.request(json!({"method": "Message/Send", "toId": bob, "message": "after a restart"}), 4).await), "rate_limited");
}

#[tokio::test]
async fn ringing_the_same_person_over_and_over_is_rate_limited() {
    let server = Server::start_with(&[("DUET_INVITES_PER_MINUTE", "2")]);
    let (_, ta) = user(&server, "alice").await;
    let (bob, tb) = user(&server, "bob").await;
    let (carol, tc) = user(&server, "carol").await;
    let mut a = server.ws(&ta).await;
    let mut b = server.ws(&tb).await;
    let _c = server.ws(&tc).await;
    let invite = json!({"method": "Call/Invite", "toId": bob, "data": {"media": {"audio": true, "video": false}}});
    for seq in [1, 3] {
        let r = a.request(invite.clone(), seq).await;
        ok(&r);
        b.wait_for(10012).await;
        ok(&a.request(json!({"method": "Call/Cancel", "data": {"callId": r["data"]["callId"]}}), seq + 1).await);
        b.wait_for(10016).await;
    }
    let r = a.request(invite.clone(), 5).await;
    assert_eq!(error(&r), "rate_limited");
    assert!(r["message"].as_str().unwrap().contains("too often"), "{r}");
    // Bob was not rung again, and Alice may still call someone else.
    let r = a.request(json!({"method": "Call/Invite", "toId": carol, "data": {"media": {"audio": true, "video": false}}}), 6).await;
    ok(&r);
    let more = b.drain(std::time::Duration::from_millis(200)).await;
    assert!(more.iter().all(|f| f["code"] != 10012), "{more:?}");
}

#[tokio::test]
async fn call_reports_are_limited_per_minute() {
    let server = Server::start_with(&[("DUET_CALL_REPORTS_PER_MINUTE", "2")]);
    let (_, ta) = user(&server, "alice").await;
    let (bob, tb) = user(&server, "bob").await;
    let mut a = server.ws(&ta).await;
    let mut b = server.ws(&tb).await;
    let r = a.request(json!({"method": "Call/Invite", "toId": bob, "data": {"media": {"audio": true, "video": false}}}), 1).await;
    let id = r["data"]["callId"].clone();
    b.wait_for(10012).await;
    ok(&b.request(json!({"method": "Call/Accept", "data": {"callId": id}}), 1).await);
    a.wait_for(10014).await;
    for seq in [2, 3] {
        ok(&a.request(json!({"method": "Call/Report", "data": {"callId": id, "stats": {"rttMs": seq}}}), seq).await);
    }
    assert_eq!(error(&a.request(json!({"method": "Call/Report", "data": {"callId": id, "stats": {"rttMs": 4}}}), 4).await), "rate_limited");
    // The call itself goes on.
    ok(&a.request(json!({"method": "Call/Hangup", "data": {"callId": id}}), 5).await);
}
