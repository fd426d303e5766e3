//! The registry actor: user -> open connections, and the broadcasts that follow from changes.

use std::collections::{HashMap, HashSet};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::json;

use std::sync::{Arc, Mutex};

use super::Text;
use crate::cluster::{Cluster, ClusterEvent};
use super::directory::{Audience, Directory};
use crate::protocol::conn::{self, CONNECTION_SUPERVISOR, ConnId, ConnMsg, JoinInfo};
use crate::protocol::{Code, ServerFrame, Status, User};

pub enum RegistryMsg {
    /// A connection is open. The first one of a user announces them online (10006).
    Join { conn_id: ConnId, session_id: i64, user: User, actor: ActorRef<ConnMsg> },
    /// A connection closed; the user's last one announces them offline (10008). Idempotent.
    Leave { conn_id: ConnId },
    /// A user entered or left a call: 10004 to those who have them as a contact.
    SetInCall { user_id: i64, in_call: bool },
    /// A frame to every connection of a user, but `except` one.
    SendToUser { user_id: i64, text: Text, except: Option<ConnId> },
    /// A frame to every open connection, but `except` one.
    SendToAll { text: Text, except: Option<ConnId> },
    /// `watcher` gained or lost `user` as a contact: tell them `user`'s presence now, if online.
    Introduce { watcher: i64, user: i64 },
    /// Closes every connection opened with this login session (logout: 4001).
    CloseSession { session_id: i64, code: u16, reason: &'static str },
    /// Sends 10021 to every connection and closes it with 1001 (graceful shutdown).
    GoingAway { reconnect_after_ms: u64 },
    /// The connections of a user, for callers that must pick one.
    ConnectionsOf { user_id: i64, reply: RpcReplyPort<Vec<(ConnId, ActorRef<ConnMsg>)>> },
    /// How many connections are open, for tests and shutdown.
    Count(RpcReplyPort<usize>),
    /// Forgets connections whose actor is gone without a `Leave` (their supervisor died with
    /// them) and answers who they were, so their calls can hear of it.
    DropDead(RpcReplyPort<Vec<(ConnId, i64)>>),
    /// What another node of the cluster reported (src/cluster).
    Cluster(ClusterEvent),
}

struct Conn {
    user_id: i64,
    session_id: i64,
    actor: ActorRef<ConnMsg>,
}

struct Online {
    user: User,
    conns: HashSet<ConnId>,
}

/// Who was online and in a call, as the registry last knew it. The registry supervisor keeps it
/// across restarts so a new registry announces only real changes.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub online: HashMap<i64, User>,
    pub in_call: HashSet<i64>,
}

pub struct RegistryArgs {
    pub snapshot: Arc<Mutex<Snapshot>>,
    /// Who is in a live call now, from the calls.
    pub in_calls: super::InCalls,
    /// Who has whom as a contact: decides who hears of a user's presence.
    pub directory: Arc<Directory>,
    /// The other nodes, when this one is part of a cluster.
    pub cluster: Option<Arc<Cluster>>,
}

pub struct RegistryState {
    snapshot: Arc<Mutex<Snapshot>>,
    directory: Arc<Directory>,
    conns: HashMap<ConnId, Conn>,
    users: HashMap<i64, Online>,
    in_call: HashSet<i64>,
    in_calls: super::InCalls,
    cluster: Option<Arc<Cluster>>,
}

impl RegistryState {
    /// Online on another node of the cluster.
    fn remote(&self, user_id: i64) -> Option<User> {
        self.cluster.as_ref().and_then(|c| c.remote_user(user_id))
    }

    /// Online here or on another node.
    fn is_online(&self, user_id: i64) -> bool {
        self.users.contains_key(&user_id) || self.remote(user_id).is_some()
    }

    /// A frame to this node's connections of a user.
    fn to_local_user(&self, user_id: i64, text: &Text, except: Option<&ConnId>) {
        if let Some(u) = self.users.get(&user_id) {
            self.send(u.conns.iter().filter(|c| Some(*c) != except).cloned(), text);
        }
    }

    /// Another node reported a change.
    fn on_cluster(&mut self, event: ClusterEvent) {
        match event {
            ClusterEvent::Online(user) => {
                let user_id = user.id;
                // An account made on another node since this one last read the directory.
                let row = crate::store::AccountRow { id: user.id, username: user.username.clone(), display_name: user.display_name.clone(), disabled: false };
                if self.directory.active(user_id).is_none() {
                    self.directory.upsert(row);
                }
                self.snap().online.insert(user_id, user);
                if !self.users.contains_key(&user_id) {
                    self.announce_online(user_id);
                }
            }
            ClusterEvent::Offline { user_id, name } => {
                if !self.users.contains_key(&user_id) {
                    self.snap().online.remove(&user_id);
                    self.announce_offline(user_id, &name);
                }
            }
            ClusterEvent::InCall { user_id, in_call } => self.set_in_call(user_id, in_call, false),
            ClusterEvent::Deliver { user_id, text } => self.to_local_user(user_id, &text.into(), None),
            ClusterEvent::DeliverAll { text } => {
                let text: Text = text.into();
                self.send(self.conns.keys().cloned().collect::<Vec<_>>(), &text);
            }
        }
    }

    /// A connection closed; the user's last one announces them offline. Idempotent.
    fn leave(&mut self, conn_id: &ConnId) {
        let Some(conn) = self.conns.remove(conn_id) else { return };
        let user_id = conn.user_id;
        let last = self.users.get_mut(&user_id).is_some_and(|u| {
            u.conns.remove(conn_id);
            u.conns.is_empty()
        });
        if last {
            let name = self.users.remove(&user_id).map(|u| u.user.display_name).unwrap_or_default();
            if let Some(c) = &self.cluster {
                c.local_offline(user_id);
            }
            // Still online on another node: nobody hears of it.
            if self.remote(user_id).is_none() {
                self.snap().online.remove(&user_id);
                self.announce_offline(user_id, &name);
            }
        }
        self.count();
    }

    /// A user entered or left a call: 10004 to everyone who sees them, and their own other tabs.
    /// `publish`: the change is this node's (its calls), so the other nodes hear of it too.
    fn set_in_call(&mut self, user_id: i64, in_call: bool, publish: bool) {
        let changed = if in_call { self.in_call.insert(user_id) } else { self.in_call.remove(&user_id) };
        if changed && publish {
            if let Some(c) = &self.cluster {
                c.in_call(user_id, in_call);
            }
        }
        if changed {
            let mut snap = self.snap();
            if in_call {
                snap.in_call.insert(user_id);
            } else {
                snap.in_call.remove(&user_id);
            }
        }
        if changed && self.is_online(user_id) {
            let status = self.status(user_id);
            let text = ServerFrame::event(Code::StatusChanged, "status changed", json!({ "id": user_id, "status": status })).to_text();
            self.to_audience(user_id, &text);
            if let Some(u) = self.users.get(&user_id) {
                self.send(u.conns.iter().cloned(), &text);
            }
        }
    }

    /// The presence gauges; cheap, so set after every join and leave.
    fn count(&self) {
        metrics::gauge!(crate::telemetry::names::ONLINE_USERS).set(self.users.len() as f64);
        metrics::gauge!(crate::telemetry::names::OPEN_CONNECTIONS).set(self.conns.len() as f64);
    }

    /// Writes the whole table where the next registry (and every reader of presence) finds it:
    /// once, after a rebuild. Joins and leaves change it one entry at a time.
    fn save(&self) {
        let mut snap = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        snap.online = self.users.iter().map(|(id, u)| (*id, u.user.clone())).collect();
        for user in self.cluster.as_ref().map(|c| c.remote_users()).unwrap_or_default() {
            snap.online.entry(user.id).or_insert(user);
        }
        snap.in_call = self.in_call.clone();
    }

    fn snap(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.snapshot.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&mut self, info: JoinInfo, actor: ActorRef<ConnMsg>) -> bool {
        let user_id = info.user.id;
        self.conns.insert(info.conn_id.clone(), Conn { user_id, session_id: info.session_id, actor });
        let first = !self.users.contains_key(&user_id);
        let online = self.users.entry(user_id).or_insert_with(|| Online { user: info.user, conns: HashSet::new() });
        online.conns.insert(info.conn_id);
        first
    }

    /// The frame that tells others `user_id` is online, serialized once for all of them.
    fn online_frame(&self, user_id: i64) -> Option<Text> {
        let mut announced = match self.users.get(&user_id) {
            Some(online) => online.user.clone(),
            None => self.remote(user_id)?,
        };
        announced.status = self.status(user_id);
        Some(ServerFrame::event(Code::UserOnline, format!("{} is online", announced.display_name), json!(announced)).to_text())
    }

    fn announce_online(&self, user_id: i64) {
        let Some(text) = self.online_frame(user_id) else { return };
        self.to_audience(user_id, &text);
        tracing::debug!(user.id = user_id, "online");
    }

    fn announce_offline(&self, user_id: i64, name: &str) {
        let text = ServerFrame::event(Code::UserOffline, format!("{name} is offline"), json!({ "id": user_id, "fromId": user_id })).to_text();
        self.to_audience(user_id, &text);
        tracing::debug!(user.id = user_id, "offline");
    }

    /// A presence frame about `user_id` to every online user who has them as a contact (all of
    /// them while the directory is small), never to the user themself.
    fn to_audience(&self, user_id: i64, text: &Text) {
        match self.directory.audience(user_id) {
            Audience::Everyone => self.send(self.all_but_user(user_id), text),
            Audience::Only(watchers) => {
                for w in watchers.into_iter().filter(|w| *w != user_id) {
                    if let Some(u) = self.users.get(&w) {
                        self.send(u.conns.iter().cloned(), text);
                    }
                }
            }
        }
    }

    fn status(&self, user_id: i64) -> Status {
        Status::of(self.is_online(user_id), self.in_call.contains(&user_id))
    }

    /// Straight into each connection's writer queue (see `protocol::conn::deliver`).
    fn send(&self, conn_ids: impl IntoIterator<Item = ConnId>, text: &Text) {
        for id in conn_ids {
            if self.conns.contains_key(&id) {
                conn::deliver(&id, text.clone());
            }
        }
    }

    /// Every connection but those of `except_user`.
    fn all_but_user(&self, except_user: i64) -> Vec<ConnId> {
        self.conns.iter().filter(|(_, c)| c.user_id != except_user).map(|(id, _)| id.clone()).collect()
    }
}

/// Rebuilds its table from the live connections when (re)started, so a restart causes no flap.
pub struct Registry;

impl Actor for Registry {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = RegistryArgs;

    async fn pre_start(&self, _myself: ActorRef<RegistryMsg>, args: RegistryArgs) -> Result<RegistryState, ActorProcessingErr> {
        // What the previous registry announced, to tell clients only the difference (post_start).
        // Readers of presence see this node's calls at once: a SetInCall the previous registry
        // never handled would otherwise show the users available until the rebuild ends.
        let live = (args.in_calls)();
        let in_call = {
            let mut snap = args.snapshot.lock().unwrap_or_else(|p| p.into_inner());
            let announced = snap.in_call.clone();
            snap.in_call.extend(live);
            announced
        };
        Ok(RegistryState {
            snapshot: args.snapshot,
            directory: args.directory,
            conns: HashMap::new(),
            users: HashMap::new(),
            in_call,
            in_calls: args.in_calls,
            cluster: args.cluster,
        })
    }

    async fn post_start(&self, _myself: ActorRef<RegistryMsg>, state: &mut RegistryState) -> Result<(), ActorProcessingErr> {
        // After a restart the connections are still open: ask each who it is, then tell clients
        // only the difference from what the previous registry had announced.
        let before = state.snapshot.lock().unwrap_or_else(|p| p.into_inner()).online.clone();
        let children = ractor::registry::where_is(CONNECTION_SUPERVISOR).map(|s| s.get_children()).unwrap_or_default();
        let asks = children.into_iter().map(|cell| async move {
            let conn: ActorRef<ConnMsg> = cell.into();
            let info = conn.call(ConnMsg::Describe, Some(std::time::Duration::from_secs(1))).await;
            match info {
                Ok(ractor::rpc::CallResult::Success(info)) => Some((info, conn)),
                _ => None,
            }
        });
        for (info, conn) in futures_util::future::join_all(asks).await.into_iter().flatten() {
            state.insert(info, conn);
        }
        for (user_id, user) in &before {
            if !state.is_online(*user_id) {
                state.announce_offline(*user_id, &user.display_name);
            }
        }
        let arrived: Vec<i64> = state.users.keys().filter(|id| !before.contains_key(id)).copied().collect();
        for user_id in arrived {
            state.announce_online(user_id);
        }
        // Calls that began or ended while no registry listened: the calls know.
        // Calls of other nodes are theirs to report.
        let in_calls = (state.in_calls)();
        let changed: Vec<(i64, bool)> = in_calls
            .difference(&state.in_call)
            .map(|u| (*u, true))
            .chain(state.in_call.difference(&in_calls).filter(|u| state.users.contains_key(u) || state.remote(**u).is_none()).map(|u| (*u, false)))
            .collect();
        for (user_id, in_call) in changed {
            state.set_in_call(user_id, in_call, true);
        }
        state.save();
        state.count();
        if !before.is_empty() || !state.conns.is_empty() {
            tracing::info!(connections = state.conns.len(), users = state.users.len(), "registry rebuilt from the live connections");
        }
        Ok(())
    }

    async fn handle(&self, _myself: ActorRef<RegistryMsg>, msg: RegistryMsg, state: &mut RegistryState) -> Result<(), ActorProcessingErr> {
        match msg {
            RegistryMsg::Join { conn_id, session_id, user, actor } => {
                let user_id = user.id;
                if state.insert(JoinInfo { conn_id, session_id, user: user.clone() }, actor) {
                    if let Some(c) = &state.cluster {
                        c.local_online(&user);
                    }
                    let elsewhere = state.remote(user_id).is_some();
                    state.snap().online.insert(user_id, user);
                    // Online on another node already: nobody hears of it again.
                    if !elsewhere {
                        state.announce_online(user_id);
                    }
                }
                state.count();
            }
            RegistryMsg::Leave { conn_id } => {
                state.leave(&conn_id);
            }
            RegistryMsg::SetInCall { user_id, in_call } => {
                state.set_in_call(user_id, in_call, true);
            }
            RegistryMsg::Cluster(event) => state.on_cluster(event),
            RegistryMsg::DropDead(reply) => {
                // Dead, dying, or orphaned: its supervisor died and let go of it before killing it.
                let supervisor = ractor::registry::where_is(CONNECTION_SUPERVISOR).map(|s| s.get_id());
                let dead: Vec<(ConnId, i64)> = state
                    .conns
                    .iter()
                    .filter(|(_, c)| c.actor.get_status() >= ractor::ActorStatus::Stopping || c.actor.try_get_supervisor().map(|s| s.get_id()) != supervisor)
                    .map(|(id, c)| (id.clone(), c.user_id))
                    .collect();
                for (conn_id, _) in &dead {
                    state.leave(conn_id);
                }
                let _ = reply.send(dead);
            }
            RegistryMsg::SendToUser { user_id, text, except } => {
                state.to_local_user(user_id, &text, except.as_ref());
                if let Some(c) = &state.cluster {
                    c.to_user(user_id, text.as_str());
                }
            }
            RegistryMsg::SendToAll { text, except } => {
                state.send(state.conns.keys().filter(|c| Some(*c) != except.as_ref()).cloned().collect::<Vec<_>>(), &text);
                if let Some(c) = &state.cluster {
                    c.to_all(text.as_str());
                }
            }
            RegistryMsg::Introduce { watcher, user } => {
                if let (Some(w), Some(text)) = (state.users.get(&watcher), state.online_frame(user)) {
                    state.send(w.conns.iter().cloned(), &text);
                }
            }
            RegistryMsg::CloseSession { session_id, code, reason } => {
                for c in state.conns.values().filter(|c| c.session_id == session_id) {
                    let _ = c.actor.cast(ConnMsg::Close { code, reason });
                }
            }
            RegistryMsg::GoingAway { reconnect_after_ms } => {
                let text = ServerFrame::event(Code::GoingAway, "server restarting", json!({ "reconnectAfterMs": reconnect_after_ms })).to_text();
                for c in state.conns.values() {
                    let _ = c.actor.cast(ConnMsg::Send(text.clone()));
                    let _ = c.actor.cast(ConnMsg::Close { code: 1001, reason: "server restarting" });
                }
            }
            RegistryMsg::ConnectionsOf { user_id, reply } => {
                let list = state
                    .users
                    .get(&user_id)
                    .map(|u| u.conns.iter().filter_map(|id| state.conns.get(id).map(|c| (id.clone(), c.actor.clone()))).collect())
                    .unwrap_or_default();
                let _ = reply.send(list);
            }
            RegistryMsg::Count(reply) => {
                let _ = reply.send(state.conns.len());
            }
        }
        Ok(())
    }
}
