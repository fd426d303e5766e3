//! The chaos suite (DESIGN.md "Supervision"): dozens of concurrent calls (invite, accept,
//! signaling, hangup) while random non-supervisor actors are killed every few hundred
//! milliseconds. Afterwards the system must converge: every call record terminal, presence right
//! for every user, no live call left, the actor count back to its baseline, the server answering.
//!
//! `DUET_CHAOS_SEED` picks the seed (printed otherwise), `DUET_CHAOS_RUNS` repeats the run.
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

const PAIRS: usize = 14;
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

/// Kills a random connection, call session or the registry every 100–300 ms.
async fn killer(server_url: String, stop: Arc<AtomicBool>, seed: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let http = reqwest::Client::new();
    let mut killed = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..300))).await;
        let Ok(res) = http.get(format!("{server_url}/api/admin/actors")).bearer_auth(ADMIN_TOKEN).send().await else { continue };
        let actors: Vec<Value> = res.json().await.unwrap_or_default();
        // A kind first, then one of its actors, so the lone registry is hit as often as the rest.
        let kind = ["connection", "call", "registry"][rng.random_range(0..3)];
        let victims: Vec<&Value> = actors.iter().filter(|a| a["kind"] == kind).collect();
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

async fn one_run(seed: u64) {
    let server = Server::start_with(&[
        ("DUET_ADMIN_TOKEN", ADMIN_TOKEN),
        ("DUET_RING_TIMEOUT_MS", "1500"),
        ("DUET_RECONNECT_GRACE_MS", "700"),
        ("RUST_LOG", "warn,duet::http=info"),
    ]);
    let baseline: Vec<String> = {
        let mut names: Vec<String> = server.actors().await.iter().map(|a| a["name"].as_str().unwrap().to_string()).collect();
        names.sort();
        names
    };
    let mut people = Vec::new();
    for i in 0..PAIRS * 2 {
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
    eprintln!("chaos seed {seed}: {calls_done} calls completed, {} kills ({} sessions, {} connections, {} registry)",
        killed.len(),
        killed.iter().filter(|k| k.starts_with("call:")).count(),
        killed.iter().filter(|k| k.starts_with("conn:")).count(),
        killed.iter().filter(|k| *k == "registry").count());
    assert!(calls_done >= 10, "the chaos left room for calls: {calls_done}");
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
}

every_backend! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_converge_while_actors_are_killed() {
        let seed: u64 = std::env::var("DUET_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
        });
        let runs: u64 = std::env::var("DUET_CHAOS_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
        for run in 0..runs {
            eprintln!("chaos run {}/{runs}, seed {}", run + 1, seed.wrapping_add(run));
            one_run(seed.wrapping_add(run)).await;
        }
    }
}
