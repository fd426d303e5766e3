//! `duet loadtest`: a load generator with real WebSocket clients, against any duet URL (and, for
//! the comparison in `bench/`, against the bare relay and the PeerJS server). One run has phases:
//!
//! 1. users: seeded straight into the database with sessions issued beforehand (a Monday
//!    morning: every browser still holds its cookie), or registered and logged in over HTTP
//!    (argon2 makes those slow on purpose; they are reported apart);
//! 2. `--online` users connect and stay, then the rest connect all at once (the storm);
//! 3. every connection is held idle for `--hold-secs` and the server's memory is read;
//! 4. `--calls` whole call flows (invite, ring, accept, offer, answer, candidates, hangup) at
//!    `--call-rate` with up to `--calls-live` calls up;
//! 5. `--relay-pairs` pairs in calls relay candidates open-loop at `--relay-rate` frames/s.
//!
//! It ends with a table (or `--json`): connections per second, connect time, call setup time,
//! relay latency, frames delivered, errors by name, and the server's CPU and memory.

mod client;
mod stats;
mod users;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

pub use client::Target;
use client::{Conn, Shared, wait_code};
use stats::{Errors, Latencies, Server, Spread};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Base URL of the server under test.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// duet: a second node of the same cluster. Every second user (each pair's callee) connects
    /// there, so calls and relayed frames cross nodes.
    #[arg(long)]
    pub peer_url: Option<String>,
    /// Which server it is (the bare relay and PeerJS only for the comparison in bench/).
    #[arg(long, value_enum, default_value = "duet")]
    pub target: Target,
    /// Users in all: `--online` of them first, then the rest at once.
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Users connected (and held) before the storm.
    #[arg(long, default_value_t = 0)]
    pub online: usize,
    /// duet: seed users and sessions straight into this database (the server's); without it
    /// users register and log in over HTTP.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Hold every connection idle this long, then read the server's memory.
    #[arg(long, default_value_t = 1)]
    pub hold_secs: u64,
    /// duet: whole call flows to run.
    #[arg(long, default_value_t = 0)]
    pub calls: usize,
    /// New calls a second (0: all at once).
    #[arg(long, default_value_t = 100)]
    pub call_rate: u64,
    /// Calls kept up at once; each call lasts about calls-live / call-rate seconds.
    #[arg(long, default_value_t = 100)]
    pub calls_live: usize,
    /// Pairs that relay candidates to each other (duet: in a call).
    #[arg(long, default_value_t = 0)]
    pub relay_pairs: usize,
    /// Candidate frames a second, over all pairs, open loop.
    #[arg(long, default_value_t = 1000)]
    pub relay_rate: u64,
    #[arg(long, default_value_t = 10)]
    pub relay_secs: u64,
    /// The server's process id, to read its CPU time and memory from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// How long one connection may take to get ready before it counts as timed out.
    #[arg(long, default_value_t = 60)]
    pub connect_timeout_secs: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// The node the `i`th user connects to: with `--peer-url`, odd users go to the second node.
    fn node_url(&self, i: usize) -> &str {
        match &self.peer_url {
            Some(peer) if i % 2 == 1 => peer,
            _ => &self.url,
        }
    }
}

#[derive(Serialize, Default)]
struct ConnectReport {
    sockets: usize,
    seconds: f64,
    per_sec: f64,
    #[serde(flatten)]
    spread: Spread,
    errors: std::collections::BTreeMap<String, u64>,
    server_cpu_ms_per_socket: Option<f64>,
    online_before: usize,
}

#[derive(Serialize)]
struct MemoryReport {
    connections: usize,
    rss_kib: Option<f64>,
    rss_kib_per_connection: Option<f64>,
}

#[derive(Serialize)]
struct CallsReport {
    calls: usize,
    completed: usize,
    seconds: f64,
    setup_p50_ms: f64,
    setup_p99_ms: f64,
    setup_max_ms: f64,
    errors: std::collections::BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct RelayReport {
    frames_sent: u64,
    frames_delivered: usize,
    seconds: f64,
    per_sec: f64,
    #[serde(flatten)]
    spread: Spread,
    server_cpu_us_per_frame: Option<f64>,
}

#[derive(Serialize)]
struct Report {
    target: Target,
    url: String,
    peer_url: Option<String>,
    /// With `--peer-url`: how long until the first node saw the second node's users online.
    presence_settle_ms: Option<f64>,
    logins: Option<users::LoginReport>,
    connect: ConnectReport,
    memory: MemoryReport,
    calls: Option<CallsReport>,
    relay: Option<RelayReport>,
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Target::Duet => "duet",
            Target::Bare => "bare",
            Target::Peerjs => "peerjs",
        })
    }
}

fn progress(json: bool, line: impl AsRef<str>) {
    // Progress goes to stderr, so `--json` keeps stdout for the one object.
    let _ = json;
    eprintln!("loadtest: {}", line.as_ref());
}

/// Runs the whole load and prints the report.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.peer_url.is_some() && args.target != Target::Duet {
        anyhow::bail!("--peer-url needs --target duet: only duet has nodes");
    }
    if args.online > args.users {
        anyhow::bail!("--online ({}) cannot exceed --users ({})", args.online, args.users);
    }
    if args.target != Target::Duet && args.calls > 0 {
        anyhow::bail!("--calls needs --target duet: only duet has calls");
    }
    // Call lanes take pairs from the front of the pool, relay pairs from the back.
    let lanes = if args.call_rate == 0 { args.calls } else { args.calls_live.min(args.calls).max(1) };
    let needed = 2 * args.relay_pairs + if args.calls > 0 { 2 * lanes } else { 0 };
    if needed > args.users {
        anyhow::bail!("--users ({}) is too few: the calls and relay pairs need {needed}", args.users);
    }
    let server = args.server_pid.map(Server::new);
    let rss_before = server.and_then(|s| s.rss_kib());
    let shared = Arc::new(Shared { start: Instant::now(), relay: Latencies::default() });

    // 1. Who connects.
    let (identities, logins) = users::prepare(&args).await?;
    progress(args.json, format!("{} users ready", identities.len()));

    // 2. Online first, in steps so that their connects do not distort anything; then the storm.
    let within = Duration::from_secs(args.connect_timeout_secs);
    let mut conns: Vec<Conn> = Vec::with_capacity(args.users);
    let pre_errors = Errors::default();
    for (n, chunk) in identities[..args.online].chunks(200).enumerate() {
        let opened = futures_util::future::join_all(chunk.iter().enumerate().map(|(i, who)| Conn::open(args.node_url(n * 200 + i), args.target, who.clone(), shared.clone(), within))).await;
        for c in opened {
            match c {
                Ok(c) => conns.push(c),
                Err(e) => pre_errors.add(e.name()),
            }
        }
    }
    if pre_errors.total() > 0 {
        progress(args.json, format!("{} of the online users could not connect: {:?}", pre_errors.total(), pre_errors.snapshot()));
    }
    let online_before = conns.len();
    progress(args.json, format!("{online_before} online; storm of {} connections", args.users - args.online));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let storm = &identities[args.online..];
    let connect_times = Arc::new(Latencies::default());
    let errors = Arc::new(Errors::default());
    let cpu0 = server.and_then(|s| s.cpu_ms());
    let t0 = Instant::now();
    let tasks: Vec<_> = storm
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, who)| {
            let (url, target, shared, times, errors) = (args.node_url(args.online + i).to_string(), args.target, shared.clone(), connect_times.clone(), errors.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                match Conn::open(&url, target, who, shared, within).await {
                    Ok(c) => {
                        times.record_us(started.elapsed().as_micros() as u64);
                        Some((c, Instant::now()))
                    }
                    Err(e) => {
                        errors.add(e.name());
                        None
                    }
                }
            })
        })
        .collect();
    let mut last_ready = t0;
    for t in tasks {
        if let Ok(Some((c, at))) = t.await {
            last_ready = last_ready.max(at);
            conns.push(c);
        }
    }
    let storm_secs = last_ready.duration_since(t0).as_secs_f64();
    // The server goes on working after the last client is ready (presence to the others): wait
    // until it is quiet before reading its CPU.
    let cpu1 = match server {
        Some(s) => Some(settle(s).await),
        None => None,
    };
    let connected = connect_times.len();
    let connect = ConnectReport {
        sockets: connected,
        seconds: storm_secs,
        per_sec: if storm_secs > 0.0 { connected as f64 / storm_secs } else { 0.0 },
        spread: connect_times.spread(),
        errors: errors.snapshot(),
        server_cpu_ms_per_socket: match (cpu0, cpu1) {
            (Some(a), Some(Some(b))) if connected > 0 => Some((b - a) / connected as f64),
            _ => None,
        },
        online_before,
    };
    progress(args.json, format!("storm: {connected} connected in {storm_secs:.2} s, {} errors", errors.total()));

    // Users on the second node are seen online by the first before anyone calls them.
    let presence_settle_ms = match &args.peer_url {
        Some(_) => Some(users::settle_presence(&args, &identities).await?),
        None => None,
    };

    // 3. Idle holding.
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    let rss_after = server.and_then(|s| s.rss_kib());
    let memory = MemoryReport {
        connections: conns.len(),
        rss_kib: rss_after,
        rss_kib_per_connection: match (rss_before, rss_after) {
            (Some(a), Some(b)) if !conns.is_empty() => Some((b - a) / conns.len() as f64),
            _ => None,
        },
    };

    // 4. Call flows.
    let calls = if args.calls > 0 { Some(call_flows(&args, &mut conns).await) } else { None };

    // 5. Open-loop relay.
    let relay = if args.relay_pairs > 0 { Some(relay(&args, &mut conns, &shared, server).await?) } else { None };

    let report = Report { target: args.target, url: args.url.clone(), peer_url: args.peer_url.clone(), presence_settle_ms, logins, connect, memory, calls, relay };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    drop(conns);
    Ok(())
}

/// Waits until the server's CPU time stops moving (two 200 ms reads in a row with less than
/// 20 ms between them, or 30 s), and returns it.
async fn settle(server: Server) -> Option<f64> {
    let mut last = server.cpu_ms()?;
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = server.cpu_ms()?;
        if now - last < 20.0 {
            return Some(now);
        }
        last = now;
    }
    Some(last)
}

/// Pairs of connections (caller, callee) taken from the front of the pool.
fn pairs(conns: &mut [Conn], n: usize) -> Vec<(usize, usize)> {
    (0..n).map(|i| (2 * i, 2 * i + 1)).filter(|(_, b)| *b < conns.len()).collect()
}

/// Pairs taken from the back of the pool, so they are not the call lanes' connections.
fn back_pairs(conns: &mut [Conn], n: usize) -> Vec<(usize, usize)> {
    let len = conns.len();
    (0..n).filter(|i| 2 * i + 2 <= len).map(|i| (len - 2 - 2 * i, len - 1 - 2 * i)).collect()
}

/// Sets up one call from `caller` to `callee` and returns its id and the setup time (invite sent
/// to 10014 received).
async fn set_up(caller: &Conn, callee: &Conn, inbox_a: &mut tokio::sync::mpsc::UnboundedReceiver<Value>, inbox_b: &mut tokio::sync::mpsc::UnboundedReceiver<Value>, seq: i64) -> Result<(String, Duration), String> {
    let wait = Duration::from_secs(10);
    let started = Instant::now();
    caller.send(&json!({"method": "Call/Invite", "seq": seq, "toId": callee.who.id, "data": {"media": {"audio": true, "video": true}}}));
    let ring = tokio::select! {
        ring = wait_code(inbox_b, 10012, None, wait) => ring.ok_or("no_incoming_call")?,
        // The invite refused: its 10003 comes to the caller.
        refused = wait_code(inbox_a, 0, Some(seq), wait) => {
            return Err(refused.map_or("no_incoming_call".to_string(), |v| v["data"]["error"].as_str().unwrap_or("error").to_string()));
        }
    };
    let call_id = ring["data"]["callId"].as_str().ok_or("no_call_id")?.to_string();
    callee.send(&json!({"method": "Call/Accept", "data": {"callId": call_id}}));
    loop {
        let v = wait_code(inbox_a, 10014, Some(seq), wait).await.ok_or("no_accept")?;
        match v["code"].as_u64() {
            Some(10014) => return Ok((call_id, started.elapsed())),
            Some(10003) => return Err(v["data"]["error"].as_str().unwrap_or("error").to_string()),
            _ => {}
        }
    }
}

/// Phase 4: whole call flows, `--calls-live` pairs each running calls one after another.
async fn call_flows(args: &Args, conns: &mut [Conn]) -> CallsReport {
    // All at once (`--call-rate 0`): every call on a lane of its own.
    let lanes = if args.call_rate == 0 { args.calls } else { args.calls_live.min(args.calls).max(1) };
    let setup = Arc::new(Latencies::default());
    let errors = Arc::new(Errors::default());
    let completed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Each call lasts as long as keeps `calls_live` up at `call_rate`.
    let hold = if args.call_rate == 0 { Duration::ZERO } else { Duration::from_secs_f64(lanes as f64 / args.call_rate as f64) };
    let interval = if args.call_rate == 0 { Duration::ZERO } else { Duration::from_secs_f64(1.0 / args.call_rate as f64) };
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (a, b) in pairs(conns, lanes) {
        let (mut ia, mut ib) = (conns[a].listen(), conns[b].listen());
        let (ca, cb) = (conns[a].clone_handle(), conns[b].clone_handle());
        let (setup, errors, completed, next, total) = (setup.clone(), errors.clone(), completed.clone(), next.clone(), args.calls);
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if k >= total {
                    return;
                }
                // Calls start on a fixed schedule (open loop), whichever lane is free.
                let due = started + interval * k as u32;
                tokio::time::sleep_until(due.into()).await;
                match set_up(&ca, &cb, &mut ia, &mut ib, k as i64).await {
                    Ok((call_id, took)) => {
                        setup.record_us(took.as_micros() as u64);
                        let offer = json!({"method": "Message/Offer", "toId": cb.who.id, "data": {"callId": call_id, "sdp": {"type": "offer", "sdp": "v=0"}}});
                        ca.send(&offer);
                        cb.send(&json!({"method": "Message/Answer", "toId": ca.who.id, "data": {"callId": call_id, "sdp": {"type": "answer", "sdp": "v=0"}}}));
                        for i in 0..4u64 {
                            ca.send_candidate(Target::Duet, cb.who.id, Some(&call_id), i);
                            cb.send_candidate(Target::Duet, ca.who.id, Some(&call_id), i);
                        }
                        tokio::time::sleep(hold).await;
                        ca.send(&json!({"method": "Call/Hangup", "data": {"callId": call_id}}));
                        if wait_code(&mut ib, 10016, None, Duration::from_secs(10)).await.is_none() {
                            errors.add("no_hangup");
                        } else {
                            completed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        errors.add(e);
                        // Clear the way for the lane's next call.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let s = setup.spread();
    CallsReport {
        calls: args.calls,
        completed: completed.load(std::sync::atomic::Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        setup_p50_ms: s.p50_ms,
        setup_p99_ms: s.p99_ms,
        setup_max_ms: s.max_ms,
        errors: errors.snapshot(),
    }
}

/// Phase 5: `--relay-pairs` pairs relay candidate frames to each other, open loop.
async fn relay(args: &Args, conns: &mut [Conn], shared: &Arc<Shared>, server: Option<Server>) -> anyhow::Result<RelayReport> {
    let pairs = back_pairs(conns, args.relay_pairs);
    // duet relays only inside a call: put every pair in one first.
    let mut call_ids: Vec<Option<String>> = vec![None; pairs.len()];
    if args.target == Target::Duet {
        let mut inboxes = Vec::new();
        for (a, b) in &pairs {
            inboxes.push((conns[*a].listen(), conns[*b].listen()));
        }
        let setups = pairs.iter().zip(inboxes.iter_mut()).enumerate().map(|(i, ((a, b), (ia, ib)))| {
            let (ca, cb) = (&conns[*a], &conns[*b]);
            async move { set_up(ca, cb, ia, ib, i as i64).await.map(|(id, _)| id) }
        });
        let results = futures_util::future::join_all(setups).await;
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(id) => call_ids[i] = Some(id),
                Err(e) => anyhow::bail!("a relay pair could not set up its call: {e}"),
            }
        }
        progress(args.json, format!("{} relay pairs in calls", pairs.len()));
        // Keep the inboxes drained so they do not grow; acks and the like are not measured.
        for (mut ia, mut ib) in inboxes {
            tokio::spawn(async move { while ia.recv().await.is_some() {} });
            tokio::spawn(async move { while ib.recv().await.is_some() {} });
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    shared.relay.clear();
    let cpu0 = server.and_then(|s| s.cpu_ms());
    let started = Instant::now();
    let window = Duration::from_secs(args.relay_secs);
    let mut sent: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while started.elapsed() < window {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * args.relay_rate as f64) as u64;
        while sent < due {
            let k = (sent as usize) % (2 * pairs.len());
            let (i, forward) = (k / 2, k % 2 == 0);
            let (a, b) = pairs[i];
            let (from, to) = if forward { (a, b) } else { (b, a) };
            let stamp = shared.start.elapsed().as_micros() as u64;
            conns[from].send_candidate(args.target, conns[to].who.id, call_ids[i].as_deref(), stamp);
            sent += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    // Frames still on their way arrive within a moment.
    for _ in 0..50 {
        if shared.relay.len() as u64 >= sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu1 = server.and_then(|s| s.cpu_ms());
    let delivered = shared.relay.len();
    Ok(RelayReport {
        frames_sent: sent,
        frames_delivered: delivered,
        seconds,
        per_sec: delivered as f64 / seconds,
        spread: shared.relay.spread(),
        server_cpu_us_per_frame: match (cpu0, cpu1) {
            (Some(a), Some(b)) if delivered > 0 => Some((b - a) * 1000.0 / delivered as f64),
            _ => None,
        },
    })
}

fn print_table(r: &Report) {
    let opt = |v: Option<f64>, unit: &str| v.map_or("-".to_string(), |v| format!("{v:.2} {unit}"));
    println!("duet loadtest against {} ({:?})", r.url, r.target);
    println!("{:<44} value", "figure");
    if let Some(l) = &r.logins {
        println!("{:<44} {} in {:.2} s, p50 {:.1} ms, p99 {:.1} ms", "password logins (argon2)", l.logins, l.seconds, l.spread.p50_ms, l.spread.p99_ms);
    }
    let c = &r.connect;
    println!("{:<44} {}", "online before the storm", c.online_before);
    println!("{:<44} {} in {:.2} s", "storm: connections ready", c.sockets, c.seconds);
    println!("{:<44} {:.0}/s", "storm: connections per second", c.per_sec);
    println!("{:<44} p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", "storm: connect time (upgrade to 10000)", c.spread.p50_ms, c.spread.p99_ms, c.spread.max_ms);
    println!("{:<44} {}", "storm: server CPU per new socket", opt(c.server_cpu_ms_per_socket, "ms"));
    println!("{:<44} {:?}", "storm: errors", c.errors);
    println!("{:<44} {}", "idle: connections held", r.memory.connections);
    println!("{:<44} {}", "idle: server RSS", opt(r.memory.rss_kib, "KiB"));
    println!("{:<44} {}", "idle: server memory per connection", opt(r.memory.rss_kib_per_connection, "KiB"));
    if let Some(k) = &r.calls {
        println!("{:<44} {} of {} in {:.1} s", "calls: completed", k.completed, k.calls, k.seconds);
        println!("{:<44} p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", "calls: setup (invite to 10014)", k.setup_p50_ms, k.setup_p99_ms, k.setup_max_ms);
        println!("{:<44} {:?}", "calls: errors", k.errors);
    }
    if let Some(x) = &r.relay {
        println!("{:<44} {} sent, {} delivered, {:.0}/s", "relay: candidate frames", x.frames_sent, x.frames_delivered, x.per_sec);
        println!("{:<44} p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", "relay: latency", x.spread.p50_ms, x.spread.p99_ms, x.spread.max_ms);
        println!("{:<44} {}", "relay: server CPU per relayed frame", opt(x.server_cpu_us_per_frame, "us"));
    }
}
