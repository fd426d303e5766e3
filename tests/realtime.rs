//! PROTOCOL.md sections 1, 3 and 7 over real WebSockets: authentication and origin, the welcome,
//! presence, chat, every refusal and limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Server, user, ws_refused};
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

every_backend! {
    #[tokio::test]
    async fn the_socket_needs_a_session_from_cookie_header_or_query() {
        let server = Server::start();
        let (_, token) = user(&server, "alice").await;
        let url = server.ws_url();
        assert_eq!(ws_refused(&url, &[]).await, 401);
        assert_eq!(ws_refused(&url, &[("Authorization", "Bearer nope")]).await, 401);
        assert_eq!(ws_refused(&format!("{url}?token=nope"), &[]).await, 401);
        assert_eq!(ws_refused(&url, &[("Cookie", &format!("duet_session={token}"))]).await, 101);
        assert_eq!(ws_refused(&url, &[("Authorization", &format!("Bearer {token}"))]).await, 101);
        assert_eq!(ws_refused(&format!("{url}?token={token}"), &[]).await, 101);
        // A stale cookie does not hide a valid token behind it.
        assert_eq!(ws_refused(&format!("{url}?token={token}"), &[("Cookie", "duet_session=stale")]).await, 101);
        assert_eq!(ws_refused(&url, &[("Cookie", "duet_session=stale"), ("Authorization", &format!("Bearer {token}"))]).await, 101);
        // A plain GET with a session is not an upgrade.
        let mut c = server.client();
        c.token = Some(token);
        let a = c.get("/ws").await;
        assert!(a.status >= 400 && a.status != 401, "{}", a.status);
    }

    #[tokio::test]
    async fn a_foreign_browser_origin_is_refused() {
        let server = Server::start_with(&[("DUET_ALLOWED_ORIGINS", "https://app.example.com")]);
        let (_, token) = user(&server, "alice").await;
        let url = format!("{}?token={token}", server.ws_url());
        assert_eq!(ws_refused(&url, &[("Origin", "https://evil.example.net")]).await, 403);
        assert_eq!(ws_refused(&url, &[("Origin", "null")]).await, 403);
        assert_eq!(ws_refused(&url, &[("Origin", &server.url)]).await, 101);
        assert_eq!(ws_refused(&url, &[("Origin", "https://app.example.com")]).await, 101);
        // No Origin at all: not a browser, allowed.
        assert_eq!(ws_refused(&url, &[]).await, 101);
    }

    #[tokio::test]
    async fn a_configured_public_url_is_the_only_own_origin() {
        let server = Server::start_with(&[("DUET_PUBLIC_URL", "https://duet.example.com")]);
        let (_, token) = user(&server, "alice").await;
        let url = format!("{}?token={token}", server.ws_url());
        assert_eq!(ws_refused(&url, &[("Origin", "https://duet.example.com")]).await, 101);
        assert_eq!(ws_refused(&url, &[("Origin", &server.url)]).await, 403);
    }

    #[tokio::test]
    async fn welcome_then_user_list() {
        let server = Server::start_with(&[("DUET_RING_TIMEOUT_MS", "1234"), ("DUET_RECONNECT_GRACE_MS", "5678")]);
        let (alice, token) = user(&server, "alice").await;
        let (bob, _) = user(&server, "bob").await;
        let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!("{}?token={token}", server.ws_url())).unwrap();
        req.headers_mut().insert("Origin", server.url.parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let first = match socket.next().await.unwrap().unwrap() {
            Message::Text(t) => serde_json::from_str::<serde_json::Value>(&t).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(first["code"], 10001);
        assert_eq!(first["type"], 0);
        let d = &first["data"];
        assert!(d["connectionId"].as_str().is_some_and(|s| !s.is_empty()));
        assert_eq!(d["user"]["id"], alice);
        assert_eq!(d["user"]["status"], "available");
        assert!(d["iceServers"].is_array());
        assert_eq!((d["ringTimeoutMs"].as_u64(), d["reconnectGraceMs"].as_u64()), (Some(1234), Some(5678)));
        assert!(d["activeCall"].is_null());
        let second = match socket.next().await.unwrap().unwrap() {
            Message::Text(t) => serde_json::from_str::<serde_json::Value>(&t).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(second["code"], 10000);
        let list = second["data"].as_array().unwrap();
        let status = |id: i64| list.iter().find(|u| u["id"] == id).unwrap()["status"].clone();
        assert_eq!(status(alice), "available");
        assert_eq!(status(bob), "offline");
    }

    #[tokio::test]
    async fn ping_connect_and_list() {
        let server = Server::start();
        let (_, token) = user(&server, "alice").await;
        let mut ws = server.ws(&token).await;
        let ack = ws.request(json!({"method": "User/Ping"}), 1).await;
        assert_eq!(ack["code"], 10002);
        assert!(ack["data"]["serverTime"].as_str().unwrap().ends_with('Z'));
        let ack = ws.request(json!({"method": "User/Connect", "type": 1, "fromId": ws.welcome["data"]["user"]["id"]}), 2).await;
        assert_eq!(ack["code"], 10002);
        ws.send(json!({"method": "User/List", "seq": 3})).await;
        let list = ws.next().await;
        assert_eq!(list["code"], 10000);
        assert_eq!(list["data"][0]["username"], "alice");
        assert_eq!(ws.next().await["data"]["seq"], 3);
        // Without seq there is no ack.
        ws.send(json!({"method": "User/Ping"})).await;
        assert!(ws.drain(Duration::from_millis(200)).await.is_empty());
    }

    #[tokio::test]
    async fn presence_is_once_per_user_not_per_tab() {
        let server = Server::start();
        let (alice, a_token) = user(&server, "alice").await;
        let (_, b_token) = user(&server, "bob").await;
        let mut bob = server.ws(&b_token).await;

        let tab1 = server.ws(&a_token).await;
        let online = bob.wait_for(10006).await;
        assert_eq!(online["data"]["id"], alice);
        assert_eq!(online["data"]["username"], "alice");
        assert_eq!(online["data"]["status"], "available");
        let tab2 = server.ws(&a_token).await;
        let mut http = server.client();
        http.token = Some(b_token.clone());
        let users = http.get("/api/users").await;
        let entry = users.body.as_array().unwrap().iter().find(|u| u["id"] == alice).unwrap().clone();
        assert_eq!(entry["status"], "available");

        tab1.close().await;
        let seen = bob.drain(Duration::from_millis(300)).await;
        assert!(seen.iter().all(|f| f["code"] != 10006 && f["code"] != 10008), "no flap for a second tab: {seen:?}");
        tab2.close().await;
        let offline = bob.wait_for(10008).await;
        assert_eq!(offline["data"], json!({"id": alice, "fromId": alice}));
        let users = http.get("/api/users").await;
        let entry = users.body.as_array().unwrap().iter().find(|u| u["id"] == alice).unwrap().clone();
        assert_eq!(entry["status"], "offline");
    }

    #[tokio::test]
    async fn a_ninth_connection_is_refused_with_429() {
        let server = Server::start();
        let (_, token) = user(&server, "alice").await;
        let mut open = Vec::new();
        for _ in 0..8 {
            open.push(server.ws(&token).await);
        }
        let url = format!("{}?token={token}", server.ws_url());
        assert_eq!(ws_refused(&url, &[]).await, 429);
        // Another user is not affected.
        let (_, other) = user(&server, "bob").await;
        server.ws(&other).await;
        // Closing one frees a slot.
        open.pop().unwrap().close().await;
        let mut ok = false;
        for _ in 0..20 {
            if ws_refused(&url, &[]).await == 101 {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ok, "a slot frees when a connection closes");
    }

    #[tokio::test]
    async fn one_to_one_chat_reaches_the_recipient_and_my_other_tabs() {
        let server = Server::start();
        let (alice, a_token) = user(&server, "alice").await;
        let (bob, b_token) = user(&server, "bob").await;
        let (_, c_token) = user(&server, "carol").await;
        let mut a1 = server.ws(&a_token).await;
        let mut a2 = server.ws(&a_token).await;
        let mut b1 = server.ws(&b_token).await;
        let mut b2 = server.ws(&b_token).await;
        let mut carol = server.ws(&c_token).await;

        let ack = a1.request(json!({"method": "Message/Send", "toId": bob, "message": "hi bob 👋", "fromId": alice}), 7).await;
        assert_eq!(ack["code"], 10002, "{ack}");
        let id = ack["data"]["id"].as_i64().unwrap();
        assert!(ack["data"]["sentAt"].as_str().is_some());
        for ws in [&mut b1, &mut b2, &mut a2] {
            let m = ws.wait_for(10005).await;
            assert_eq!(m["type"], 1);
            assert_eq!(m["data"]["id"], id);
            assert_eq!(m["data"]["fromId"], alice);
            assert_eq!(m["data"]["toId"], bob);
            assert_eq!(m["data"]["message"], "hi bob 👋");
            assert_eq!(m["data"]["username"], "alice");
        }
        let quiet = |frames: Vec<serde_json::Value>| frames.iter().all(|f| f["code"] != 10005);
        assert!(quiet(a1.drain(Duration::from_millis(200)).await), "not echoed to the sending tab");
        assert!(quiet(carol.drain(Duration::from_millis(50)).await), "not to third parties");

        // Unread until bob reads.
        let mut http = server.client();
        http.token = Some(b_token.clone());
        let unread = |body: &serde_json::Value| body.as_array().unwrap().iter().find(|u| u["id"] == alice).unwrap()["unread"].clone();
        assert_eq!(unread(&http.get("/api/users").await.body), 1);
        let ack = b1.request(json!({"method": "Message/Read", "toId": alice}), 1).await;
        assert_eq!(ack["code"], 10002);
        assert_eq!(unread(&http.get("/api/users").await.body), 0);
    }

    #[tokio::test]
    async fn lobby_chat_reaches_everyone_online() {
        let server = Server::start();
        let (_, a_token) = user(&server, "alice").await;
        let (_, b_token) = user(&server, "bob").await;
        let (_, c_token) = user(&server, "carol").await;
        let mut a1 = server.ws(&a_token).await;
        let mut a2 = server.ws(&a_token).await;
        let mut b = server.ws(&b_token).await;
        let mut c = server.ws(&c_token).await;
        let ack = a1.request(json!({"method": "Message/Send", "toId": 0, "message": "hello all"}), 1).await;
        assert_eq!(ack["code"], 10002);
        for ws in [&mut a2, &mut b, &mut c] {
            let m = ws.wait_for(10005).await;
            assert_eq!((m["data"]["toId"].as_i64(), m["data"]["message"].as_str()), (Some(0), Some("hello all")));
        }
        assert!(a1.drain(Duration::from_millis(200)).await.iter().all(|f| f["code"] != 10005));
    }

    #[tokio::test]
    async fn history_is_newest_first_and_paged() {
        let server = Server::start();
        let (alice, a_token) = user(&server, "alice").await;
        let (bob, b_token) = user(&server, "bob").await;
        let (carol, _) = user(&server, "carol").await;
        let mut a = server.ws(&a_token).await;
        let mut b = server.ws(&b_token).await;
        for i in 0..5 {
            a.request(json!({"method": "Message/Send", "toId": bob, "message": format!("a{i}")}), i).await;
            b.request(json!({"method": "Message/Send", "toId": alice, "message": format!("b{i}")}), i).await;
        }
        a.request(json!({"method": "Message/Send", "toId": carol, "message": "private to carol"}), 99).await;
        a.request(json!({"method": "Message/Send", "toId": 0, "message": "lobby"}), 100).await;

        let mut http = server.client();
        http.token = Some(b_token);
        let page = http.get(&format!("/api/messages?with={alice}&limit=4")).await;
        let texts: Vec<&str> = page.body.as_array().unwrap().iter().map(|m| m["message"].as_str().unwrap()).collect();
        assert_eq!(texts, ["b4", "a4", "b3", "a3"]);
        let last = page.body.as_array().unwrap().last().unwrap()["id"].as_i64().unwrap();
        let page = http.get(&format!("/api/messages?with={alice}&limit=50&before={last}")).await;
        let texts: Vec<&str> = page.body.as_array().unwrap().iter().map(|m| m["message"].as_str().unwrap()).collect();
        assert_eq!(texts, ["b2", "a2", "b1", "a1", "b0", "a0"]);
        let m = &page.body[0];
        assert!(m["sentAt"].as_str().unwrap().ends_with('Z') && m["fromId"] == bob && m["toId"] == alice);
        let lobby = http.get("/api/messages?with=0").await;
        assert_eq!(lobby.body.as_array().unwrap().len(), 1);
        assert_eq!(lobby.body[0]["message"], "lobby");
        // Bob cannot read alice's conversation with carol through any query.
        let other = http.get(&format!("/api/messages?with={carol}")).await;
        assert_eq!(other.body.as_array().unwrap().len(), 0);

        for (q, status, error) in [
            ("", 400, "missing_field"),
            ("?with=abc", 400, "invalid_input"),
            ("?with=-1", 400, "invalid_input"),
            ("?with=999999", 404, "not_found"),
            (&format!("?with={alice}&limit=x") as &str, 400, "invalid_input"),
            // Paging parameters are read the same on every list endpoint.
            (&format!("?with={alice}&limit=0") as &str, 400, "invalid_input"),
        ] {
            let a = http.get(&format!("/api/messages{q}")).await;
            assert_eq!((a.status, a.error()), (status, error), "{q}");
        }
        assert_eq!(server.client().get("/api/messages?with=0").await.status, 401);
    }

    #[tokio::test]
    async fn chat_refusals() {
        let server = Server::start();
        let (alice, a_token) = user(&server, "alice").await;
        let (bob, b_token) = user(&server, "bob").await;
        let mut a = server.ws(&a_token).await;
        let mut b = server.ws(&b_token).await;
        let long = "é".repeat(4001);
        let cases = [
            (json!({"method": "Message/Send", "toId": 424242, "message": "x"}), "unknown_user"),
            (json!({"method": "Message/Send", "toId": bob, "message": long}), "too_long"),
            (json!({"method": "Message/Send", "toId": bob}), "missing_field"),
            (json!({"method": "Message/Send", "message": "x"}), "missing_field"),
            (json!({"method": "Message/Send", "toId": bob, "message": 5}), "missing_field"),
            (json!({"method": "Message/Send", "toId": {"id": bob}, "message": "x"}), "missing_field"),
            (json!({"method": "Message/Send", "toId": bob, "message": "x", "fromId": bob}), "forbidden"),
            (json!({"method": "Message/Send", "toId": bob, "message": "x", "fromId": "someone"}), "forbidden"),
            (json!({"method": "Message/Read", "toId": 424242}), "unknown_user"),
            (json!({"method": "Message/Read"}), "missing_field"),
        ];
        for (i, (frame, error)) in cases.into_iter().enumerate() {
            let r = a.request(frame.clone(), i as i64).await;
            assert_eq!(r["code"], 10003, "{frame}: {r}");
            assert_eq!(r["data"]["error"], error, "{frame}");
            assert_eq!(r["data"]["method"], frame["method"]);
        }
        // Exactly 4000 characters is fine.
        let ok = a.request(json!({"method": "Message/Send", "toId": bob, "message": "é".repeat(4000)}), 50).await;
        assert_eq!(ok["code"], 10002);
        let delivered: Vec<_> = b.drain(Duration::from_millis(300)).await.into_iter().filter(|f| f["code"] == 10005).collect();
        assert_eq!(delivered.len(), 1, "only the valid message reached bob");
        let mut http = server.client();
        http.token = Some(b_token);
        assert_eq!(http.get(&format!("/api/messages?with={alice}")).await.body.as_array().unwrap().len(), 1, "nothing refused was stored");
    }

    #[tokio::test]
    async fn garbage_gets_10003_and_the_connection_stays_open() {
        let server = Server::start();
        let (_, token) = user(&server, "alice").await;
        let mut ws = server.ws(&token).await;
        for (raw, error, seq) in [
            ("not json", "bad_json", None),
            ("[1,2,3]", "bad_json", None),
            ("\"str\"", "bad_json", None),
            (r#"{"seq": 5}"#, "missing_field", Some(5)),
            (r#"{"method": 12, "seq": 6}"#, "missing_field", Some(6)),
            (r#"{"method": "Nope/Nope", "seq": 7}"#, "unknown_method", Some(7)),
            (r#"{"method": "User/Ping", "seq": "eight"}"#, "bad_json", None),
        ] {
            ws.send_raw(Message::Text(raw.into())).await;
            let e = ws.next().await;
            assert_eq!(e["code"], 10003, "{raw}");
            assert_eq!(e["data"]["error"], error, "{raw}");
            assert_eq!(e["data"]["seq"].as_i64(), seq, "{raw}");
        }
        ws.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
        assert_eq!(ws.next().await["data"]["error"], "bad_json");
        // Still open and answering.
        assert_eq!(ws.request(json!({"method": "User/Ping"}), 9).await["code"], 10002);
    }

    #[tokio::test]
    async fn a_frame_over_64_kib_closes_with_1009() {
        let server = Server::start();
        let (_, token) = user(&server, "alice").await;
        let mut ws = server.ws(&token).await;
        // Exactly 64 KiB is accepted (it is a valid frame with padding).
        let pad = 64 * 1024 - json!({"method": "User/Ping", "seq": 1, "pad": ""}).to_string().len();
        let frame = json!({"method": "User/Ping", "seq": 1, "pad": "x".repeat(pad)}).to_string();
        assert_eq!(frame.len(), 64 * 1024);
        ws.send_raw(Message::Text(frame.into())).await;
        assert_eq!(ws.next().await["code"], 10002);
        ws.send_raw(Message::Text("x".repeat(64 * 1024 + 1).into())).await;
        assert_eq!(ws.closed().await, Some(1009));
        // And a huge one (past what the socket layer buffers) closes too.
        let mut ws = server.ws(&token).await;
        // The server may hang up before the whole frame is written.
        let _ = futures_util::SinkExt::send(&mut ws.socket, Message::Text("y".repeat(2 * 1024 * 1024).into())).await;
        let code = ws.closed().await;
        assert!(code == Some(1009) || code.is_none(), "{code:?}");
    }

    #[tokio::test]
    async fn a_flood_is_rate_limited_then_closed_while_others_chat_on() {
        let server = Server::start_with(&[("DUET_WS_ABUSE_CLOSE_MS", "1500")]);
        let (_, f_token) = user(&server, "flooder").await;
        let (alice, a_token) = user(&server, "alice").await;
        let (bob, b_token) = user(&server, "bob").await;
        let mut flood = server.ws(&f_token).await;
        let mut a = server.ws(&a_token).await;
        let mut b = server.ws(&b_token).await;

        // 400 frames at once: the burst of 200 passes, most of the rest are refused.
        for i in 0..400 {
            flood.send(json!({"method": "User/Ping", "seq": i})).await;
        }
        let mut acks = 0;
        let mut limited = 0;
        while acks + limited < 400 {
            let f = flood.next().await;
            match (f["code"].as_u64(), f["data"]["error"].as_str()) {
                (Some(10002), _) => acks += 1,
                (Some(10003), Some("rate_limited")) => limited += 1,
                (Some(10006), _) => {} // alice and bob coming online
                other => panic!("{other:?}"),
            }
        }
        assert!(acks >= 200 && limited >= 150, "acks {acks}, limited {limited}");

        // Keep flooding in the background for longer than the abuse window.
        let flooder = tokio::spawn(async move {
            let start = std::time::Instant::now();
            let mut i = 1000;
            loop {
                use futures_util::SinkExt;
                let frame = json!({"method": "User/Ping", "seq": i}).to_string();
                if flood.socket.send(Message::Text(frame.into())).await.is_err() {
                    return (None, start.elapsed());
                }
                i += 1;
                // Read whatever is there without blocking, watching for the close.
                while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_micros(1), flood.socket.next()).await {
                    match msg {
                        Ok(Message::Close(f)) => return (f.map(|f| u16::from(f.code)), start.elapsed()),
                        Ok(_) => {}
                        Err(_) => return (None, start.elapsed()),
                    }
                }
                if start.elapsed() > Duration::from_secs(10) {
                    return (None, start.elapsed());
                }
            }
        });
        // Meanwhile alice and bob chat without a hitch.
        for i in 0..20 {
            let ack = a.request(json!({"method": "Message/Send", "toId": bob, "message": format!("m{i}")}), i).await;
            assert_eq!(ack["code"], 10002);
            let m = b.wait_for(10005).await;
            assert_eq!(m["data"]["fromId"], alice);
        }
        let (code, after) = flooder.await.unwrap();
        assert_eq!(code, Some(1008), "closed for policy after {after:?}");
        assert!(after >= Duration::from_millis(1400), "{after:?}");
    }

    #[tokio::test]
    async fn silent_peers_are_dropped_and_live_ones_kept() {
        let server = Server::start_with(&[("DUET_WS_PING_INTERVAL_MS", "100"), ("DUET_WS_IDLE_TIMEOUT_MS", "500")]);
        let (silent_id, s_token) = user(&server, "silent").await;
        let (_, l_token) = user(&server, "lively").await;
        let mut lively = server.ws(&l_token).await;
        // The silent client never reads, so it never answers a ping.
        let silent = server.ws(&s_token).await;
        lively.wait_for(10006).await;
        // The lively client reads (and so answers pings) for 1.2 s and stays.
        let offline = lively.wait_for(10008).await;
        assert_eq!(offline["data"]["id"], silent_id);
        let frames = lively.drain(Duration::from_millis(700)).await;
        assert!(frames.is_empty(), "{frames:?}");
        assert_eq!(lively.request(json!({"method": "User/Ping"}), 1).await["code"], 10002);
        drop(silent);
    }

    #[tokio::test]
    async fn logout_closes_that_sessions_sockets_with_4001() {
        let server = Server::start();
        let (_, token) = user(&server, "alice").await;
        let mut other = server.client();
        let a = other.post("/api/login", json!({"username": "alice", "password": "password123"})).await;
        let other_token = a.body["token"].as_str().unwrap().to_string();
        let mut s1 = server.ws(&token).await;
        let mut s2 = server.ws(&token).await;
        let mut kept = server.ws(&other_token).await;
        let mut c = server.client();
        c.token = Some(token.clone());
        assert_eq!(c.post_raw("/api/logout", "").await.status, 204);
        assert_eq!(s1.closed().await, Some(4001));
        assert_eq!(s2.closed().await, Some(4001));
        assert_eq!(kept.request(json!({"method": "User/Ping"}), 1).await["code"], 10002);
        assert_eq!(ws_refused(&format!("{}?token={token}", server.ws_url()), &[]).await, 401);
    }

    #[tokio::test]
    async fn shutdown_says_going_away_then_closes_with_1001() {
        let mut server = Server::start();
        let (_, token) = user(&server, "alice").await;
        let mut ws = server.ws(&token).await;
        let stopping = std::thread::spawn(move || {
            let status = server.stop();
            (server, status)
        });
        let bye = ws.wait_for(10021).await;
        assert!(bye["data"]["reconnectAfterMs"].as_u64().is_some());
        assert_eq!(ws.closed().await, Some(1001));
        let (_server, status) = stopping.join().unwrap();
        assert!(status.success(), "{status:?}");
    }
}
