//! The chaos suite (DESIGN.md "Supervision"): concurrent calls (invite, accept, signaling,
//! hangup), few and many, while random actors of every kind (connections, call sessions, the
//! registry and the three supervisors under the root) are killed every 50-300 ms; and bursts that
//! kill one actor as fast as the API answers. Afterwards the system must converge: the same
//! process still up, every call record terminal, presence right for every user, no live call
//! left, the actor count back to its baseline, and a fresh call working.
//!
//! `DUET_CHAOS_SEED` picks the seed (printed otherwise), `DUET_CHAOS_RUNS` repeats the run,
//! `DUET_CHAOS_BURST_SECS` sets each burst's length (15 s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{ADMIN_TOKEN, Server, user};
use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Pairs calling each other: few calls up, and many.
const FEW: usize = 3;
const MANY: usize = 14;
const CHAOS_FOR: Duration = Duration::from_secs(5);

/// A client that never panics: every failure is an `Err`, after which it reconnects.
struct Peer {
    id: i64,
    token: String,
    url: String,
    ws: Option<common::Socket>,
    seq: i64,
}

type Res<T> = Result<T, String>;

impl Peer {
    async fn ensure(&mut self) -> Res<()> {
        if self.ws.is_some() {
            return Ok(());
        }
        for _ in 0..50 {
            match tokio_tungstenite::connect_async(format!("{}?token={}", self.url, self.token)).await {
                Ok((ws, _)) => {
                    self.ws = Some(ws);
                    return Ok(());
                }
                // 503 while the registry restarts: try again shortly.
                Err(_) => tokio::time::sleep(Duration::from_millis(30)).await,
            }
        }
        Err("could not connect".into())
    }

    fn drop_socket(&mut self) {
        self.ws = None;
    }

    async fn send(&mut self, frame: Value) -> Res<i64> {
        self.seq += 1;
        let mut frame = frame;
        frame["seq"] = json!(self.seq);
        let ws = self.ws.as_mut().ok_or("no socket")?;
        if ws.send(Message::Text(frame.to_string().into())).await.is_err() {
            self.drop_socket();
            return Err("send failed".into());
        }
        Ok(self.seq)
    }

    /// The next frame matching `f`, within `within`.
    async fn wait(&mut self, within: Duration, f: impl Fn(&Value) -> bool) -> Res<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let ws = self.ws.as_mut().ok_or("no socket")?;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, ws.next()).await {
                Err(_) => return Err("timeout".into()),
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
                    if f(&v) {
                        return Ok(v);
                    }
                }
                Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) => {
                    self.drop_socket();
                    return Err("closed".into());
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Sends a frame and waits for its ack (`Ok`) or error (`Err(name)`).
    async fn request(&mut self, frame: Value) -> Res<Value> {
        let seq = self.send(frame).await?;
        let answer = self.wait(Duration::from_secs(3), |v| (v["code"] == 10002 || v["code"] == 10003) && v["data"]["seq"] == seq).await?;
        if answer["code"] == 10002 { Ok(answer["data"].clone()) } else { Err(answer["data"]["error"].as_str().unwrap_or("?").to_string()) }
    }

    async fn close(&mut self) {
        if let Some(mut ws) = self.ws.take() {
            let _ = ws.close(None).await;
        }
    }
}

/// One pair's life during the chaos: call, answer, signal, hang up, again; tolerate anything.
async fn pair_loop(mut a: Peer, mut b: Peer, stop: Arc<AtomicBool>, completed: Arc<AtomicUsize>, seed: u64) -> (Peer, Peer) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.load(Ordering::Relaxed) {
        let _ = attempt(&mut a, &mut b, &mut rng, &completed).await;
    }
    (a, b)
}

async fn attempt(a: &mut Peer, b: &mut Peer, rng: &mut StdRng, completed: &AtomicUsize) -> Res<()> {
    a.ensure().await?;
    b.ensure().await?;
    let id = match a.request(json!({"method": "Call/Invite", "toId": b.id})).await {
        Ok(ack) => ack["callId"].as_str().ok_or("no callId")?.to_string(),
        Err(e) => {
            // A previous call of theirs may still be winding down (grace, timeout).
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Err(e);
        }
    };
    b.wait(Duration::from_millis(1500), |v| v["code"] == 10012 && v["data"]["callId"] == id.as_str()).await?;
    b.request(json!({"method": "Call/Accept", "data": {"callId": id}})).await?;
    a.wait(Duration::from_millis(1500), |v| v["code"] == 10014).await?;
    for _ in 0..rng.random_range(1..4) {
        a.request(json!({"method": "Message/Offer", "toId": b.id, "data": {"callId": id, "sdp": {"type": "offer", "sdp": "v=0"}}})).await?;
        b.wait(Duration::from_secs(1), |v| v["code"] == 10010).await?;
        b.request(json!({"method": "Message/Answer", "toId": a.id, "data": {"sdp": {"type": "answer", "sdp": "v=0"}}})).await?;
        a.wait(Duration::from_secs(1), |v| v["code"] == 10011).await?;
        b.request(json!({"method": "Message/Candidate", "toId": a.id, "data": {"candidate": {"candidate": "c"}}})).await?;
    }
    let (hanger, other) = if rng.random_bool(0.5) { (a, b) } else { (b, a) };
    hanger.request(json!({"method": "Call/Hangup", "data": {"callId": id}})).await?;
    other.wait(Duration::from_secs(1), |v| v["code"] == 10016).await?;
    completed.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Kills a random connection, call session, the registry or one of the three supervisors under
/// the root, every 50–300 ms.
async fn killer(server_url: String, stop: Arc<AtomicBool>, seed: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let http = reqwest::Client::new();
    let mut killed = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..300))).await;
        let Ok(res) = http.get(format!("{server_url}/api/admin/actors")).bearer_auth(ADMIN_TOKEN).send().await else { continue };
        let actors: Vec<Value> = res.json().await.unwrap_or_default();
        // A kind first, then one of its actors, so the lone registry is hit as often as the rest.
        let kind = ["connection", "call", "registry", "supervisor"][rng.random_range(0..4)];
        let victims: Vec<&Value> = actors.iter().filter(|a| a["kind"] == kind && a["name"] != "root-supervisor").collect();
        if victims.is_empty() {
            continue;
        }
        let name = victims[rng.random_range(0..victims.len())]["name"].as_str().unwrap_or_default().to_string();
        let _ = http.post(format!("{server_url}/api/admin/actors/{name}/kill")).bearer_auth(ADMIN_TOKEN).send().await;
        killed.push(name);
    }
    killed
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("never converged: {what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn one_run(seed: u64, pairs_up: usize) {
    let server = Server::start_with(&[
        ("DUET_ADMIN_TOKEN", ADMIN_TOKEN),
        ("DUET_RING_TIMEOUT_MS", "1500"),
        ("DUET_RECONNECT_GRACE_MS", "700"),
        // Each pair calls in a closed loop, far faster than any person rings another.
        ("DUET_INVITES_PER_MINUTE", "100000"),
        ("RUST_LOG", "warn,duet::http=info"),
    ]);
    let baseline: Vec<String> = {
        let mut names: Vec<String> = server.actors().await.iter().map(|a| a["name"].as_str().unwrap().to_string()).collect();
        names.sort();
        names
    };
    let mut people = Vec::new();
    let pid = server.pid();
    for i in 0..pairs_up * 2 {
        let (id, token) = user(&server, &format!("user{i:02}")).await;
        people.push(Peer { id, token, url: server.ws_url(), ws: None, seq: 0 });
    }

    let stop = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicUsize::new(0));
    let mut pairs = Vec::new();
    let mut it = people.into_iter();
    let mut n = 0u64;
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        pairs.push(tokio::spawn(pair_loop(a, b, stop.clone(), completed.clone(), seed.wrapping_add(n))));
        n += 1;
    }
    let killing = tokio::spawn(killer(server.url.clone(), stop.clone(), seed));
    tokio::time::sleep(CHAOS_FOR).await;
    stop.store(true, Ordering::Relaxed);
    let killed = killing.await.unwrap();
    let mut people = Vec::new();
    for p in pairs {
        let (a, b) = p.await.unwrap();
        people.push(a);
        people.push(b);
    }
    let calls_done = completed.load(Ordering::Relaxed);
    eprintln!("chaos seed {seed}, {pairs_up} pairs: {calls_done} calls completed, {} kills ({} sessions, {} connections, {} registry, {} supervisors)",
        killed.len(),
        killed.iter().filter(|k| k.starts_with("call:")).count(),
        killed.iter().filter(|k| k.starts_with("conn:")).count(),
        killed.iter().filter(|k| *k == "registry").count(),
        killed.iter().filter(|k| k.ends_with("-supervisor")).count());
    assert!(calls_done >= pairs_up, "the chaos left room for calls: {calls_done}");
    assert!(killed.len() >= 10, "enough chaos: {killed:?}");

    // Everyone leaves; then everything must settle.
    for p in people.iter_mut() {
        p.close().await;
    }
    let admin = server.admin();
    let http = admin.http.clone();
    let url = server.url.clone();
    eventually("no live call", async || {
        let calls: Vec<Value> = http.get(format!("{url}/api/admin/calls")).bearer_auth(ADMIN_TOKEN).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        if calls.is_empty() { Ok(()) } else { Err(format!("{calls:?}")) }
    })
    .await;
    eventually("the actor count back to its baseline", async || {
        let mut names: Vec<String> = server.actors().await.iter().map(|a| a["name"].as_str().unwrap().to_string()).collect();
        names.sort();
        if names == baseline { Ok(()) } else { Err(format!("{names:?}")) }
    })
    .await;
    // Every record is terminal, for every user.
    let mut records = 0;
    for p in &people {
        let list: Vec<Value> = http.get(format!("{url}/api/calls?limit=200")).bearer_auth(&p.token).send().await.unwrap().json().await.unwrap();
        for r in &list {
            let status = r["status"].as_str().unwrap();
            assert!(!["ringing", "active"].contains(&status), "a call left {status}: {r}");
            assert!(r["endedAt"].is_string() && r["endReason"].is_string(), "{r}");
        }
        records += list.len();
    }
    assert!(records >= calls_done * 2);
    // Presence: everyone is offline now...
    eventually("everyone offline", async || {
        let users: Vec<Value> = http.get(format!("{url}/api/users")).bearer_auth(&people[0].token).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        let online: Vec<&Value> = users.iter().filter(|u| u["status"] != "offline").collect();
        if online.is_empty() { Ok(()) } else { Err(format!("{online:?}")) }
    })
    .await;
    // ...and the ones who come back are seen, available, by each other.
    let mut back = Vec::new();
    for p in people.iter().take(4) {
        back.push(server.ws(&p.token).await);
    }
    let users: Vec<Value> = http.get(format!("{url}/api/users")).bearer_auth(&people[0].token).send().await.unwrap().json().await.unwrap();
    for u in &users {
        let expected = if people.iter().take(4).any(|p| p.id == u["id"]) { "available" } else { "offline" };
        assert_eq!(u["status"], expected, "{u}");
    }
    // The server still answers, and a fresh call works end to end.
    let (a, b) = (&people[0], &people[1]);
    let ack = back[0].request(json!({"method": "Call/Invite", "toId": b.id}), 900).await;
    assert_eq!(ack["code"], 10002, "{ack}");
    let id = ack["data"]["callId"].as_str().unwrap().to_string();
    back[1].wait_for(10012).await;
    assert_eq!(back[1].request(json!({"method": "Call/Accept", "data": {"callId": id}}), 900).await["code"], 10002);
    back[0].wait_for(10014).await;
    assert_eq!(back[0].request(json!({"method": "Call/Hangup", "data": {"callId": id}}), 901).await["code"], 10002);
    let _ = a;
    assert_eq!(server.client().get("/healthz").await.status, 200);
    assert_eq!(server.pid(), pid, "the same process");
    assert!(server.log.lock().unwrap().iter().all(|l| !l.contains("gives up")), "the root never gave up");
}

every_backend! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_converge_while_actors_are_killed() {
        let seed: u64 = std::env::var("DUET_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
        });
        let runs: u64 = std::env::var("DUET_CHAOS_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
        for run in 0..runs {
            let pairs = if run % 2 == 0 { MANY } else { FEW };
            eprintln!("chaos run {}/{runs}, seed {}, {pairs} pairs", run + 1, seed.wrapping_add(run));
            one_run(seed.wrapping_add(run), pairs).await;
            if runs == 1 {
                eprintln!("chaos run 1/1 (few calls), seed {}", seed.wrapping_add(1));
                one_run(seed.wrapping_add(1), FEW).await;
            }
        }
    }
}

/// Kills `name` as fast as the API answers for `secs`: how many kills landed (202) and how many
/// found it not yet back (404).
async fn burst(server: &Server, name: &str, secs: u64) -> (usize, usize) {
    let url = &server.url;
    let http = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(secs);
    let (mut landed, mut missed) = (0, 0);
    let mut failing_since: Option<Instant> = None;
    while Instant::now() < until {
        match http.post(format!("{url}/api/admin/actors/{name}/kill")).bearer_auth(ADMIN_TOKEN).send().await.map(|r| r.status().as_u16()) {
            Ok(202) => landed += 1,
            Ok(404) => missed += 1,
            Ok(other) => panic!("kill {name}: {other}"),
            // A loaded machine may reset a connection now and then; a server that stays away
            // for seconds is a failure.
            Err(e) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(3) {
                    let log = server.log.lock().unwrap();
                    let tail: Vec<&String> = log.iter().rev().take(30).collect();
                    panic!("kill {name}: {e}; the server's last lines: {tail:#?}");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        }
        failing_since = None;
    }
    (landed, missed)
}

/// A 15 s burst of registry kills, then one of call-supervisor kills, as fast as the API answers:
/// the server stays up on the same process, the calls that were up stay up and keep signaling,
/// presence stays right, and afterwards every call ends as it should.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_registry_and_call_supervisor_kills_leave_calls_intact() {
    let secs: u64 = std::env::var("DUET_CHAOS_BURST_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(15);
    let server = Server::start_with(&[
        ("DUET_ADMIN_TOKEN", ADMIN_TOKEN),
        ("DUET_RING_TIMEOUT_MS", "60000"),
        ("DUET_RECONNECT_GRACE_MS", "60000"),
        ("RUST_LOG", "warn,duet::http=info"),
    ]);
    let pid = server.pid();
    let mut pairs = Vec::new();
    for i in 0..4 {
        let (a, at) = user(&server, &format!("caller{i}")).await;
        let (b, bt) = user(&server, &format!("callee{i}")).await;
        let (mut aw, mut bw) = (server.ws(&at).await, server.ws(&bt).await);
        let ack = aw.request(json!({"method": "Call/Invite", "toId": b}), 1).await;
        let id = ack["data"]["callId"].as_str().unwrap().to_string();
        bw.wait_for(10012).await;
        assert_eq!(bw.request(json!({"method": "Call/Accept", "data": {"callId": id}}), 1).await["code"], 10002);
        aw.wait_for(10014).await;
        pairs.push((a, b, aw, bw, id, at));
    }
    for target in ["registry", "call-supervisor"] {
        let (landed, missed) = burst(&server, target, secs).await;
        eprintln!("burst of {target} kills for {secs} s: {landed} killed, {missed} found it restarting");
        assert!(landed >= 10, "{target}: {landed} kills");
        assert_eq!(server.pid(), pid, "the same process after the {target} burst");
        let calls = eventually("the calls back under a live supervisor", async || {
            let list = server.admin().get("/api/admin/calls").await.body;
            match list.as_array() {
                Some(l) if l.len() == 4 && l.iter().all(|c| c["state"] == "active") => Ok(l.clone()),
                _ => Err(list.to_string()),
            }
        })
        .await;
        assert_eq!(calls.len(), 4);
        for (round, (a, b, aw, bw, id, token)) in pairs.iter_mut().enumerate() {
            let seq = 10 + round as i64;
            let offer = json!({"callId": id, "sdp": {"type": "offer", "sdp": format!("v=0 after {target}")}});
            let ack = aw.request(json!({"method": "Message/Offer", "toId": *b, "data": offer}), seq).await;
            assert_eq!(ack["code"], 10002, "{target}: {ack}");
            assert_eq!(bw.wait_for(10010).await["data"]["data"], offer);
            let cand = json!({"callId": id, "candidate": {"candidate": "candidate:1 1 udp 1 10.0.0.1 5000 typ host"}});
            assert_eq!(bw.request(json!({"method": "Message/Candidate", "toId": *a, "data": cand}), seq).await["code"], 10002);
            assert_eq!(aw.wait_for(10009).await["data"]["data"], cand);
            // Presence: both parties are seen in their call.
            let mut c = server.client();
            c.token = Some(token.clone());
            let users = c.get("/api/users").await.body;
            for who in [*a, *b] {
                let u = users.as_array().unwrap().iter().find(|u| u["id"] == who).unwrap();
                assert_eq!(u["status"], "in_call", "{target}: {u}");
            }
        }
    }
    // Every call ends as asked, and its record says so.
    for (_, _, aw, bw, id, token) in pairs.iter_mut() {
        assert_eq!(aw.request(json!({"method": "Call/Hangup", "data": {"callId": id}}), 90).await["code"], 10002);
        bw.wait_for(10016).await;
        let mut c = server.client();
        c.token = Some(token.clone());
        let record = eventually("a terminal record", async || {
            let r = c.get(&format!("/api/calls/{id}")).await.body;
            if r["status"] == "completed" { Ok(r) } else { Err(r.to_string()) }
        })
        .await;
        assert_eq!(record["endReason"], "hangup");
    }
    // A fresh call works.
    let (a, _, _, bw, _, _) = &mut pairs[0];
    let caller = *a;
    let ack = bw.request(json!({"method": "Call/Invite", "toId": caller}), 99).await;
    assert_eq!(ack["code"], 10002, "{ack}");
    assert_eq!(server.pid(), pid);
}
