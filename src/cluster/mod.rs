//! Several duet nodes through Redis (`DUET_REDIS_URL`): each node keeps its own connections and
//! publishes who is online on it; every node learns the others' users, so presence is shared
//! and a frame for a user on another node goes to that node's channel only. Nodes heartbeat into
//! a sorted set; a node whose heartbeat is older than the expiry is gone, and its users go
//! offline everywhere. While Redis is away each node serves what it holds alone and reports the
//! cluster degraded; when Redis returns, it writes its users again and reads the others'.
//!
//! Redis layout, under `DUET_REDIS_PREFIX` (`duet`): `{p}:nodes` (sorted set, node -> last
//! heartbeat ms), `{p}:users:{node}` (hash, user id -> user JSON, expiring with the node),
//! channels `{p}:bus` (to every node) and `{p}:node:{node}` (to one node).
//!
//! The cluster talks to the registry only through [`RegistryMsg::Cluster`] events.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::presence::{self, RegistryMsg};
use crate::protocol::User;

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
}

/// Work for the Redis task, queued so that no actor waits on Redis.
enum Out {
    Publish { channel: String, payload: String },
    LocalOnline(User),
    LocalOffline(i64),
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
        });
        tokio::spawn(run(cluster.clone(), client, rx));
        Ok(cluster)
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
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
            _ => {}
        }
    }
}

/// Keeps this node in the cluster for as long as the process runs, reconnecting as needed.
async fn run(cluster: Arc<Cluster>, client: redis::Client, mut rx: mpsc::Receiver<Out>) {
    loop {
        let result = session(&cluster, &client, &mut rx).await;
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
    cluster.healthy.store(true, Ordering::Relaxed);
    metrics::gauge!(crate::telemetry::names::CLUSTER_HEALTHY).set(1.0);
    tracing::info!(node = %cluster.node, peers = ?cluster.peers(), "joined the cluster");

    let mut tick = tokio::time::interval(cluster.heartbeat);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                heartbeat(cluster, &mut conn).await?;
                sweep(cluster, &mut conn).await?;
            }
            out = rx.recv() => match out {
                Some(Out::Publish { channel, payload }) => { let _: () = conn.publish(channel, payload).await?; }
                Some(Out::LocalOnline(user)) => {
                    write_user(cluster, &mut conn, &user).await?;
                    let wire = Wire::Online { node: cluster.node.clone(), user };
                    let _: () = conn.publish(cluster.key("bus"), serde_json::to_string(&wire).unwrap_or_default()).await?;
                }
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
async fn live_nodes(cluster: &Cluster, conn: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<BTreeSet<String>> {
    let since = now_ms() - cluster.expiry.as_millis() as i64;
    let _: () = conn.zrembyscore(cluster.key("nodes"), "-inf", since).await?;
    let nodes: Vec<String> = conn.zrangebyscore(cluster.key("nodes"), since, "+inf").await?;
    Ok(nodes.into_iter().filter(|n| *n != cluster.node).collect())
}

async fn users_of(cluster: &Cluster, conn: &mut redis::aio::MultiplexedConnection, node: &str) -> redis::RedisResult<Vec<User>> {
    let all: HashMap<String, String> = conn.hgetall(cluster.key(&format!("users:{node}"))).await?;
    Ok(all.values().filter_map(|v| serde_json::from_str(v).ok()).collect())
}

/// Nodes that stopped heartbeating are gone; nodes newly seen are read.
async fn sweep(cluster: &Cluster, conn: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<()> {
    let live = live_nodes(cluster, conn).await?;
    let known = cluster.nodes.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for gone in known.difference(&live) {
        cluster.node_gone(gone);
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
    let live = live_nodes(cluster, conn).await?;
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
