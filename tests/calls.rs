//! PROTOCOL.md section 4, rule by rule, with real WebSocket clients, real timers (short ring
//! timeout and grace set through settings) and, for rule 11, a real process stopped and started.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Server, Ws, user, ok};
use serde_json::{Value, json};

const SHORT: &[(&str, &str)] = &[("DUET_RING_TIMEOUT_MS", "800"), ("DUET_RECONNECT_GRACE_MS", "800")];
const LONG: &[(&str, &str)] = &[("DUET_RING_TIMEOUT_MS", "20000"), ("DUET_RECONNECT_GRACE_MS", "20000")];

/// A logged-in user: id, token and an HTTP client.
struct Person {
    id: i64,
    token: String,
}

async fn person(server: &Server, name: &str) -> Person {
    let (id, token) = user(server, name).await;
    Person { id, token }
}

impl Person {
    async fn ws(&self, server: &Server) -> Ws {
        server.ws(&self.token).await
    }

    async fn http(&self, server: &Server, path: &str) -> common::Answer {
        let mut c = server.client();
        c.token = Some(self.token.clone());
        c.get(path).await
    }

    async fn record(&self, server: &Server, call_id: &str) -> Value {
        let a = self.http(server, &format!("/api/calls/{call_id}")).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body
    }
}

/// `Call/Invite` with a seq; returns the ack or error.
async fn invite(ws: &mut Ws, to: i64, seq: i64) -> Value {
    ws.request(json!({"method": "Call/Invite", "toId": to, "data": {"media": {"audio": true, "video": true}}}), seq).await
}

async fn act(ws: &mut Ws, method: &str, call_id: &str, seq: i64) -> Value {
    ws.request(json!({"method": method, "data": {"callId": call_id}}), seq).await
}

fn error(v: &Value) -> &str {
    assert_eq!(v["code"], 10003, "expected an error: {v}");
    v["data"]["error"].as_str().unwrap()
}


/// Alice calls bob; bob's first tab answers. Returns (callId, alice's socket, bob's socket).
async fn active_call(server: &Server, a: &Person, b: &Person) -> (String, Ws, Ws) {
    let mut aw = a.ws(server).await;
    let mut bw = b.ws(server).await;
    let ack = invite(&mut aw, b.id, 1).await;
    let id = ok(&ack)["callId"].as_str().unwrap().to_string();
    bw.wait_for(10012).await;
    ok(&act(&mut bw, "Call/Accept", &id, 1).await);
    let accepted = aw.wait_for(10014).await;
    assert_eq!(accepted["data"]["callId"], id.as_str());
    (id, aw, bw)
}

fn no_code(frames: &[Value], codes: &[u64]) -> bool {
    frames.iter().all(|f| !codes.contains(&f["code"].as_u64().unwrap_or(0)))
}

every_backend! {
    #[tokio::test]
    async fn rule_1_invite_refusals_and_their_records() {
        let server = Server::start_with(LONG);
        let (a, b, c) = (person(&server, "alice").await, person(&server, "bob").await, person(&server, "carol").await);
        let mut aw = a.ws(&server).await;
        assert_eq!(error(&invite(&mut aw, 424242, 1).await), "unknown_user");
        assert_eq!(error(&invite(&mut aw, 0, 2).await), "unknown_user");
        assert_eq!(error(&invite(&mut aw, a.id, 3).await), "self_call");
        assert_eq!(error(&aw.request(json!({"method": "Call/Invite"}), 4).await), "missing_field");
        assert_eq!(error(&aw.request(json!({"method": "Call/Invite", "toId": b.id, "data": {"media": {"video": "yes"}}}), 5).await), "missing_field");

        // Bob is offline: refused, and recorded as a missed call for him.
        assert_eq!(error(&invite(&mut aw, b.id, 6).await), "offline");
        let bobs = b.http(&server, "/api/calls").await.body;
        assert_eq!(bobs.as_array().unwrap().len(), 1);
        assert_eq!((bobs[0]["status"].as_str(), bobs[0]["direction"].as_str()), (Some("missed"), Some("incoming")));
        assert_eq!(a.http(&server, "/api/calls").await.body[0]["direction"], "outgoing");

        // Bob online and rung by alice: carol gets busy, with 10017, recorded busy.
        let mut bw = b.ws(&server).await;
        let mut cw = c.ws(&server).await;
        let ring = ok(&invite(&mut aw, b.id, 7).await)["callId"].as_str().unwrap().to_string();
        bw.wait_for(10012).await;
        let refused = invite(&mut cw, b.id, 1).await;
        assert_eq!(error(&refused), "busy");
        let busy = cw.wait_for(10017).await;
        assert_eq!(busy["data"]["toId"], b.id);
        let busy_id = busy["data"]["callId"].as_str().unwrap();
        assert_eq!(c.record(&server, busy_id).await["status"], "busy");
        assert!(no_code(&bw.drain(Duration::from_millis(200)).await, &[10012]), "bob is not rung twice");

        // Alice, ringing bob, cannot start a second call.
        assert_eq!(error(&invite(&mut aw, c.id, 8).await), "already_in_call");
        // Nor can bob, being rung, call carol.
        assert_eq!(error(&invite(&mut bw, c.id, 2).await), "already_in_call");
        assert_eq!(a.record(&server, &ring).await["status"], "ringing");
    }

    #[tokio::test]
    async fn rule_1_a_call_rings_every_device_of_the_callee() {
        let server = Server::start_with(LONG);
        let (a, b) = (person(&server, "alice").await, person(&server, "bob").await);
        let mut aw = a.ws(&server).await;
        let mut b1 = b.ws(&server).await;
        let mut b2 = b.ws(&server).await;
        let ack = aw.request(json!({"method": "Call/Invite", "toId": b.id, "data": {"media": {"audio": true, "video": false}}}), 1).await;
        let id = ok(&ack)["callId"].as_str().unwrap().to_string();
        assert_eq!(id.len(), 36, "a UUID");
        for ws in [&mut b1, &mut b2] {
            let ring = ws.wait_for(10012).await;
            assert_eq!(ring["data"]["callId"], id.as_str());
            assert_eq!(ring["data"]["fromId"], a.id);
            assert_eq!(ring["data"]["from"]["username"], "alice");
            assert_eq!(ring["data"]["media"], json!({"audio": true, "video": false}));
        }
        let ringing = aw.wait_for(10013).await;
        assert_eq!(ringing["data"], json!({"callId": id, "toId": b.id}));
        let rec = a.record(&server, &id).await;
        assert_eq!((rec["status"].as_str(), rec["media"]["video"].as_bool()), (Some("ringing"), Some(false)));
    }

    #[tokio::test]
    async fn rule_2_glare_merges_two_invites_into_one_call() {
        let server = Server::start_with(LONG);
        let (a, b) = (person(&server, "alice").await, person(&server, "bob").await);
        let mut aw = a.ws(&server).await;
        let mut bw = b.ws(&server).await;
        let id = ok(&invite(&mut aw, b.id, 1).await)["callId"].as_str().unwrap().to_string();
        bw.wait_for(10012).await;
        let merged = invite(&mut bw, a.id, 1).await;
        assert_eq!(ok(&merged)["callId"], id.as_str());
        assert_eq!(ok(&merged)["merged"], true);
        let accepted = aw.wait_for(10014).await;
        assert_eq!(accepted["data"], json!({"callId": id, "by": b.id}));
        let calls = a.http(&server, "/api/calls").await.body;
        assert_eq!(calls.as_array().unwrap().len(), 1, "no second call exists");
        assert_eq!(calls[0]["status"], "active");
        // Both inviting connections are bound: signaling flows.
        ok(&aw.request(json!({"method": "Message/Offer", "toId": b.id, "data": {"sdp": {"type": "offer", "sdp": "v=0"}}}), 2).await);
        assert_eq!(bw.wait_for(10010).await["data"]["fromId"], a.id);
    }

    #[tokio::test]
    async fn rule_3_first_answer_wins_and_signaling_flows_between_the_bound_connections() {
        let server = Server::start_with(LONG);
        let (a, b) = (person(&server, "alice").await, person(&server, "bob").await);
        let mut a1 = a.ws(&server).await;
        let mut a2 = a.ws(&server).await;
        let mut b1 = b.ws(&server).await;
        let mut b2 = b.ws(&server).await;
        let id = ok(&invite(&mut a1, b.id, 1).await)["callId"].as_str().unwrap().to_string();
        b1.wait_for(10012).await;
        b2.wait_for(10012).await;
        assert_eq!(ok(&act(&mut b1, "Call/Accept", &id, 1).await)["callId"], id.as_str());
        assert_eq!(a1.wait_for(10014).await["data"], json!({"callId": id, "by": b.id}));
        assert_eq!(b2.wait_for(10018).await["data"], json!({"callId": id}));
        assert_eq!(error(&act(&mut b2, "Call/Accept", &id, 1).await), "bad_state", "second answer loses");
        assert_eq!(a.record(&server, &id).await["status"], "active");

        // Offers, answers and candidates, with and without callId, any number of times, both ways.
        for round in 0..3 {
            let sdp = json!({"sdp": {"type": "offer", "sdp": format!("v=0 round {round}")}});
            ok(&a1.request(json!({"method": "Message/Offer", "toId": b.id, "data": sdp}), 10 + round).await);
            let offer = b1.wait_for(10010).await;
            assert_eq!(offer["data"], json!({"fromId": a.id, "callId": id, "data": sdp}));
            let answer = json!({"callId": id, "sdp": {"type": "answer", "sdp": format!("v=0 answer {round}")}});
            ok(&b1.request(json!({"method": "Message/Answer", "toId": a.id, "data": answer}), 10 + round).await);
            assert_eq!(a1.wait_for(10011).await["data"]["data"], answer);
            let cand = json!({"candidate": {"candidate": "candidate:1 1 udp 2122260223 10.0.0.1 50000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}});
            ok(&b1.request(json!({"method": "Message/Candidate", "toId": a.id, "data": cand}), 20 + round).await);
            assert_eq!(a1.wait_for(10009).await["data"]["data"], cand);
            ok(&a1.request(json!({"method": "Message/Candidate", "data": {"callId": id, "candidate": cand["candidate"]}}), 30 + round).await);
            assert_eq!(b1.wait_for(10009).await["data"]["fromId"], a.id);
        }
        // The other tabs saw none of it.
        let signal = [10009, 10010, 10011];
        assert!(no_code(&a2.drain(Duration::from_millis(200)).await, &signal));
        assert!(no_code(&b2.drain(Duration::from_millis(50)).await, &signal));
        // And cannot signal themselves: they are not bound to the call.
        assert_eq!(error(&b2.request(json!({"method": "Message/Offer", "toId": a.id, "data": {"sdp": {}}}), 5).await), "bad_state");
    }

    #[tokio::test]
    async fn rule_4_reject() {
        let server = Server::start_with(LONG);
        let (a, b) = (person(&server, "alice").await, person(&server, "bob").await);
        let mut aw = a.ws(&server).await;
        let mut b1 = b.ws(&server).await;
        let mut b2 = b.ws(&server).await;
        let id = ok(&invite(&mut aw, b.id, 1).await)["callId"].as_str().unwrap().to_string();
        b2.wait_for(10012).await;
        ok(&act(&mut b1, "Call/Reject", &id, 1).await);
        assert_eq!(aw.wait_for(10015).await["data"], json!({"callId": id, "by": b.id}));
        let ended = b2.wait_for(10016).await;
        assert_eq!((ended["data"]["reason"].as_str(), ended["data"]["by"].as_i64()), (Some("rejected"), Some(b.id)));
        let rec = b.record(&server, &id).await;
        assert_eq!((rec["status"].as_str(), rec["endReason"].as_str(), rec["endedBy"].as_i64()), (Some("rejected"), Some("rejected"), Some(b.id)));
        assert_eq!(error(&act(&mut b1, "Call/Accept", &id, 2).await), "bad_state", "an ended call takes no answer");
    }

    #[tokio::test]
    async fn rule_5_cancel() {
        let server = Server::start_with(LONG);
        let (a, b) = (person(&server, "alice").await, person(&server, "bob").await);
        let mut aw = a.ws(&server).await;
        let mut b1 = b.ws(&server).await;
        let mut b2 = b.ws(&server).await;
        let id = ok(&invite(&mut aw, b.id, 1).await)["callId"].as_str().unwrap().to_string();
        b1.wait_for(10012).await;
        assert_eq!(error(&act(&mut b1, "Call/Cancel", &id, 1).await), "bad_state", "only the caller cancels");
        ok(&act(&mut aw, "Call/Cancel", &id, 2).await);
        for ws in [&mut b1, &mut b2] {
            let ended = ws.wait_for(10016).await;
            assert_eq!((ended["data"]["callId"].as_str(), ended["data"]["reason"].as_str()), (Some(id.as_str()), Some("cancelled")));
        }
        let rec = b.record(&server, &id).await;
        assert_eq!((rec["status"].as_str(), rec["direction"].as_str()), (Some("cancelled"), Some("incoming")));
    }

    #[tokio::test]
    async fn rule_6_no_answer_is_a_missed_call() {
        let server = Server::start_with(SHORT);
        let (a, b) = (person(&server, "alice").await, person(&server, "bob").await);
        let mut aw = a.ws(&server).await;
        let mut bw = b.ws(&server).await;
        let started = std::time::Instant::now();
        let id = ok(&invite(&mut aw, b.id, 1).await)["callId"].as_str().unwrap().to_string();
        for ws in [&mut aw, &mut bw] {
            let ended = ws.wait_for(10016).await;
            assert_eq!(ended["data"]["reason"], "timeout");
            assert_eq!(ended["data"]["callId"], id.as_str());
        }
        assert!(started.elapsed() >= Duration::from_millis(750), "{:?}", started.elapsed());
        let rec = a.record(&server, &id).await;
        assert_eq!((rec["status"].as_str(), rec["endReason"].as_str()), (Some("missed"), Some("timeout")));
        // Both are free again.
        ok(&invite(&mut bw, a.id, 5).await);
    }

    #[tokio::test]
    async fn rule_7_hangup_records_a_completed_call_with_its_duration() {
        let server = Server::start_with(LONG);
        let (a, b, c) = (person(&server, "alice").await, person(&server, "bob").await, person(&server, "carol").await);
        let mut cw = c.ws(&server).await;
        let (id, mut aw, mut bw) = active_call(&server, &a, &b).await;
        // Presence: both in a call.
        let mut in_call = Vec::new();
        while in_call.len() < 2 {
            let f = cw.wait_for(10004).await;
            assert_eq!(f["data"]["status"], "in_call");
            in_call.push(f["data"]["id"].as_i64().unwrap());
        }
        in_call.sort();
        assert_eq!(in_call, vec![a.id, b.id]);
        let users = c.http(&server, "/api/users").await.body;
        assert_eq!(users.as_array().unwrap().iter().find(|u| u["id"] == a.id).unwrap()["status"], "in_call");

        tokio::time::sleep(Duration::from_millis(120)).await;
        ok(&act(&mut bw, "Call/Hangup", &id, 2).await);
        let ended = aw.wait_for(10016).await;
        assert_eq!((ended["data"]["reason"].as_str(), ended["data"]["by"].as_i64()), (Some("hangup"), Some(b.id)));
        assert!(ended["data"]["durationMs"].as_i64().unwrap() >= 100);
        let rec = a.record(&server, &id).await;
        assert_eq!(rec["status"], "completed");
        assert_eq!(rec["endReason"], "hangup");
        assert_eq!(rec["endedBy"], b.id);
        assert!(rec["durationMs"].as_i64().unwrap() >= 100);
        for k in ["createdAt", "answeredAt", "endedAt"] {
            assert!(rec[k].as_str().unwrap().ends_with('Z'), "{k}: {rec}");
        }
        assert_eq!(cw.wait_for(10004).await["data"]["status"], "available");
        // Rule 10: the record is final; a late hangup changes nothing.
        assert_eq!(error(&act(&mut aw, "Call/Hangup", &id, 3).await), "bad_state");
        assert_eq!(a.record(&server, &id).await, rec);
    }

    #[tokio::test]
    async fn rule_8_a_dropped_connection_resumes_within_the_grace() {
        let server = Server::start_with(&[("DUET_RING_TIMEOUT_MS", "20000"), ("DUET_RECONNECT_GRACE_MS", "3000")]);
        let (a, b) = (person(&server, "alice").await, person(&server, "bob").await);
        let (id, mut aw, bw) = active_call(&server, &a, &b).await;
        drop(bw);
        let link = aw.wait_for(10019).await;
        assert_eq!(link["data"], json!({"callId": id, "peerId": b.id, "state": "reconnecting"}));
        // Bob comes back: the welcome carries the call and 10020 follows.
        let mut bw = b.ws(&server).await;
        let active = &bw.welcome["data"]["activeCall"];
        assert_eq!(active["callId"], id.as_str());
        assert_eq!((active["role"].as_str(), active["state"].as_str()), (Some("callee"), Some("active")));
        assert_eq!(active["peer"]["id"], a.id);
        assert!(active["since"].as_str().unwrap().ends_with('Z'));
        let resumed = bw.wait_for(10020).await;
        assert_eq!(resumed["data"]["callId"], id.as_str());
        assert_eq!(aw.wait_for(10019).await["data"]["state"], "connected");
        // The new connection is bound: an ICE restart goes through.
        ok(&bw.request(json!({"method": "Message/Offer", "toId": a.id, "data": {"sdp": {"type": "offer", "sdp": "iceRestart"}}}), 9).await);
        assert_eq!(aw.wait_for(10010).await["data"]["data"]["sdp"]["sdp"], "iceRestart");
        assert_eq!(a.record(&server, &id).await["status"], "active");
    }

    #[tokio::test]
    async fn rule_8_past_the_grace_the_call_fails_with_peer_lost() {
        let server = Server::start_with(SHORT);
        let (a, b) = (person(&server, "alice").await, person(&server, "bob").await);
        let (id, mut aw, bw) = active_call(&server, &a, &b).await;
        drop(bw);
        assert_eq!(aw.wait_for(10019).await["data"]["state"], "reconnecting");
        let ended = aw.wait_for(10016).await;
        assert_eq!((ended["data"]["reason"].as_str(), ended["data"]["by"].as_i64()), (Some("peer_lost"), Some(b.id)));
        let rec = a.record(&server, &id).await;
        assert_eq!((rec["status"].as_str(), rec["endReason"].as_str()), (Some("failed"), Some("peer_lost")));
        // Coming back late finds no call.
        let bw = b.ws(&server).await;
        assert!(bw.welcome["data"]["activeCall"].is_null());
    }

    #[tokio::test]
    async fn rule_9_logout_ends_the_call() {
        let server = Server::start_with(LONG);
        let (a, b) = (person(&server, "alice").await, person(&server, "bob").await);
        let (id, mut aw, mut bw) = active_call(&server, &a, &b).await;
        let mut c = server.client();
        c.token = Some(b.token.clone());
        assert_eq!(c.post_raw("/api/logout", "").await.status, 204);
        assert_eq!(bw.closed().await, Some(4001));
        let ended = aw.wait_for(10016).await;
        assert_eq!((ended["data"]["reason"].as_str(), ended["data"]["by"].as_i64()), (Some("logout"), Some(b.id)));
        let rec = a.record(&server, &id).await;
        assert_eq!((rec["status"].as_str(), rec["endReason"].as_str()), (Some("completed"), Some("logout")));
    }

    #[tokio::test]
    async fn nothing_about_a_call_is_decided_by_the_client() {
        let server = Server::start_with(LONG);
        let (a, b, c) = (person(&server, "alice").await, person(&server, "bob").await, person(&server, "carol").await);
        let mut cw = c.ws(&server).await;
        let offer = |to: i64, call: Option<&str>| {
            let mut data = json!({"sdp": {"type": "offer", "sdp": "v=0"}});
            if let Some(id) = call {
                data["callId"] = json!(id);
            }
            json!({"method": "Message/Offer", "toId": to, "data": data})
        };
        // Outside any call.
        assert_eq!(error(&cw.request(offer(a.id, None), 1).await), "bad_state");
        assert_eq!(error(&cw.request(json!({"method": "Message/Candidate", "data": {"candidate": {}}}), 2).await), "missing_field");
        let (id, mut aw, mut bw) = active_call(&server, &a, &b).await;
        // Someone else's call.
        assert_eq!(error(&cw.request(offer(b.id, Some(&id)), 3).await), "not_a_party");
        assert_eq!(error(&cw.request(offer(b.id, None), 4).await), "bad_state");
        assert_eq!(error(&act(&mut cw, "Call/Hangup", &id, 5).await), "not_a_party");
        assert_eq!(error(&act(&mut cw, "Call/Accept", &id, 6).await), "not_a_party");
        // To a non-party inside one's own call, or pretending to be someone else.
        assert_eq!(error(&aw.request(offer(c.id, Some(&id)), 7).await), "not_a_party");
        assert_eq!(error(&aw.request(offer(c.id, None), 8).await), "bad_state");
        let mut forged = offer(b.id, Some(&id));
        forged["fromId"] = json!(c.id);
        assert_eq!(error(&aw.request(forged, 9).await), "forbidden");
        // Unknown and malformed calls.
        assert_eq!(error(&act(&mut aw, "Call/Hangup", "00000000-0000-0000-0000-000000000000", 10).await), "unknown_call");
        assert_eq!(error(&act(&mut aw, "Call/Hangup", "not-a-uuid", 11).await), "unknown_call");
        assert_eq!(error(&aw.request(json!({"method": "Call/Hangup", "data": {}}), 12).await), "missing_field");
        assert_eq!(error(&aw.request(json!({"method": "Call/Accept", "data": {"callId": 5}}), 13).await), "missing_field");
        // The peer received none of it.
        assert!(no_code(&bw.drain(Duration::from_millis(300)).await, &[10009, 10010, 10011, 10016]));
        // The call is untouched.
        assert_eq!(a.record(&server, &id).await["status"], "active");
        ok(&aw.request(offer(b.id, Some(&id)), 14).await);
        assert_eq!(bw.wait_for(10010).await["data"]["callId"], id.as_str());
    }

    #[tokio::test]
    async fn call_reports_are_kept_on_the_record() {
        let server = Server::start_with(LONG);
        let (a, b, c) = (person(&server, "alice").await, person(&server, "bob").await, person(&server, "carol").await);
        let (id, mut aw, mut bw) = active_call(&server, &a, &b).await;
        let stats = json!({"iceState": "connected", "localCandidateType": "host", "remoteCandidateType": "srflx", "rttMs": 12, "bitrateKbps": 900, "packetLoss": 0.01});
        ok(&aw.request(json!({"method": "Call/Report", "data": {"callId": id, "stats": stats}}), 1).await);
        assert_eq!(a.record(&server, &id).await["reports"]["caller"], stats);
        ok(&act(&mut bw, "Call/Hangup", &id, 1).await);
        aw.wait_for(10016).await;
        // The last report, sent after the hangup, is kept too.
        let last = json!({"iceState": "closed", "rttMs": 15});
        ok(&bw.request(json!({"method": "Call/Report", "data": {"callId": id, "stats": last}}), 2).await);
        let rec = b.record(&server, &id).await;
        assert_eq!((rec["reports"]["callee"].clone(), rec["reports"]["caller"].clone()), (last, stats));
        let mut cw = c.ws(&server).await;
        assert_eq!(error(&cw.request(json!({"method": "Call/Report", "data": {"callId": id, "stats": {}}}), 1).await), "not_a_party");
        assert_eq!(error(&cw.request(json!({"method": "Call/Report", "data": {"callId": "nope", "stats": {}}}), 2).await), "unknown_call");
        assert_eq!(error(&aw.request(json!({"method": "Call/Report", "data": {"callId": id}}), 3).await), "missing_field");
    }

    #[tokio::test]
    async fn call_history_is_paged_and_private() {
        let server = Server::start_with(LONG);
        let (a, b, c) = (person(&server, "alice").await, person(&server, "bob").await, person(&server, "carol").await);
        let mut aw = a.ws(&server).await;
        let mut bw = b.ws(&server).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            let id = ok(&invite(&mut aw, b.id, i).await)["callId"].as_str().unwrap().to_string();
            bw.wait_for(10012).await;
            ok(&act(&mut aw, "Call/Cancel", &id, 100 + i).await);
            ids.push(id);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let page = b.http(&server, "/api/calls?limit=3").await.body;
        let got: Vec<&str> = page.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(got, [ids[4].as_str(), ids[3].as_str(), ids[2].as_str()]);
        assert!(page.as_array().unwrap().iter().all(|r| r["direction"] == "incoming" && r["status"] == "cancelled"));
        let rest = b.http(&server, &format!("/api/calls?before={}", ids[2])).await.body;
        let got: Vec<&str> = rest.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(got, [ids[1].as_str(), ids[0].as_str()]);
        // Carol sees none of it, not even by id.
        assert!(c.http(&server, "/api/calls").await.body.as_array().unwrap().is_empty());
        let a404 = c.http(&server, &format!("/api/calls/{}", ids[0])).await;
        assert_eq!((a404.status, a404.error()), (404, "not_found"));
        assert_eq!(c.http(&server, "/api/calls/nope").await.status, 404);
        assert_eq!(b.http(&server, "/api/calls?limit=zero").await.status, 400);
        assert_eq!(server.client().get("/api/calls").await.status, 401);
    }

    #[tokio::test]
    async fn rule_11_a_restart_does_not_end_a_call() {
        for crash in [false, true] {
            let mut server = Server::start_with(LONG);
            let (a, b) = (person(&server, "alice").await, person(&server, "bob").await);
            let (id, mut aw, mut bw) = active_call(&server, &a, &b).await;
            if crash {
                server.kill();
            } else {
                let stopping = std::thread::spawn(move || {
                    server.stop();
                    server
                });
                assert!(aw.wait_for(10021).await["data"]["reconnectAfterMs"].is_u64());
                bw.wait_for(10021).await;
                assert_eq!(aw.closed().await, Some(1001));
                server = stopping.join().unwrap();
            }
            server.restart();
            // Both come back; each gets the call in its welcome and a 10020.
            let mut aw = a.ws(&server).await;
            assert_eq!(aw.welcome["data"]["activeCall"]["callId"], id.as_str(), "crash={crash}");
            assert_eq!(aw.welcome["data"]["activeCall"]["role"], "caller");
            aw.wait_for(10020).await;
            let mut bw = b.ws(&server).await;
            assert_eq!(bw.welcome["data"]["activeCall"]["state"], "active");
            bw.wait_for(10020).await;
            assert_eq!(aw.wait_for(10019).await["data"]["state"], "connected");
            // Signaling flows again, and the call ends normally.
            ok(&aw.request(json!({"method": "Message/Offer", "toId": b.id, "data": {"sdp": {"type": "offer", "sdp": "restart"}}}), 1).await);
            bw.wait_for(10010).await;
            ok(&act(&mut aw, "Call/Hangup", &id, 2).await);
            assert_eq!(bw.wait_for(10016).await["data"]["reason"], "hangup");
            let rec = a.record(&server, &id).await;
            assert_eq!(rec["status"], "completed", "crash={crash}");
        }
    }

    #[tokio::test]
    async fn rule_11_a_restored_call_nobody_returns_to_fails() {
        let mut server = Server::start_with(SHORT);
        let (a, b) = (person(&server, "alice").await, person(&server, "bob").await);
        let (id, _aw, _bw) = active_call(&server, &a, &b).await;
        server.kill();
        server.restart();
        // Nobody reconnects: after the grace the call is recorded failed.
        let mut rec = Value::Null;
        for _ in 0..40 {
            rec = a.record(&server, &id).await;
            if rec["status"] != "active" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!((rec["status"].as_str(), rec["endReason"].as_str()), (Some("failed"), Some("peer_lost")));
    }
}
