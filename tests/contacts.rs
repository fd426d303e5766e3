//! PROTOCOL.md section 2.1, the contact list, over real HTTP and WebSockets: above
//! `DUET_DIRECTORY_FULL_MAX` accounts the 10000 list and presence follow the contact list; the
//! directory is searched; contacts are added and removed; calling or chatting makes contacts. And
//! the connection limits that became settings (section 7).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Server, ok, user};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn ids(list: &Value) -> Vec<i64> {
    list.as_array().unwrap().iter().map(|u| u["id"].as_i64().unwrap()).collect()
}

/// A client with a bearer token.
fn client(server: &Server, token: &str) -> common::Client {
    let mut c = server.client();
    c.token = Some(token.to_string());
    c
}

every_backend! {
    #[tokio::test]
    async fn above_the_threshold_lists_and_presence_follow_contacts() {
        let server = Server::start_with(&[("DUET_DIRECTORY_FULL_MAX", "2")]);
        let (alice, ta) = user(&server, "alice").await;
        let (bob, tb) = user(&server, "bob").await;
        let (carol, tc) = user(&server, "carol").await;
        let mut http = client(&server, &ta);

        // Three accounts, a threshold of two: alice's list is only herself.
        let mut a = server.ws(&ta).await;
        assert_eq!(ids(&http.get("/api/users").await.body), vec![alice]);

        // Others coming online are not announced to someone who does not have them.
        let mut b = server.ws(&tb).await;
        assert!(a.drain(Duration::from_millis(300)).await.iter().all(|f| f["code"] != 10006), "bob is not alice's contact");

        // The directory is searched by name, case-insensitively, with presence.
        let found = http.get("/api/users?q=CAR").await;
        assert_eq!(found.status, 200);
        assert_eq!(ids(&found.body), vec![carol]);
        assert_eq!(found.body[0]["status"], "offline");
        assert_eq!(ids(&http.get("/api/users?q=o&limit=1").await.body).len(), 1);
        assert_eq!(http.get("/api/users?q=o&limit=zero").await.error(), "invalid_input");
        assert_eq!(http.get("/api/users?q=o&limit=0").await.error(), "invalid_input");

        // Adding a contact: 204, a fresh 10000 on every tab, and their presence from now on.
        let add = http.send(reqwest::Method::PUT, &format!("/api/contacts/{carol}"), None).await;
        assert_eq!(add.status, 204, "{}", add.body);
        let fresh = a.wait_for(10000).await;
        assert_eq!(ids(&fresh["data"]), vec![alice, carol]);
        let c = server.ws(&tc).await;
        let online = a.wait_for(10006).await;
        assert_eq!(online["data"]["id"], carol);
        // Adding is one way: carol did not add alice, so carol hears nothing of alice.
        assert_eq!(ids(&client(&server, &tc).get("/api/users").await.body), vec![carol]);
        c.close().await;
        assert_eq!(a.wait_for(10008).await["data"]["id"], carol);

        // Unknown users are refused by name.
        assert_eq!(http.send(reqwest::Method::PUT, "/api/contacts/999999", None).await.error(), "unknown_user");
        assert_eq!(http.send(reqwest::Method::PUT, "/api/contacts/nope", None).await.error(), "unknown_user");

        // Removing takes the hand-made contact back.
        let del = http.send(reqwest::Method::DELETE, &format!("/api/contacts/{carol}"), None).await;
        assert_eq!(del.status, 204);
        assert_eq!(ids(&a.wait_for(10000).await["data"]), vec![alice]);

        // A call, even unanswered, makes the two contacts both ways, and each hears the other.
        let invite = a.request(json!({"method": "Call/Invite", "toId": bob, "data": {"media": {"audio": true, "video": false}}}), 2).await;
        let call_id = ok(&invite)["callId"].as_str().unwrap().to_string();
        b.wait_for(10012).await;
        assert_eq!(ids(&http.get("/api/users").await.body), vec![alice, bob]);
        assert_eq!(ids(&client(&server, &tb).get("/api/users").await.body), vec![alice, bob]);
        ok(&a.request(json!({"method": "Call/Cancel", "data": {"callId": call_id}}), 3).await);
        // ... and stays one after removing (people one has called stay contacts).
        assert_eq!(http.send(reqwest::Method::DELETE, &format!("/api/contacts/{bob}"), None).await.status, 204);
        assert_eq!(ids(&http.get("/api/users").await.body), vec![alice, bob]);
        b.close().await;
        assert_eq!(a.wait_for(10008).await["data"]["id"], bob);

        // Chatting one to one makes contacts too; it survives a restart (it is stored).
        let mut c = server.ws(&tc).await;
        ok(&c.request(json!({"method": "Message/Send", "toId": alice, "message": "hi alice"}), 4).await);
        let frames = a.drain(Duration::from_millis(500)).await;
        assert!(frames.iter().any(|f| f["code"] == 10005 && f["data"]["fromId"] == carol), "{frames:?}");
        assert!(frames.iter().any(|f| f["code"] == 10006 && f["data"]["id"] == carol), "carol is alice's contact now, and online: {frames:?}");
        drop((a, c));
        let mut server = server;
        server.restart();
        let mut http = client(&server, &ta);
        assert_eq!(ids(&http.get("/api/users").await.body), vec![alice, bob, carol]);
    }

    #[tokio::test]
    async fn a_small_directory_is_everyones_contact_list() {
        let server = Server::start();
        let (alice, ta) = user(&server, "alice").await;
        let (bob, tb) = user(&server, "bob").await;
        let mut a = server.ws(&ta).await;
        let _b = server.ws(&tb).await;
        assert_eq!(a.wait_for(10006).await["data"]["id"], bob);
        assert_eq!(ids(&client(&server, &ta).get("/api/users").await.body), vec![alice, bob]);
        // Search works the same in a small directory.
        assert_eq!(ids(&client(&server, &ta).get("/api/users?q=bo").await.body), vec![bob]);
    }

    #[tokio::test]
    async fn connection_caps_and_rates_are_settings() {
        let server = Server::start_with(&[("DUET_WS_MAX_PER_USER", "2"), ("DUET_WS_RATE_PER_SEC", "5"), ("DUET_WS_RATE_BURST", "5")]);
        let (_, token) = user(&server, "alice").await;
        let url = format!("{}?token={token}", server.ws_url());
        let _one = server.ws(&token).await;
        let mut two = server.ws(&token).await;
        assert_eq!(common::ws_refused(&url, &[]).await, 429);
        // A burst of 5, then refusals.
        for i in 0..5 {
            two.send(json!({"method": "User/Ping", "seq": i})).await;
        }
        two.send(json!({"method": "User/Ping", "seq": 99})).await;
        let mut refused = false;
        for _ in 0..6 {
            let f = two.next().await;
            if f["code"] == 10003 && f["data"]["error"] == "rate_limited" {
                refused = true;
            }
        }
        assert!(refused, "the sixth frame of a burst of five is refused");
        // A slot comes back when a connection closes.
        two.close().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while common::ws_refused(&url, &[]).await != 101 {
            assert!(tokio::time::Instant::now() < deadline, "the closed connection's slot never came back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_is_closed_and_others_go_on() {
        let server = Server::start_with(&[("DUET_WS_SEND_QUEUE", "16"), ("DUET_WS_SEND_STALL_MS", "200"), ("DUET_WS_RATE_PER_SEC", "100000"), ("DUET_WS_RATE_BURST", "100000"), ("DUET_CHAT_PER_MINUTE", "100000"), ("DUET_CHAT_DAILY_MAX", "100000")]);
        let (_, t_stuck) = user(&server, "stuck").await;
        let (_, t_talker) = user(&server, "talker").await;
        let (_, t_reader) = user(&server, "reader").await;
        let stuck = server.ws(&t_stuck).await;
        let talker = server.ws(&t_talker).await;
        let mut reader = server.ws(&t_reader).await;
        // Those who read keep up: the reader reads all the time, and so does the talker (its acks).
        let reading = tokio::spawn(async move {
            let mut got = 0;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while got < 5000 && tokio::time::Instant::now() < deadline {
                got += reader.drain(Duration::from_millis(50)).await.iter().filter(|f| f["code"] == 10005).count();
            }
            got
        });
        let (mut tx, mut rx) = talker.socket.split();
        let acks = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
        // Lobby messages go to everyone; `stuck` reads none of them, until its socket and the
        // server's queue for it are full.
        let text = "x".repeat(4000);
        for i in 0..5000 {
            let frame = json!({"method": "Message/Send", "toId": 0, "message": text, "seq": i});
            tx.send(Message::Text(frame.to_string().into())).await.unwrap();
        }
        assert_eq!(reading.await.unwrap(), 5000, "a reading client gets every message");
        acks.abort();
        // The one that never read is closed with 1008 after the frames it could hold.
        let mut stuck = stuck;
        let code = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match stuck.socket.next().await {
                    Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => continue,
                    _ => return None,
                }
            }
        })
        .await
        .expect("closed in time");
        assert_eq!(code, Some(1008));
    }
}
