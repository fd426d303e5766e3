//! The registry actor: user -> open connections, and the broadcasts that follow from changes.

use std::collections::{HashMap, HashSet};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::json;

use super::Text;
use crate::call::{self, CallSupMsg};
use crate::connection::{ConnId, ConnMsg};
use crate::protocol::{Code, ServerFrame, Status, User};

/// At most this many open connections per user (PROTOCOL.md section 7).
pub const MAX_CONNECTIONS_PER_USER: usize = 8;

pub enum RegistryMsg {
    /// Holds a connection slot for an upgrade under way; `false` if the user has no slot left.
    Reserve { user_id: i64, conn_id: ConnId, reply: RpcReplyPort<bool> },
    /// Gives back a reserved slot whose upgrade never happened.
    Release { conn_id: ConnId },
    /// A connection is open. The first one of a user announces them online (10006) unless
    /// `quiet` (a connection re-joining a restarted registry).
    Join { conn_id: ConnId, session_id: i64, user: User, actor: ActorRef<ConnMsg>, quiet: bool },
    /// A connection closed; the user's last one announces them offline (10008). Idempotent.
    Leave { conn_id: ConnId },
    /// Every online user's status.
    Statuses(RpcReplyPort<HashMap<i64, Status>>),
    /// A user entered or left a call: 10004 to everyone online.
    SetInCall { user_id: i64, in_call: bool },
    /// A frame to every connection of a user, but `except` one.
    SendToUser { user_id: i64, text: Text, except: Option<ConnId> },
    /// A frame to every open connection, but `except` one.
    SendToAll { text: Text, except: Option<ConnId> },
    /// Closes every connection opened with this login session (logout: 4001).
    CloseSession { session_id: i64, code: u16, reason: &'static str },
    /// Sends 10021 to every connection and closes it with 1001 (graceful shutdown).
    GoingAway { reconnect_after_ms: u64 },
    /// The connections of a user, for callers that must pick one.
    ConnectionsOf { user_id: i64, reply: RpcReplyPort<Vec<(ConnId, ActorRef<ConnMsg>)>> },
    /// How many connections are open, for tests and shutdown.
    Count(RpcReplyPort<usize>),
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

#[derive(Default)]
pub struct RegistryState {
    conns: HashMap<ConnId, Conn>,
    /// Upgrades under way: they count toward the per-user limit.
    reserved: HashMap<ConnId, i64>,
    users: HashMap<i64, Online>,
    in_call: HashSet<i64>,
    /// Connections being closed by a logout: their call ends rather than waiting for them.
    logging_out: HashSet<ConnId>,
}

impl RegistryState {
    fn status(&self, user_id: i64) -> Status {
        if !self.users.contains_key(&user_id) {
            Status::Offline
        } else if self.in_call.contains(&user_id) {
            Status::InCall
        } else {
            Status::Available
        }
    }

    fn send(&self, conn_ids: impl IntoIterator<Item = ConnId>, text: &Text) {
        for id in conn_ids {
            if let Some(c) = self.conns.get(&id) {
                let _ = c.actor.cast(ConnMsg::Send(text.clone()));
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
    type Arguments = ();

    async fn pre_start(&self, _myself: ActorRef<RegistryMsg>, _: ()) -> Result<RegistryState, ActorProcessingErr> {
        Ok(RegistryState::default())
    }

    async fn post_start(&self, _myself: ActorRef<RegistryMsg>, _state: &mut RegistryState) -> Result<(), ActorProcessingErr> {
        // After a restart the connections are still open: ask each to join again, quietly.
        if let Some(sup) = ractor::registry::where_is(crate::connection::SUPERVISOR) {
            for child in sup.get_children() {
                let _ = child.send_message(ConnMsg::Rejoin);
            }
        }
        Ok(())
    }

    async fn handle(&self, _myself: ActorRef<RegistryMsg>, msg: RegistryMsg, state: &mut RegistryState) -> Result<(), ActorProcessingErr> {
        match msg {
            RegistryMsg::Reserve { user_id, conn_id, reply } => {
                let open = state.users.get(&user_id).map_or(0, |u| u.conns.len());
                let pending = state.reserved.values().filter(|u| **u == user_id).count();
                let ok = open + pending < MAX_CONNECTIONS_PER_USER;
                if ok {
                    state.reserved.insert(conn_id, user_id);
                }
                let _ = reply.send(ok);
            }
            RegistryMsg::Release { conn_id } => {
                state.reserved.remove(&conn_id);
            }
            RegistryMsg::Join { conn_id, session_id, user, actor, quiet } => {
                state.reserved.remove(&conn_id);
                let user_id = user.id;
                state.conns.insert(conn_id.clone(), Conn { user_id, session_id, actor });
                let first = !state.users.contains_key(&user_id);
                let online = state.users.entry(user_id).or_insert_with(|| Online { user: user.clone(), conns: HashSet::new() });
                online.conns.insert(conn_id);
                if first && !quiet {
                    let mut announced = online.user.clone();
                    announced.status = state.status(user_id);
                    let text = ServerFrame::event(Code::UserOnline, format!("{} is online", announced.display_name), json!(announced)).to_text();
                    state.send(state.all_but_user(user_id), &text);
                    tracing::info!(user.id = user_id, "online");
                }
            }
            RegistryMsg::Leave { conn_id } => {
                state.reserved.remove(&conn_id);
                let Some(conn) = state.conns.remove(&conn_id) else { return Ok(()) };
                let user_id = conn.user_id;
                let logout = state.logging_out.remove(&conn_id);
                call::tell(CallSupMsg::ConnectionClosed { conn_id: conn_id.clone(), user_id, logout });
                let last = state.users.get_mut(&user_id).is_some_and(|u| {
                    u.conns.remove(&conn_id);
                    u.conns.is_empty()
                });
                if last {
                    let name = state.users.remove(&user_id).map(|u| u.user.display_name).unwrap_or_default();
                    let text = ServerFrame::event(Code::UserOffline, format!("{name} is offline"), json!({ "id": user_id, "fromId": user_id })).to_text();
                    state.send(state.conns.keys().cloned().collect::<Vec<_>>(), &text);
                    tracing::info!(user.id = user_id, "offline");
                }
            }
            RegistryMsg::Statuses(reply) => {
                let map = state.users.keys().map(|id| (*id, state.status(*id))).collect();
                let _ = reply.send(map);
            }
            RegistryMsg::SetInCall { user_id, in_call } => {
                let changed = if in_call { state.in_call.insert(user_id) } else { state.in_call.remove(&user_id) };
                if changed && state.users.contains_key(&user_id) {
                    let status = state.status(user_id);
                    let text = ServerFrame::event(Code::StatusChanged, "status changed", json!({ "id": user_id, "status": status })).to_text();
                    state.send(state.conns.keys().cloned().collect::<Vec<_>>(), &text);
                }
            }
            RegistryMsg::SendToUser { user_id, text, except } => {
                if let Some(u) = state.users.get(&user_id) {
                    state.send(u.conns.iter().filter(|c| Some(*c) != except.as_ref()).cloned(), &text);
                }
            }
            RegistryMsg::SendToAll { text, except } => {
                state.send(state.conns.keys().filter(|c| Some(*c) != except.as_ref()).cloned().collect::<Vec<_>>(), &text);
            }
            RegistryMsg::CloseSession { session_id, code, reason } => {
                for (id, c) in state.conns.iter().filter(|(_, c)| c.session_id == session_id) {
                    state.logging_out.insert(id.clone());
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
