//! Several duet nodes through Redis (`DUET_REDIS_URL`): each node keeps its own connections and
//! publishes who is online on it; every node learns the others' users, so presence is shared
//! and a frame for a user on another node goes to that node's channel only. Nodes heartbeat into
//! a sorted set; a node whose heartbeat is older than the expiry is gone, and its users go
//! offline everywhere. While Redis is away each node serves what it holds alone and reports the
//! cluster degraded; when Redis returns, it writes its users again and reads the others'.
//!
//! Redis layout, under `DUET_REDIS_PREFIX` (`duet`): `{p}:nodes` (sorted set, node -> last
//! heartbeat ms), `{p}:users:{node}` (hash, user id -> user JSON, expiring with the node),
//! `{p}:calls` and `{p}:in-call` (the call directory, see `calls.rs`), channels `{p}:bus` (to
//! every node) and `{p}:node:{node}` (to one node).
//!
//! The cluster talks to the registry only through [`RegistryMsg::Cluster`] events, and to the
//! call supervisor only through [`CallSupMsg::Remote`] ones.

pub mod calls;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::call::remote::{Answer, Forward};
use crate::call::{self, CallSupMsg, supervisor::Remote};
use crate::presence::{self, RegistryMsg};
use crate::protocol::User;
use calls::{Claim, Directory, Entry};

/// What another node told this one, for the registry to act on.
pub enum ClusterEvent {
    /// A user is online somewhere else now (and was not, anywhere else, before).
    Online(User),
    /// A user's last connection on other nodes is gone.
    Offline { user_id: i64, name: String },
    /// A user on another node entered or left a call.
    InCall { user_id: i64, in_call: bool },
    /// A frame for this node's connections of a user.
    Deliver { user_id: i64, text: String },
    /// A frame for every connection of this node (the lobby).
    DeliverAll { text: String },
}

/// Messages between nodes.
#[derive(Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Wire {
    Online { node: String, user: User },
    Offline { node: String, user_id: i64 },
    InCall { node: String, user_id: i64, in_call: bool },
    ToUser { user_id: i64, text: String },
    ToAll { node: String, text: String },
    /// A frame for one connection of the receiving node.
    ToConn { conn: String, text: String },
    /// An event for a call the receiving node owns.
    CallEvent { call_id: String, event: Forward, answer: Answer },
    /// The answer to a node's [`Answer::Ask`].
    Reply { req: u64, value: serde_json::Value },
    /// A call entered the directory (announced by the script that put it there); `adopted` when
    /// a node took it over from a dead one.
    CallUp { call_id: String, entry: Entry, adopted: bool },
    CallDown { call_id: String },
}

/// Work for the Redis task, queued so that no actor waits on Redis.
enum Out {
    Publish { channel: String, payload: String },
    LocalOnline(User),
    LocalOffline(i64),
    /// A call this node owned ended: out of the directory.
    Release { call_id: String, caller: i64, callee: i64 },
}

struct RemoteUser {
    user: User,
    nodes: HashSet<String>,
}

#[derive(Clone, Debug)]
pub struct ClusterSettings {
    pub url: String,
    pub prefix: String,
    pub node: String,
    pub heartbeat: Duration,
    pub expiry: Duration,
}

pub struct Cluster {
    pub node: String,
    prefix: String,
    heartbeat: Duration,
    expiry: Duration,
    healthy: AtomicBool,
    remote: Mutex<HashMap<i64, RemoteUser>>,
    local: Mutex<HashMap<i64, User>>,
    nodes: Mutex<BTreeSet<String>>,
    out: mpsc::Sender<Out>,
    /// Who owns which call, cluster-wide.
    pub directory: Directory,
    /// The calls this node owns (caller, callee): written into the directory again after an
    /// outage.
    owned: Mutex<HashMap<String, (i64, i64)>>,
    /// Calls that ended here whose release is still queued: a claim that meets one of them
    /// releases it first (the user hung up and at once calls again).
    releasing: Mutex<HashMap<String, (i64, i64)>>,
    /// The connection the scripts run on, while Redis answers.
    conn: Mutex<Option<redis::aio::MultiplexedConnection>>,
    /// Questions to other nodes waiting for their answer.
    pending: Mutex<HashMap<u64, tokio::sync::oneshot::Sender<serde_json::Value>>>,
    next_req: AtomicU64,
}

/// The cluster this process is a node of (one per process: the call paths reach it here).
static CURRENT: OnceLock<Arc<Cluster>> = OnceLock::new();

pub fn current() -> Option<&'static Arc<Cluster>> {
    CURRENT.get()
}

/// Frames and changes queued for Redis; beyond this many a frame is dropped (and counted).
const OUT_QUEUE: usize = 16_384;

impl Cluster {
    /// Joins the cluster: starts the task that keeps this node's place in Redis.
    pub fn start(settings: ClusterSettings) -> anyhow::Result<Arc<Cluster>> {
        let client = redis::Client::open(settings.url.as_str()).map_err(|e| anyhow::anyhow!("DUET_REDIS_URL: {e}"))?;
        let (out, rx) = mpsc::channel(OUT_QUEUE);
        let cluster = Arc::new(Cluster {
            node: settings.node,
            prefix: settings.prefix,
            heartbeat: settings.heartbeat,
            expiry: settings.expiry,
            healthy: AtomicBool::new(false),
            remote: Mutex::default(),
            local: Mutex::default(),
            nodes: Mutex::default(),
            out,
            directory: Directory::default(),
            owned: Mutex::default(),
            releasing: Mutex::default(),
            conn: Mutex::default(),
            pending: Mutex::default(),
            next_req: AtomicU64::new(1),
        });
        let _ = CURRENT.set(cluster.clone());
        let me = cluster.clone();
        crate::protocol::conn::join_cluster(&cluster.node, Box::new(move |node, conn, text| me.to_conn(node, conn, text)));
        tokio::spawn(run(cluster.clone(), client, rx));
        Ok(cluster)
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    /// `EVAL` of one of `calls.rs`'s scripts over these keys (prefixed); its arguments follow.
    fn script(&self, body: &str, keys: &[&str]) -> redis::Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(body).arg(keys.len());
        for key in keys {
            cmd.arg(self.key(key));
        }
        cmd
    }

    /// Whether Redis answers: cross-node frames can be delivered.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The other nodes this one sees.
    pub fn peers(&self) -> Vec<String> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    /// Users online on other nodes.
    pub fn remote_users(&self) -> Vec<User> {
        self.remote.lock().unwrap_or_else(|p| p.into_inner()).values().map(|r| r.user.clone()).collect()
    }

    pub fn remote_user(&self, user_id: i64) -> Option<User> {
        self.remote.lock().unwrap_or_else(|p| p.into_inner()).get(&user_id).map(|r| r.user.clone())
    }

    /// Online on this node.
    pub fn is_local(&self, user_id: i64) -> bool {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&user_id)
    }

    fn queue(&self, out: Out) {
        if self.out.try_send(out).is_err() {
            metrics::counter!(crate::telemetry::names::CLUSTER_DROPPED).increment(1);
        }
    }

    fn publish(&self, channel: String, wire: &Wire) {
        if let Ok(payload) = serde_json::to_string(wire) {
            self.queue(Out::Publish { channel, payload });
        }
    }

    /// A user's first connection on this node.
    pub fn local_online(&self, user: &User) {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).insert(user.id, user.clone());
        self.queue(Out::LocalOnline(user.clone()));
    }

    /// A user's last connection on this node is gone.
    pub fn local_offline(&self, user_id: i64) {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).remove(&user_id);
        self.queue(Out::LocalOffline(user_id));
    }

    pub fn in_call(&self, user_id: i64, in_call: bool) {
        self.publish(self.key("bus"), &Wire::InCall { node: self.node.clone(), user_id, in_call });
    }

    /// A frame to a user's connections on other nodes: to each node that has one, only.
    pub fn to_user(&self, user_id: i64, text: &str) {
        let nodes: Vec<String> = self.remote.lock().unwrap_or_else(|p| p.into_inner()).get(&user_id).map(|r| r.nodes.iter().cloned().collect()).unwrap_or_default();
        for node in nodes {
            self.publish(self.key(&format!("node:{node}")), &Wire::ToUser { user_id, text: text.to_string() });
        }
    }

    /// A frame to every connection on the other nodes.
    pub fn to_all(&self, text: &str) {
        self.publish(self.key("bus"), &Wire::ToAll { node: self.node.clone(), text: text.to_string() });
    }

    /// A frame for a connection on `node`; false while Redis is away (it would be lost).
    fn to_conn(&self, node: &str, conn: &str, text: &str) -> bool {
        if !self.healthy() {
            return false;
        }
        self.publish(self.key(&format!("node:{node}")), &Wire::ToConn { conn: conn.to_string(), text: text.to_string() });
        true
    }

    /// An event for a call `owner` holds.
    pub fn send_event(&self, owner: &str, call_id: &str, event: Forward, answer: Answer) {
        self.publish(self.key(&format!("node:{owner}")), &Wire::CallEvent { call_id: call_id.to_string(), event, answer });
    }

    /// A question's number, and where its answer will arrive.
    pub fn expect_answer(&self) -> (u64, tokio::sync::oneshot::Receiver<serde_json::Value>) {
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(req, tx);
        (req, rx)
    }

    pub fn answer(&self, node: &str, req: u64, value: serde_json::Value) {
        self.publish(self.key(&format!("node:{node}")), &Wire::Reply { req, value });
    }

    fn scripts_conn(&self) -> Option<redis::aio::MultiplexedConnection> {
        if !self.healthy() {
            return None;
        }
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn entry(&self, caller: i64, callee: i64) -> Entry {
        Entry { owner: self.node.clone(), caller, callee }
    }

    /// Claims a new call's parties for this node, cluster-wide; `None` while Redis is away.
    pub async fn claim(&self, call_id: &str, caller: i64, callee: i64) -> Option<Claim> {
        let mut conn = self.scripts_conn()?;
        // Calls of these users that ended here but whose release is still queued go first.
        let pending: Vec<(String, (i64, i64))> = self
            .releasing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, (a, b))| [*a, *b].iter().any(|u| *u == caller || *u == callee))
            .map(|(id, users)| (id.clone(), *users))
            .collect();
        for (id, (a, b)) in pending {
            release(self, &mut conn, &id, a, b).await.inspect_err(|e| tracing::warn!(error = %e, "releasing a call in Redis")).ok()?;
        }
        let claim = self.try_claim(&mut conn, call_id, caller, callee).await?;
        let stale = match &claim {
            Claim::CallerIn(other) | Claim::CalleeIn(other) => self.releasing.lock().unwrap_or_else(|p| p.into_inner()).get(other).map(|users| (other.clone(), *users)),
            Claim::Claimed => None,
        };
        match stale {
            Some((other, (a, b))) => {
                release(self, &mut conn, &other, a, b).await.inspect_err(|e| tracing::warn!(error = %e, "releasing a call in Redis")).ok()?;
                self.try_claim(&mut conn, call_id, caller, callee).await
            }
            None => Some(claim),
        }
    }

    async fn try_claim(&self, conn: &mut redis::aio::MultiplexedConnection, call_id: &str, caller: i64, callee: i64) -> Option<Claim> {
        let entry = self.entry(caller, callee);
        let up = serde_json::to_string(&Wire::CallUp { call_id: call_id.to_string(), entry: entry.clone(), adopted: false }).ok()?;
        let (found, other): (i64, String) = self
            .script(calls::CLAIM, &["in-call", "calls", "bus"])
            .arg(call_id)
            .arg(caller)
            .arg(callee)
            .arg(serde_json::to_string(&entry).ok()?)
            .arg(up)
            .query_async(conn)
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "claiming a call in Redis"))
            .ok()?;
        Some(match found {
            1 => Claim::CallerIn(other),
            2 => Claim::CalleeIn(other),
            _ => {
                self.directory.up(call_id, entry);
                self.owned.lock().unwrap_or_else(|p| p.into_inner()).insert(call_id.to_string(), (caller, callee));
                Claim::Claimed
            }
        })
    }

    /// A call this node owned ended: out of the directory (later, if Redis is away now).
    pub fn release(&self, call_id: &str, caller: i64, callee: i64) {
        if self.owned.lock().unwrap_or_else(|p| p.into_inner()).remove(call_id).is_none() {
            return;
        }
        self.directory.down(call_id);
        self.releasing.lock().unwrap_or_else(|p| p.into_inner()).insert(call_id.to_string(), (caller, callee));
        self.queue(Out::Release { call_id: call_id.to_string(), caller, callee });
    }

    /// Takes over a live call whose owner is gone (`absent`: or that the directory lost). True
    /// if this node owns it now.
    pub async fn adopt(&self, call_id: &str, caller: i64, callee: i64, absent: bool) -> bool {
        let Some(mut conn) = self.scripts_conn() else { return false };
        let entry = self.entry(caller, callee);
        let Ok(up) = serde_json::to_string(&Wire::CallUp { call_id: call_id.to_string(), entry: entry.clone(), adopted: true }) else { return false };
        let since = now_ms() - self.expiry.as_millis() as i64;
        let taken: redis::RedisResult<i64> = self
            .script(calls::ADOPT, &["in-call", "calls", "bus", "nodes"])
            .arg(call_id)
            .arg(caller)
            .arg(callee)
            .arg(serde_json::to_string(&entry).unwrap_or_default())
            .arg(up)
            .arg(&self.node)
            .arg(since)
            .arg(if absent { "1" } else { "0" })
            .query_async(&mut conn)
            .await;
        if taken.as_ref().is_ok_and(|t| *t == 1) {
            self.directory.up(call_id, entry);
            self.owned.lock().unwrap_or_else(|p| p.into_inner()).insert(call_id.to_string(), (caller, callee));
            return true;
        }
        false
    }

    /// Calls this node owns, per the directory.
    pub fn calls_owned(&self) -> usize {
        self.owned.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether a frame for `user_id` can reach every connection it has elsewhere: not when the
    /// user is on other nodes and Redis is away.
    pub fn reachable(&self, user_id: i64) -> bool {
        self.healthy() || !self.remote.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&user_id)
    }

    /// `node` has `user` online; the registry hears of it if no other node had them.
    fn remote_online(&self, node: &str, user: User) {
        let first = {
            let mut remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
            let entry = remote.entry(user.id).or_insert_with(|| RemoteUser { user: user.clone(), nodes: HashSet::new() });
            let first = entry.nodes.is_empty();
            entry.nodes.insert(node.to_string());
            first
        };
        if first {
            presence::tell(RegistryMsg::Cluster(ClusterEvent::Online(user)));
        }
    }

    /// `node` no longer has `user_id`; the registry hears of it if no other node has them.
    fn remote_offline(&self, node: &str, user_id: i64) {
        let gone = {
            let mut remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
            let Some(entry) = remote.get_mut(&user_id) else { return };
            entry.nodes.remove(node);
            if entry.nodes.is_empty() { remote.remove(&user_id).map(|r| r.user.display_name) } else { None }
        };
        if let Some(name) = gone {
            presence::tell(RegistryMsg::Cluster(ClusterEvent::Offline { user_id, name }));
        }
    }

    /// Every remote user of `node`, gone with it.
    fn node_gone(&self, node: &str) {
        let users: Vec<i64> = self.remote.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|(_, r)| r.nodes.contains(node)).map(|(id, _)| *id).collect();
        for user_id in users {
            self.remote_offline(node, user_id);
        }
        self.nodes.lock().unwrap_or_else(|p| p.into_inner()).remove(node);
        tracing::info!(node, "a cluster node is gone; its users are offline");
    }

    fn on_message(&self, payload: &str) {
        let Ok(wire) = serde_json::from_str::<Wire>(payload) else {
            tracing::warn!("an unreadable cluster message was ignored");
            return;
        };
        match wire {
            Wire::Online { node, user } if node != self.node => self.remote_online(&node, user),
            Wire::Offline { node, user_id } if node != self.node => self.remote_offline(&node, user_id),
            Wire::InCall { node, user_id, in_call } if node != self.node => presence::tell(RegistryMsg::Cluster(ClusterEvent::InCall { user_id, in_call })),
            Wire::ToUser { user_id, text } => presence::tell(RegistryMsg::Cluster(ClusterEvent::Deliver { user_id, text })),
            Wire::ToAll { node, text } if node != self.node => presence::tell(RegistryMsg::Cluster(ClusterEvent::DeliverAll { text })),
            // Only this node's connections: a frame is never passed on again.
            Wire::ToConn { conn, text } if crate::protocol::conn::remote_node(&conn).is_none() => {
                crate::protocol::conn::deliver(&conn, text.into());
            }
            Wire::CallEvent { call_id, event, answer } => {
                if let Some(me) = current() {
                    crate::call::remote::deliver(&call_id, event.into_event(), answer.into_reply(me));
                }
            }
            Wire::Reply { req, value } => {
                if let Some(tx) = self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&req) {
                    let _ = tx.send(value);
                }
            }
            // Another node has it now (a takeover of one this node thought its own, too).
            Wire::CallUp { call_id, entry, adopted } if entry.owner != self.node => {
                self.owned.lock().unwrap_or_else(|p| p.into_inner()).remove(&call_id);
                let users = [entry.caller, entry.callee];
                let owner = entry.owner.clone();
                self.directory.up(&call_id, entry);
                if adopted {
                    call::tell(CallSupMsg::Remote(Remote::Rebind { call_id, owner, users }));
                }
            }
            Wire::CallDown { call_id } if !self.owned.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&call_id) => {
                self.directory.down(&call_id);
            }
            _ => {}
        }
    }
}

/// Keeps this node in the cluster for as long as the process runs, reconnecting as needed.
async fn run(cluster: Arc<Cluster>, client: redis::Client, mut rx: mpsc::Receiver<Out>) {
    loop {
        let result = session(&cluster, &client, &mut rx).await;
        *cluster.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if cluster.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = ?result.err(), "Redis is away: the cluster is degraded, this node serves what it holds alone");
        }
        metrics::gauge!(crate::telemetry::names::CLUSTER_HEALTHY).set(0.0);
        // Frames queued while Redis is away cannot be sent; presence is written again on return.
        tokio::time::sleep(Duration::from_millis(250)).await;
        while rx.try_recv().is_ok() {
            metrics::counter!(crate::telemetry::names::CLUSTER_DROPPED).increment(1);
        }
    }
}

async fn session(cluster: &Arc<Cluster>, client: &redis::Client, rx: &mut mpsc::Receiver<Out>) -> redis::RedisResult<()> {
    let within = cluster.heartbeat.max(Duration::from_millis(500));
    let config = redis::AsyncConnectionConfig::new().set_connection_timeout(Some(within)).set_response_timeout(Some(within));
    let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
    let mut pubsub = tokio::time::timeout(within, client.get_async_pubsub()).await.map_err(timeout)??;
    pubsub.subscribe(cluster.key("bus")).await?;
    pubsub.subscribe(cluster.key(&format!("node:{}", cluster.node))).await?;
    let mut messages = pubsub.into_on_message();

    // This node's users, all of them (again, after an outage), then everyone else's.
    let users_key = cluster.key(&format!("users:{}", cluster.node));
    let local: Vec<User> = cluster.local.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
    let _: () = conn.del(&users_key).await?;
    for user in &local {
        write_user(cluster, &mut conn, user).await?;
    }
    heartbeat(cluster, &mut conn).await?;
    resync(cluster, &mut conn).await?;
    reassert_calls(cluster, &mut conn).await?;
    *cluster.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
    cluster.healthy.store(true, Ordering::Relaxed);
    metrics::gauge!(crate::telemetry::names::CLUSTER_HEALTHY).set(1.0);
    tracing::info!(node = %cluster.node, peers = ?cluster.peers(), "joined the cluster");

    // Calls whose owner is gone are adopted once every live node has had the time to write its
    // own calls again (a node that came back with this one is not taken for dead).
    let joined = Instant::now();
    let mut adopted = false;
    let mut tick = tokio::time::interval(cluster.heartbeat);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                heartbeat(cluster, &mut conn).await?;
                let settled = joined.elapsed() >= cluster.expiry;
                sweep(cluster, &mut conn, settled).await?;
                if settled && !adopted {
                    adopted = true;
                    call::tell(CallSupMsg::Remote(Remote::Adopt { absent: true }));
                }
            }
            out = rx.recv() => match out {
                Some(Out::Publish { channel, payload }) => { let _: () = conn.publish(channel, payload).await?; }
                Some(Out::LocalOnline(user)) => {
                    write_user(cluster, &mut conn, &user).await?;
                    let wire = Wire::Online { node: cluster.node.clone(), user };
                    let _: () = conn.publish(cluster.key("bus"), serde_json::to_string(&wire).unwrap_or_default()).await?;
                }
                Some(Out::Release { call_id, caller, callee }) => release(cluster, &mut conn, &call_id, caller, callee).await?,
                Some(Out::LocalOffline(user_id)) => {
                    let _: () = conn.hdel(&users_key, user_id).await?;
                    let wire = Wire::Offline { node: cluster.node.clone(), user_id };
                    let _: () = conn.publish(cluster.key("bus"), serde_json::to_string(&wire).unwrap_or_default()).await?;
                }
                None => return Ok(()),
            },
            msg = messages.next() => match msg {
                Some(msg) => {
                    if let Ok(payload) = msg.get_payload::<String>() {
                        cluster.on_message(&payload);
                    }
                }
                None => return Err(redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the subscription ended"))),
            },
        }
    }
}

fn timeout(_: tokio::time::error::Elapsed) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "Redis did not answer in time"))
}

fn now_ms() -> i64 {
    crate::store::now_ms()
}

async fn write_user(cluster: &Cluster, conn: &mut redis::aio::MultiplexedConnection, user: &User) -> redis::RedisResult<()> {
    let key = cluster.key(&format!("users:{}", cluster.node));
    let _: () = conn.hset(&key, user.id, serde_json::to_string(user).unwrap_or_default()).await?;
    let _: () = conn.pexpire(&key, (cluster.expiry.as_millis() * 2) as i64).await?;
    Ok(())
}

async fn heartbeat(cluster: &Cluster, conn: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<()> {
    let _: () = conn.zadd(cluster.key("nodes"), &cluster.node, now_ms()).await?;
    let _: () = conn.pexpire(cluster.key(&format!("users:{}", cluster.node)), (cluster.expiry.as_millis() * 2) as i64).await?;
    Ok(())
}

/// The nodes whose heartbeat is recent, but this one.
async fn live_nodes(cluster: &Cluster, conn: &mut redis::aio::MultiplexedConnection, bury: bool) -> redis::RedisResult<BTreeSet<String>> {
    let since = now_ms() - cluster.expiry.as_millis() as i64;
    let nodes: Vec<String> = if bury {
        let _: () = conn.zrembyscore(cluster.key("nodes"), "-inf", since).await?;
        conn.zrangebyscore(cluster.key("nodes"), since, "+inf").await?
    } else {
        // Any node with a heartbeat on record: one that lost Redis with this one is not dead.
        conn.zrange(cluster.key("nodes"), 0, -1).await?
    };
    Ok(nodes.into_iter().filter(|n| *n != cluster.node).collect())
}

async fn users_of(cluster: &Cluster, conn: &mut redis::aio::MultiplexedConnection, node: &str) -> redis::RedisResult<Vec<User>> {
    let all: HashMap<String, String> = conn.hgetall(cluster.key(&format!("users:{node}"))).await?;
    Ok(all.values().filter_map(|v| serde_json::from_str(v).ok()).collect())
}

/// Nodes that stopped heartbeating are gone; nodes newly seen are read.
/// `bury`: nodes that stopped heartbeating are declared gone (not in the first expiry after a
/// (re)connect, while nodes that lost Redis with this one come back).
async fn sweep(cluster: &Cluster, conn: &mut redis::aio::MultiplexedConnection, bury: bool) -> redis::RedisResult<()> {
    let mut live = live_nodes(cluster, conn, bury).await?;
    let known = cluster.nodes.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if !bury {
        live.extend(known.iter().cloned());
    }
    for gone in known.difference(&live) {
        cluster.node_gone(gone);
        call::tell(CallSupMsg::Remote(Remote::NodeGone(gone.clone())));
    }
    if known.difference(&live).next().is_some() {
        call::tell(CallSupMsg::Remote(Remote::Adopt { absent: false }));
    }
    for new in live.difference(&known) {
        for user in users_of(cluster, conn, new).await? {
            cluster.remote_online(new, user);
        }
        cluster.nodes.lock().unwrap_or_else(|p| p.into_inner()).insert(new.clone());
        tracing::info!(node = %new, "a cluster node joined");
    }
    metrics::gauge!(crate::telemetry::names::CLUSTER_NODES).set((live.len() + 1) as f64);
    Ok(())
}

/// After a (re)connect: the whole remote table from Redis, told to the registry as differences.
async fn resync(cluster: &Cluster, conn: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<()> {
    let live = live_nodes(cluster, conn, false).await?;
    let mut now: HashMap<String, Vec<User>> = HashMap::new();
    for node in &live {
        now.insert(node.clone(), users_of(cluster, conn, node).await?);
    }
    let before: Vec<(i64, Vec<String>)> =
        cluster.remote.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(id, r)| (*id, r.nodes.iter().cloned().collect())).collect();
    for (user_id, nodes) in before {
        for node in nodes {
            if !now.get(&node).is_some_and(|users| users.iter().any(|u| u.id == user_id)) {
                cluster.remote_offline(&node, user_id);
            }
        }
    }
    for (node, users) in now {
        for user in users {
            cluster.remote_online(&node, user);
        }
    }
    *cluster.nodes.lock().unwrap_or_else(|p| p.into_inner()) = live;
    Ok(())
}

async fn release(cluster: &Cluster, conn: &mut redis::aio::MultiplexedConnection, call_id: &str, caller: i64, callee: i64) -> redis::RedisResult<()> {
    let down = serde_json::to_string(&Wire::CallDown { call_id: call_id.to_string() }).unwrap_or_default();
    let _: i64 = cluster
        .script(calls::RELEASE, &["in-call", "calls", "bus"])
        .arg(call_id)
        .arg(caller)
        .arg(callee)
        .arg(down)
        .arg(&cluster.node)
        .query_async(conn)
        .await?;
    cluster.releasing.lock().unwrap_or_else(|p| p.into_inner()).remove(call_id);
    Ok(())
}

/// After a (re)connect: this node's calls into the directory again, the calls it owned that
/// ended while Redis was away out of it, and the whole directory read back.
async fn reassert_calls(cluster: &Cluster, conn: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<()> {
    // Releases lost with the outage are redone from the directory below.
    cluster.releasing.lock().unwrap_or_else(|p| p.into_inner()).clear();
    let owned: Vec<(String, (i64, i64))> = cluster.owned.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (k.clone(), *v)).collect();
    for (call_id, (caller, callee)) in &owned {
        let entry = serde_json::to_string(&cluster.entry(*caller, *callee)).unwrap_or_default();
        let kept: i64 = cluster
            .script(calls::REASSERT, &["in-call", "calls"])
            .arg(call_id)
            .arg(caller)
            .arg(callee)
            .arg(entry)
            .arg(&cluster.node)
            .query_async(conn)
            .await?;
        if kept == 0 {
            tracing::warn!(call.id = %call_id, "another node took this call over while Redis was away; it goes on there");
            cluster.owned.lock().unwrap_or_else(|p| p.into_inner()).remove(call_id);
        }
    }
    let all: HashMap<String, String> = conn.hgetall(cluster.key("calls")).await?;
    let mut directory: HashMap<String, Entry> = all.into_iter().filter_map(|(id, e)| Some((id, serde_json::from_str(&e).ok()?))).collect();
    let ended: Vec<(String, Entry)> = directory
        .iter()
        .filter(|(id, e)| e.owner == cluster.node && !owned.iter().any(|(o, _)| o == *id))
        .map(|(id, e)| (id.clone(), e.clone()))
        .collect();
    for (call_id, e) in ended {
        release(cluster, conn, &call_id, e.caller, e.callee).await?;
        directory.remove(&call_id);
    }
    cluster.directory.replace(directory);
    Ok(())
}
