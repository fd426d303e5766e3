//! PROTOCOL.md section 5 and DESIGN.md "Supervision": the operator API, and each kind of actor
//! killed by hand mid-call, with what clients see afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{ADMIN_TOKEN, Server, Ws, user, ok};
use serde_json::{Value, json};

fn admin_server(extra: &[(&'static str, &'static str)]) -> Server {
    let mut env = vec![("DUET_ADMIN_TOKEN", ADMIN_TOKEN), ("DUET_RING_TIMEOUT_MS", "20000"), ("DUET_RECONNECT_GRACE_MS", "20000")];
    env.extend_from_slice(extra);
    Server::start_with(&env)
}


/// Alice calls bob, bob answers: (callId, alice's socket, bob's socket).
async fn call(server: &Server, a: &str, b: (i64, &str)) -> (String, Ws, Ws) {
    let mut aw = server.ws(a).await;
    let mut bw = server.ws(b.1).await;
    let ack = aw.request(json!({"method": "Call/Invite", "toId": b.0}), 1).await;
    let id = ok(&ack)["callId"].as_str().unwrap().to_string();
    bw.wait_for(10012).await;
    ok(&bw.request(json!({"method": "Call/Accept", "data": {"callId": id}}), 1).await);
    aw.wait_for(10014).await;
    (id, aw, bw)
}

fn named<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|a| a["name"] == name)
}

every_backend! {
    #[tokio::test]
    async fn the_operator_api_is_hidden_without_its_token() {
        let plain = Server::start();
        let mut c = plain.admin();
        assert_eq!(c.get("/api/admin/actors").await.status, 404);
        assert_eq!(c.get("/api/admin/calls").await.status, 404);
        assert_eq!(c.post_raw("/api/admin/actors/registry/kill", "").await.status, 404);

        let server = admin_server(&[]);
        for token in [None, Some("wrong"), Some("chaos-admin-toke"), Some("chaos-admin-tokenx")] {
            let mut c = server.client();
            c.token = token.map(str::to_string);
            assert_eq!(c.get("/api/admin/actors").await.status, 404, "{token:?}");
            assert_eq!(c.post_raw("/api/admin/actors/registry/kill", "").await.status, 404);
            assert_eq!(c.get("/api/admin/calls").await.status, 404);
        }
        // A user's session token is not the admin token either.
        let (_, token) = user(&server, "alice").await;
        let mut c = server.client();
        c.token = Some(token);
        assert_eq!(c.get("/api/admin/actors").await.status, 404);
        assert_eq!(server.admin().get("/api/admin/actors").await.status, 200);
    }

    #[tokio::test]
    async fn the_actor_tree_and_live_calls() {
        let server = admin_server(&[]);
        let (_, at) = user(&server, "alice").await;
        let (bob, bt) = user(&server, "bob").await;
        let (id, aw, _bw) = call(&server, &at, (bob, &bt)).await;
        let list = server.actors().await;
        for sup in ["root-supervisor", "registry-supervisor", "connection-supervisor", "call-supervisor"] {
            let a = named(&list, sup).unwrap_or_else(|| panic!("{sup} in {list:?}"));
            assert_eq!(a["kind"], "supervisor");
            assert_eq!(a["restarts"], 0);
            assert!(a["startedAt"].as_str().unwrap().ends_with('Z'));
        }
        assert_eq!(named(&list, "registry-supervisor").unwrap()["parent"], "root-supervisor");
        assert!(named(&list, "root-supervisor").unwrap()["parent"].is_null());
        assert_eq!(named(&list, "registry").unwrap()["parent"], "registry-supervisor");
        let conn = format!("conn:{}", aw.welcome["data"]["connectionId"].as_str().unwrap());
        let c = named(&list, &conn).unwrap();
        assert_eq!((c["kind"].as_str(), c["parent"].as_str()), (Some("connection"), Some("connection-supervisor")));
        let session = named(&list, &format!("call:{id}")).unwrap();
        assert_eq!((session["kind"].as_str(), session["parent"].as_str()), (Some("call"), Some("call-supervisor")));

        let calls = server.admin().get("/api/admin/calls").await.body;
        assert_eq!(calls.as_array().unwrap().len(), 1);
        assert_eq!(calls[0]["callId"], id.as_str());
        assert_eq!(calls[0]["state"], "active");
        assert_eq!(calls[0]["caller"]["connection"], aw.welcome["data"]["connectionId"]);
        assert!(calls[0]["callee"]["connection"].is_string());

        assert_eq!(server.kill_actor("nobody").await, 404);
        assert_eq!(server.kill_actor("root-supervisor").await, 403);
    }

    #[tokio::test]
    async fn a_killed_registry_comes_back_without_a_presence_flap() {
        let server = admin_server(&[]);
        let (alice, at) = user(&server, "alice").await;
        let (bob, bt) = user(&server, "bob").await;
        let (_, ct) = user(&server, "carol").await;
        let (dave, dt) = user(&server, "dave").await;
        let mut carol = server.ws(&ct).await;
        let (_id, mut aw, mut bw) = call(&server, &at, (bob, &bt)).await;
        let dw = server.ws(&dt).await;
        carol.drain(Duration::from_millis(200)).await;

        assert_eq!(server.kill_actor("registry").await, 202);
        let list = server.wait_actors("a restarted registry", |l| named(l, "registry").is_some_and(|r| r["restarts"] == 1)).await;
        assert_eq!(named(&list, "registry").unwrap()["kind"], "registry");
        // Nobody went offline or came online in anyone's eyes.
        let seen = carol.drain(Duration::from_millis(300)).await;
        assert!(seen.iter().all(|f| f["code"] != 10006 && f["code"] != 10008 && f["code"] != 10004), "{seen:?}");
        // Presence is right: alice and bob in the call, dave and carol available.
        let mut http = server.client();
        http.token = Some(ct.clone());
        let users = http.get("/api/users").await.body;
        let status = |id: i64| users.as_array().unwrap().iter().find(|u| u["id"] == id).unwrap()["status"].clone();
        assert_eq!((status(alice), status(bob), status(dave)), (json!("in_call"), json!("in_call"), json!("available")));
        // Chat and fan-out still work, and a real departure is still announced, once.
        ok(&aw.request(json!({"method": "Message/Send", "toId": 0, "message": "still here"}), 5).await);
        assert_eq!(carol.wait_for(10005).await["data"]["message"], "still here");
        bw.wait_for(10005).await;
        dw.close().await;
        assert_eq!(carol.wait_for(10008).await["data"]["id"], dave);
        let later = carol.drain(Duration::from_millis(200)).await;
        assert!(later.iter().all(|f| f["code"] != 10008), "{later:?}");
        // New connections are admitted again.
        server.ws(&dt).await;
    }

    #[tokio::test]
    async fn a_killed_call_session_is_restarted_and_the_call_goes_on() {
        let server = admin_server(&[]);
        let (alice, at) = user(&server, "alice").await;
        let (bob, bt) = user(&server, "bob").await;
        let (id, mut aw, mut bw) = call(&server, &at, (bob, &bt)).await;
        let name = format!("call:{id}");
        assert_eq!(server.kill_actor(&name).await, 202);
        server.wait_actors("a restarted session", |l| named(l, &name).is_some_and(|s| s["restarts"] == 1)).await;
        // Both parties keep the call: nothing ended, signaling flows both ways.
        for round in 0..3 {
            ok(&aw.request(json!({"method": "Message/Offer", "toId": bob, "data": {"sdp": {"type": "offer", "sdp": round.to_string()}}}), 10 + round).await);
            assert_eq!(bw.wait_for(10010).await["data"]["callId"], id.as_str());
            ok(&bw.request(json!({"method": "Message/Answer", "toId": alice, "data": {"callId": id, "sdp": {"type": "answer"}}}), 10 + round).await);
            aw.wait_for(10011).await;
        }
        let calls = server.admin().get("/api/admin/calls").await.body;
        assert_eq!(calls[0]["state"], "active");
        ok(&aw.request(json!({"method": "Call/Hangup", "data": {"callId": id}}), 20).await);
        assert_eq!(bw.wait_for(10016).await["data"]["reason"], "hangup");
        let mut http = server.client();
        http.token = Some(at.clone());
        assert_eq!(http.get(&format!("/api/calls/{id}")).await.body["status"], "completed");
        server.wait_actors("the session gone", |l| named(l, &name).is_none()).await;
    }

    #[tokio::test]
    async fn a_ringing_call_whose_session_is_killed_still_times_out() {
        let server = admin_server(&[("DUET_RING_TIMEOUT_MS", "1000")]);
        let (_, at) = user(&server, "alice").await;
        let (bob, bt) = user(&server, "bob").await;
        let mut aw = server.ws(&at).await;
        let mut bw = server.ws(&bt).await;
        let started = std::time::Instant::now();
        let id = ok(&aw.request(json!({"method": "Call/Invite", "toId": bob}), 1).await)["callId"].as_str().unwrap().to_string();
        bw.wait_for(10012).await;
        assert_eq!(server.kill_actor(&format!("call:{id}")).await, 202);
        assert_eq!(aw.wait_for(10016).await["data"]["reason"], "timeout");
        assert_eq!(bw.wait_for(10016).await["data"]["reason"], "timeout");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(950) && took < Duration::from_millis(3000), "the ring timer kept its time: {took:?}");
    }

    #[tokio::test]
    async fn a_session_that_keeps_dying_ends_its_call_as_a_server_error() {
        let server = admin_server(&[]);
        let (_, at) = user(&server, "alice").await;
        let (bob, bt) = user(&server, "bob").await;
        let (id, mut aw, mut bw) = call(&server, &at, (bob, &bt)).await;
        let name = format!("call:{id}");
        for n in 1..=6 {
            server.wait_actors("the session back", |l| named(l, &name).is_some()).await;
            assert_eq!(server.kill_actor(&name).await, 202, "kill {n}");
            if n < 6 {
                server.wait_actors("the restart", |l| named(l, &name).is_some_and(|s| s["restarts"] == n)).await;
            }
        }
        assert_eq!(aw.wait_for(10016).await["data"]["reason"], "server_error");
        assert_eq!(bw.wait_for(10016).await["data"]["reason"], "server_error");
        let mut http = server.client();
        http.token = Some(bt);
        let rec = http.get(&format!("/api/calls/{id}")).await.body;
        assert_eq!((rec["status"].as_str(), rec["endReason"].as_str()), (Some("failed"), Some("server_error")));
    }

    #[tokio::test]
    async fn a_killed_connection_closes_with_1011_and_the_call_resumes() {
        let server = admin_server(&[]);
        let (alice, at) = user(&server, "alice").await;
        let (bob, bt) = user(&server, "bob").await;
        let (id, mut aw, mut bw) = call(&server, &at, (bob, &bt)).await;
        let conn = format!("conn:{}", bw.welcome["data"]["connectionId"].as_str().unwrap());
        assert_eq!(server.kill_actor(&conn).await, 202);
        assert_eq!(bw.closed().await, Some(1011));
        let link = aw.wait_for(10019).await;
        assert_eq!((link["data"]["state"].as_str(), link["data"]["peerId"].as_i64()), (Some("reconnecting"), Some(bob)));
        server.wait_actors("the connection gone", |l| named(l, &conn).is_none()).await;
        // The browser reconnects: the call resumes on the new connection.
        let mut bw = server.ws(&bt).await;
        assert_eq!(bw.welcome["data"]["activeCall"]["callId"], id.as_str());
        bw.wait_for(10020).await;
        assert_eq!(aw.wait_for(10019).await["data"]["state"], "connected");
        ok(&bw.request(json!({"method": "Message/Candidate", "toId": alice, "data": {"candidate": {"candidate": "x"}}}), 3).await);
        aw.wait_for(10009).await;
    }

    #[tokio::test]
    async fn killed_supervisors_come_back_with_their_subtrees_and_the_call_goes_on() {
        let server = admin_server(&[]);
        let pid = server.pid();
        let (alice, at) = user(&server, "alice").await;
        let (bob, bt) = user(&server, "bob").await;
        let (carol, ct) = user(&server, "carol").await;
        let mut cw = server.ws(&ct).await;
        let (id, mut aw, mut bw) = call(&server, &at, (bob, &bt)).await;
        let statuses = async |server: &Server| {
            let mut c = server.client();
            c.token = Some(ct.clone());
            let users = c.get("/api/users").await.body;
            [alice, bob, carol].map(|who| users.as_array().unwrap().iter().find(|u| u["id"] == who).unwrap()["status"].as_str().unwrap().to_string())
        };

        // The registry's supervisor: a fresh one with a fresh registry, presence unchanged.
        assert_eq!(server.kill_actor("registry-supervisor").await, 202);
        // (The kill lands a moment after 202: wait for the restarted one, not the old one.)
        server
            .wait_actors("the registry back", |l| named(l, "registry-supervisor").is_some_and(|s| s["restarts"] == 1) && named(l, "registry").is_some_and(|r| r["parent"] == "registry-supervisor"))
            .await;
        assert_eq!(statuses(&server).await, ["in_call", "in_call", "available"]);
        assert!(!cw.drain(Duration::from_millis(200)).await.iter().any(|f| f["code"] == 10008), "no offline flap");

        // The call supervisor: every live call revived, still signaling.
        assert_eq!(server.kill_actor("call-supervisor").await, 202);
        server
            .wait_actors("the call back", |l| named(l, "call-supervisor").is_some_and(|s| s["restarts"] == 1) && named(l, &format!("call:{id}")).is_some())
            .await;
        let calls = server.admin().get("/api/admin/calls").await.body;
        assert_eq!((calls[0]["callId"].as_str(), calls[0]["state"].as_str()), (Some(id.as_str()), Some("active")));
        ok(&aw.request(json!({"method": "Message/Offer", "toId": bob, "data": {"callId": id, "sdp": {"type": "offer", "sdp": "v=0"}}}), 5).await);
        bw.wait_for(10010).await;

        // The connection supervisor: every socket closed with 1011; clients reconnect and the call
        // resumes within the grace.
        assert_eq!(server.kill_actor("connection-supervisor").await, 202);
        assert_eq!(aw.closed().await, Some(1011));
        assert_eq!(bw.closed().await, Some(1011));
        assert_eq!(cw.closed().await, Some(1011));
        server
            .wait_actors("the connection supervisor back", |l| {
                named(l, "connection-supervisor").is_some_and(|s| s["restarts"] == 1) && !l.iter().any(|a| a["kind"] == "connection")
            })
            .await;
        let mut aw = server.ws(&at).await;
        let mut bw = server.ws(&bt).await;
        assert_eq!(aw.welcome["data"]["activeCall"]["callId"], id.as_str());
        aw.wait_for(10020).await;
        ok(&bw.request(json!({"method": "Message/Candidate", "toId": alice, "data": {"callId": id, "candidate": {"candidate": "x"}}}), 6).await);
        aw.wait_for(10009).await;
        let _cw = server.ws(&ct).await;
        assert_eq!(statuses(&server).await, ["in_call", "in_call", "available"]);
        ok(&aw.request(json!({"method": "Call/Hangup", "data": {"callId": id}}), 7).await);
        bw.wait_for(10016).await;
        assert_eq!(server.pid(), pid);
    }
}

/// Failures (not kills) count toward intensity: the registry's supervisor escalates after
/// 20 failures and the root restarts it; a root past its own intensity stops the server
/// the normal way (10021, close 1001) and the process exits non-zero.
#[tokio::test]
async fn failures_escalate_and_a_root_past_its_intensity_stops_the_server_cleanly() {
    let mut server = admin_server(&[("RUST_LOG", "warn,duet::http=info")]);
    let (_, at) = user(&server, "alice").await;
    let mut aw = server.ws(&at).await;
    let fail = async |server: &Server, name: &str| server.admin().post_raw(&format!("/api/admin/actors/{name}/kill?mode=fail"), "").await.status;
    // 21 registry failures: one more than the registry supervisor takes.
    // Each failure is waited out (the registry back, its restart counted) before the next.
    for n in 0..21 {
        server.wait_actors("the registry up", |l| named(l, "registry").is_some_and(|r| r["restarts"] == n)).await;
        assert_eq!(fail(&server, "registry").await, 202, "failure {n}");
    }
    let list = server.wait_actors("the registry supervisor restarted by the root", |l| {
        named(l, "registry-supervisor").is_some_and(|s| s["restarts"] == 1) && named(l, "registry").is_some()
    })
    .await;
    assert!(named(&list, "root-supervisor").is_some());
    assert_eq!(server.client().get("/healthz").await.status, 200, "still serving");
    // The root takes 10 supervisor failures a minute (the escalation above was the first); the
    // 11th ends the server, cleanly.
    for n in 0..10 {
        server.wait_actors("the call supervisor up", |l| named(l, "call-supervisor").is_some_and(|c| c["restarts"] == n)).await;
        assert_eq!(fail(&server, "call-supervisor").await, 202, "failure {n}");
    }
    assert_eq!(aw.wait_for(10021).await["code"], 10021);
    assert_eq!(aw.closed().await, Some(1001));
    let status = server.wait_exit(Duration::from_secs(15)).expect("the server stops");
    assert!(!status.success(), "a non-zero exit: {status:?}");
    let log = server.log.lock().unwrap().join("\n");
    assert!(log.contains("the root supervisor gives up") && log.contains("stopped because the supervision tree gave up"), "{log}");
}

