//! The call supervisor, `call-supervisor`: parent of every call session. It admits invites one
//! at a time, so "busy", "already in a call" and glare are decided against one consistent view
//! of who is in which call; it routes connection closes and reconnects to the right call; and at
//! start it restores the calls that were live when the server stopped.

use std::collections::HashMap;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use serde_json::{Value, json};

use super::machine::{CallState, CallStatus, Event, Media, Phase, Timing};
use super::recorder::Recorder;
use super::session::{CallMsg, CallSession, ReplyTo, SessionArgs, Snapshots};
use super::{actor_name, ask, record, remote, session};
use crate::protocol::conn::{self, ConnId};
use crate::presence::Presence;
use crate::protocol::{Code, ServerFrame, User, WsError};
use std::sync::Arc;

use super::trace::CallTrace;
use crate::cluster::calls::Claim;
use crate::store::{Store, now_ms};
use crate::turn::RelayStats;
use crate::supervision::{self, Kind, StopReason};

/// Stable actor name (PROTOCOL.md section 5).
pub const SUPERVISOR: &str = "call-supervisor";

pub enum CallSupMsg {
    /// `Call/Invite` from `caller` on connection `conn` to `callee` (known to exist); the answer
    /// goes to `reply`, ahead of the call's first frames.
    Invite { caller: User, conn: ConnId, callee: User, media: Media, reply: ReplyTo },
    /// The id of the live call a user is in, if any.
    CallOf { user_id: i64, reply: RpcReplyPort<Option<String>> },
    /// Signaling without a `callId`: to the live call the sender is in, or `bad_state`. Cast, so
    /// the sender's connection never waits; the answer goes where `reply` says.
    Signal { user_id: i64, event: Event, reply: ReplyTo },
    /// A connection of `user_id` closed.
    ConnectionClosed { conn_id: ConnId, user_id: i64, logout: bool },
    /// A user opened connection `conn_id`: rebinds it to a call waiting for them. Answers the
    /// `activeCall` of its welcome, or null.
    Resume { user_id: i64, conn_id: ConnId, reply: RpcReplyPort<Value> },
    /// The live calls as their sessions last reported them (operator API).
    LiveCalls(RpcReplyPort<Vec<CallState>>),
    /// From the cluster (`cluster/`): other nodes' part in this node's calls.
    Remote(Remote),
}

/// What the cluster tells the call supervisor.
pub enum Remote {
    /// A node is gone: its connections bound to this node's calls are lost with it.
    NodeGone(String),
    /// Live calls whose owner is gone (`absent`: or that the directory lost) are taken over.
    Adopt { absent: bool },
    /// Another node took over a call: this node's connections of its parties rebind there.
    Rebind { call_id: String, owner: String, users: [i64; 2] },
}

/// Restarts of one call's session before the call is given up as `server_error`.
pub const MAX_RESTARTS: u32 = 5;

pub struct CallSupervisor;

/// Each live call's trace, kept above the supervisor so it outlives a supervisor that dies.
pub type Traces = Arc<std::sync::Mutex<HashMap<String, CallTrace>>>;

pub struct SupArgs {
    /// True at the server's start (live calls come from the database); false when the root
    /// restarts a supervisor that died (they come from the sessions' last snapshots).
    pub fresh: bool,
    /// Each live call's last reported state, kept by the root across supervisor restarts.
    pub snapshots: Snapshots,
    pub traces: Traces,
    pub store: Store,
    pub recorder: Recorder,
    /// Who is online, read without asking the registry.
    pub presence: Presence,
    pub timing: Timing,
    pub relay: Option<Arc<RelayStats>>,
}

pub struct SupState {
    store: Store,
    recorder: Recorder,
    presence: Presence,
    timing: Timing,
    /// Which live call each user is in (as caller or callee, ringing or active).
    by_user: HashMap<i64, String>,
    /// Each live call's last reported state: where a restarted session starts from.
    snapshots: Snapshots,
    /// Each live call's trace, so it outlives a session (and this supervisor) that dies.
    traces: Traces,
    relay: Option<Arc<RelayStats>>,
    /// The sessions this supervisor started, by actor id: which call a death is about.
    sessions: HashMap<ractor::ActorId, String>,
    fresh: bool,
}

impl SupState {
    fn traces(&self) -> std::sync::MutexGuard<'_, HashMap<String, CallTrace>> {
        self.traces.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn trace(&self, call_id: &str) -> Option<CallTrace> {
        self.traces().get(call_id).cloned()
    }

    fn forget(&mut self, call_id: &str) {
        if let (Some(cluster), Some(call)) = (self.presence.cluster.as_ref(), self.snapshot(call_id)) {
            cluster.release(call_id, call.caller.user.id, call.callee.user.id);
        }
        self.by_user.retain(|_, c| c != call_id);
        self.sessions.retain(|_, c| c != call_id);
        self.traces().remove(call_id);
        self.snapshots.lock().unwrap_or_else(|p| p.into_inner()).remove(call_id);
        supervision::gone(&actor_name(call_id));
    }

    /// A session that ended its call may die before it told presence (a kill while its final
    /// record was being written): its parties leave `in_call` here, unless they are in another
    /// call by now. Telling the registry again is harmless; it changes only what is stale.
    fn ended_after(&self, call_id: &str) {
        let Some(call) = self.snapshot(call_id).filter(|c| c.phase == Phase::Ended) else { return };
        for user in [call.caller.user.id, call.callee.user.id] {
            if self.by_user.get(&user).is_some_and(|c| c != call_id) {
                continue;
            }
            crate::presence::tell(crate::presence::RegistryMsg::SetInCall { user_id: user, in_call: false });
        }
    }

    /// The call `user` is in, if any. A call whose session has just ended it is forgotten now:
    /// that session is stopping, and a message sent to it would be lost with it (an invite
    /// made the moment the last call ended got no answer at all).
    fn call_of(&mut self, user: i64) -> Option<String> {
        let id = self.by_user.get(&user).cloned()?;
        if self.snapshot(&id).is_some_and(|c| c.phase == Phase::Ended) {
            self.forget(&id);
            return None;
        }
        Some(id)
    }

    fn snapshot(&self, call_id: &str) -> Option<CallState> {
        self.snapshots.lock().unwrap_or_else(|p| p.into_inner()).get(call_id).cloned()
    }

    fn args(&mut self, call: CallState, first: Event, first_reply: ReplyTo, parent: Option<&str>) -> SessionArgs {
        let trace = self.traces().entry(call.id.clone()).or_insert_with(|| CallTrace::open(&call, parent)).clone();
        SessionArgs { call, first, first_reply, recorder: self.recorder.clone(), timing: self.timing, snapshots: self.snapshots.clone(), trace, relay: self.relay.clone() }
    }
}

async fn spawn_session(myself: &ActorRef<CallSupMsg>, state: &mut SupState, args: SessionArgs) -> Result<(), ractor::SpawnErr> {
    let id = args.call.id.clone();
    let name = actor_name(&id);
    let (session, _) = Actor::spawn_linked(Some(name.clone()), CallSession, args, myself.get_cell()).await?;
    state.sessions.insert(session.get_id(), id);
    supervision::started(&name, Kind::Call, Some(SUPERVISOR));
    Ok(())
}

impl Actor for CallSupervisor {
    type Msg = CallSupMsg;
    type State = SupState;
    type Arguments = SupArgs;

    async fn pre_start(&self, _myself: ActorRef<CallSupMsg>, args: SupArgs) -> Result<SupState, ActorProcessingErr> {
        Ok(SupState {
            store: args.store,
            recorder: args.recorder,
            presence: args.presence,
            timing: args.timing,
            by_user: HashMap::new(),
            snapshots: args.snapshots,
            traces: args.traces,
            relay: args.relay,
            sessions: HashMap::new(),
            fresh: args.fresh,
        })
    }

    async fn post_start(&self, myself: ActorRef<CallSupMsg>, state: &mut SupState) -> Result<(), ActorProcessingErr> {
        // In a cluster the live calls in the database are other nodes' too: this node takes over
        // those whose owner is gone once it has joined (`Remote::Adopt`).
        if !state.fresh {
            revive(&myself, state).await;
        } else if state.presence.cluster.is_none() {
            restore(&myself, state).await;
        }
        Ok(())
    }

    async fn handle(&self, myself: ActorRef<CallSupMsg>, msg: CallSupMsg, state: &mut SupState) -> Result<(), ActorProcessingErr> {
        match msg {
            CallSupMsg::Invite { caller, conn, callee, media, reply } => {
                invite(&myself, state, caller, conn, callee, media, reply).await;
            }
            CallSupMsg::CallOf { user_id, reply } => {
                let _ = reply.send(state.by_user.get(&user_id).cloned());
            }
            CallSupMsg::Signal { user_id, event, reply } => match state.by_user.get(&user_id).and_then(|id| session(id)) {
                Some(s) => {
                    if let Err(ractor::MessagingErr::SendErr(CallMsg::Event { reply, .. })) = s.cast(CallMsg::Event { event, reply }) {
                        reply.send(Err(WsError::BadState));
                    }
                }
                None => elsewhere(user_id, event, reply),
            },
            CallSupMsg::ConnectionClosed { conn_id, user_id, logout } => {
                let event = Event::ConnectionLost { conn: conn_id, logout };
                match state.by_user.get(&user_id).and_then(|id| session(id)) {
                    Some(s) => {
                        let _ = s.cast(CallMsg::Event { event, reply: ReplyTo::Nobody });
                    }
                    None => elsewhere(user_id, event, ReplyTo::Nobody),
                }
            }
            CallSupMsg::Resume { user_id, conn_id, reply } => {
                let event = Event::Resume { user: user_id, conn: conn_id };
                match state.by_user.get(&user_id).and_then(|id| session(id)) {
                    Some(s) => {
                        let info = match ask(&s, |port| CallMsg::Event { event, reply: ReplyTo::Port(port) }).await {
                            Some(Ok(v)) => v,
                            _ => Value::Null,
                        };
                        let _ = reply.send(info);
                    }
                    // A call another node owns: its answer comes later, and this supervisor
                    // does not wait for it.
                    None => match remote::call_elsewhere(user_id) {
                        Some(call_id) => {
                            let (tx, rx) = tokio::sync::oneshot::channel();
                            let _ = remote::forward(&call_id, event, ReplyTo::Port(tx.into()));
                            tokio::spawn(async move {
                                let info = match rx.await {
                                    Ok(Ok(v)) => v,
                                    _ => Value::Null,
                                };
                                let _ = reply.send(info);
                            });
                        }
                        None => {
                            let _ = reply.send(Value::Null);
                        }
                    },
                }
            }
            CallSupMsg::Remote(remote) => on_remote(&myself, state, remote).await,
            CallSupMsg::LiveCalls(reply) => {
                let mut calls: Vec<CallState> = state.snapshots.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
                calls.retain(|c| c.phase != Phase::Ended);
                calls.sort_by_key(|c| c.created_at);
                let _ = reply.send(calls);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(&self, myself: ActorRef<CallSupMsg>, event: SupervisionEvent, state: &mut SupState) -> Result<(), ActorProcessingErr> {
        let Some((cell, why)) = StopReason::of(&event) else { return Ok(()) };
        let Some(call_id) = state.sessions.remove(&cell.get_id()) else { return Ok(()) };
        let name = actor_name(&call_id);
        let _ = supervision::was_operator_kill(&name);
        // A session that ended its call, or stopped with the server, is done. Any other end is
        // a crash or a kill: the call goes on from the last state the session reported.
        let live = state.snapshot(&call_id).filter(|c| c.phase != Phase::Ended);
        if why == StopReason::Shutdown {
            // The call goes on after the restart; its trace is continued from the stored context.
            if let (Some(_), Some(trace)) = (&live, state.trace(&call_id)) {
                trace.suspend();
            }
        }
        let Some(call) = live.filter(|_| why != StopReason::Shutdown) else {
            if why != StopReason::Shutdown {
                state.ended_after(&call_id);
            }
            state.forget(&call_id);
            return Ok(());
        };
        let restarts = supervision::restarting(&name);
        metrics::counter!(crate::telemetry::names::ACTOR_RESTARTS, "kind" => "call").increment(1);
        if let Some(trace) = state.trace(&call_id) {
            trace.event("actor.restart", vec![opentelemetry::KeyValue::new("restarts", i64::from(restarts)), opentelemetry::KeyValue::new("reason", why.to_string())]);
        }
        let first = if restarts > MAX_RESTARTS { Event::Abort } else { Event::Revived };
        tracing::warn!(call.id = %call_id, actor = %name, reason = %why, restarts, "call session ended mid-call; restarting it");
        if let Err(e) = respawn(&myself, state, call, first).await {
            tracing::error!(call.id = %call_id, error = %e, "could not restart a call session");
            state.forget(&call_id);
        }
        Ok(())
    }
}

/// Starts a live call's session again from `call`, again if an operator's kill lands while it
/// starts: a call must not be left without a session (and its record non-terminal).
async fn respawn(myself: &ActorRef<CallSupMsg>, state: &mut SupState, call: CallState, first: Event) -> Result<(), ractor::SpawnErr> {
    let name = actor_name(&call.id);
    let mut tries = 0;
    loop {
        let args = state.args(call.clone(), first.clone(), ReplyTo::Nobody, None);
        match spawn_session(myself, state, args).await {
            Ok(()) => return Ok(()),
            Err(_) if tries < 1000 && supervision::was_operator_kill(&name) => {
                tries += 1;
                supervision::name_free(&name, std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Rule 1 and 2 of PROTOCOL.md section 4: refuse, merge, or create and ring.
async fn invite(myself: &ActorRef<CallSupMsg>, state: &mut SupState, caller: User, conn: ConnId, callee: User, media: Media, reply: ReplyTo) {
    if let Some(existing) = state.call_of(caller.id) {
        // The caller is in a call already. If it is the callee's invite to them, still ringing,
        // the two invites become that one call (glare); otherwise they are busy themselves.
        let Some(s) = session(&existing) else { return reply.send(Err(WsError::AlreadyInCall)) };
        let event = Event::Glare { user: caller.id, to: callee.id, conn };
        if let Err(ractor::MessagingErr::SendErr(CallMsg::Event { reply, .. })) = s.cast(CallMsg::Event { event, reply }) {
            reply.send(Err(WsError::AlreadyInCall));
        }
        return;
    }
    let now = now_ms();
    let id = uuid::Uuid::new_v4().to_string();
    let online = state.presence.is_online(callee.id);
    if !online {
        let row = record::refused_row(id, caller.id, callee.id, media, CallStatus::Missed, "offline", now);
        save(state, &row).await;
        metrics::counter!(crate::telemetry::names::CALLS_ENDED, "status" => "missed", "failure_class" => "no_answer").increment(1);
        return reply.send(Err(WsError::Offline));
    }
    // In a cluster, who is in which call is decided in Redis, once for every node.
    let mut callee_busy = state.call_of(callee.id).is_some();
    if let Some(cluster) = state.presence.cluster.clone() {
        match cluster.claim(&id, caller.id, callee.id).await {
            // A call this node made while Redis was away holds the callee: not in Redis yet.
            Some(Claim::Claimed) if callee_busy => cluster.release(&id, caller.id, callee.id),
            Some(Claim::Claimed) => {}
            Some(Claim::CallerIn(existing)) => {
                // The caller is in a call another node owns: a glare there, or busy themselves.
                let event = Event::Glare { user: caller.id, to: callee.id, conn };
                if let Err((_, reply)) = remote::forward(&existing, event, reply) {
                    reply.send(Err(WsError::AlreadyInCall));
                }
                return;
            }
            Some(Claim::CalleeIn(_)) => callee_busy = true,
            // Redis is away: this node decides alone, for the users it holds alone.
            None if state.presence.elsewhere_only(callee.id) => return reply.send(Err(WsError::NodeUnreachable)),
            None => {}
        }
    }
    if callee_busy {
        let row = record::refused_row(id.clone(), caller.id, callee.id, media, CallStatus::Busy, "busy", now);
        metrics::counter!(crate::telemetry::names::CALLS_ENDED, "status" => "busy", "failure_class" => "busy").increment(1);
        save(state, &row).await;
        let busy = ServerFrame::event(Code::CalleeBusy, format!("{} is busy", callee.display_name), json!({ "callId": id, "toId": callee.id }));
        reply.send(Err(WsError::Busy));
        conn::deliver(&conn, busy.to_text());
        return;
    }
    let (caller_id, callee_id) = (caller.id, callee.id);
    let call = CallState::new(id.clone(), caller, conn, callee, media, now);
    // The session answers the inviter itself, before it rings anyone. A session that cannot
    // start has answered with the reason in its first step (a spawn fails only there).
    let args = state.args(call, Event::Start, reply, None);
    if let Err(e) = spawn_session(myself, state, args).await {
        tracing::error!(call.id = %id, error = %e, "could not start a call session");
        if let Some(cluster) = &state.presence.cluster {
            cluster.release(&id, caller_id, callee_id);
        }
        state.forget(&id);
        return;
    }
    state.by_user.insert(caller_id, id.clone());
    state.by_user.insert(callee_id, id.clone());
    tracing::info!(call.id = %id, caller = caller_id, callee = callee_id, "call ringing");
}

/// A refused invite's record, on disk before the caller hears the refusal.
async fn save(state: &SupState, row: &crate::store::calls::CallRow) {
    if !state.recorder.save_and_wait(row.clone(), std::time::Duration::from_secs(1)).await {
        tracing::warn!(call.id = %row.id, "a refused call's record is not written yet");
    }
}

/// Rule 11: calls live in the database when the server last stopped go on, with every party's
/// reconnect grace running.
async fn restore(myself: &ActorRef<CallSupMsg>, state: &mut SupState) {
    let rows = match state.store.live_calls().await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "reading live calls to restore");
            return;
        }
    };
    for row in rows {
        let users = (state.store.user_by_id(row.caller_id).await, state.store.user_by_id(row.callee_id).await);
        let call = match users {
            (Ok(Some(a)), Ok(Some(b))) => record::from_row(&row, &a, &b),
            _ => None,
        };
        let Some(call) = call else {
            tracing::warn!(call.id = %row.id, "a live call could not be restored");
            continue;
        };
        let args = state.args(call, Event::Restored, ReplyTo::Nobody, row.trace_parent.as_deref());
        match spawn_session(myself, state, args).await {
            Ok(_) => {
                state.by_user.insert(row.caller_id, row.id.clone());
                state.by_user.insert(row.callee_id, row.id.clone());
                tracing::info!(call.id = %row.id, status = %row.status, "call restored; waiting for its parties");
            }
            Err(e) => tracing::error!(call.id = %row.id, error = %e, "could not restore a call"),
        }
    }
}

/// After this supervisor itself died (and its sessions with it): every call its sessions last
/// reported live goes on, each session started again from its snapshot with its timers re-armed,
/// as after a session's own death.
async fn revive(myself: &ActorRef<CallSupMsg>, state: &mut SupState) {
    let (live, ended): (Vec<CallState>, Vec<CallState>) =
        state.snapshots.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().partition(|c| c.phase != Phase::Ended);
    for call in ended {
        state.forget(&call.id);
    }
    for call in live {
        let id = call.id.clone();
        let (caller, callee) = (call.caller.user.id, call.callee.user.id);
        supervision::name_free(&actor_name(&id), std::time::Duration::from_secs(2)).await;
        // Not counted toward the call's own restart limit: the session did not fail, its
        // supervisor did, and a burst of those must not end every call.
        match respawn(myself, state, call, Event::Revived).await {
            Ok(()) => {
                state.by_user.insert(caller, id.clone());
                state.by_user.insert(callee, id.clone());
                tracing::info!(call.id = %id, "call revived after its supervisor restarted");
            }
            Err(e) => {
                tracing::error!(call.id = %id, error = %e, "could not revive a call");
                state.forget(&id);
            }
        }
    }
}

/// An event for the call a user is in on another node, forwarded there; `bad_state` if they are
/// in none.
fn elsewhere(user_id: i64, event: Event, reply: ReplyTo) {
    let Some(call_id) = remote::call_elsewhere(user_id) else { return reply.send(Err(WsError::BadState)) };
    if let Err((_, reply)) = remote::forward(&call_id, event, reply) {
        reply.send(Err(WsError::BadState));
    }
}

async fn on_remote(myself: &ActorRef<CallSupMsg>, state: &mut SupState, remote: Remote) {
    match remote {
        Remote::NodeGone(node) => {
            // Each of this node's calls with a party bound on that node: that party is away.
            let calls: Vec<CallState> = state.snapshots.lock().unwrap_or_else(|p| p.into_inner()).values().filter(|c| c.phase != Phase::Ended).cloned().collect();
            for call in calls {
                for conn in [&call.caller.conn, &call.callee.conn].into_iter().flatten() {
                    if conn::remote_node(conn) == Some(node.as_str()) {
                        if let Some(s) = session(&call.id) {
                            let _ = s.cast(CallMsg::Event { event: Event::ConnectionLost { conn: conn.clone(), logout: false }, reply: ReplyTo::Nobody });
                        }
                    }
                }
            }
        }
        Remote::Adopt { absent } => adopt(myself, state, absent).await,
        Remote::Rebind { call_id, owner, users } => {
            let Some(registry) = crate::presence::registry() else { return };
            for user_id in users {
                let conns = ask(&registry, |reply| crate::presence::RegistryMsg::ConnectionsOf { user_id, reply }).await.unwrap_or_default();
                if let Some((conn, _)) = conns.into_iter().next() {
                    tracing::info!(call.id = %call_id, %owner, user = user_id, "a call moved to another node; its party here rebinds there");
                    let _ = remote::forward(&call_id, Event::Resume { user: user_id, conn }, ReplyTo::Nobody);
                }
            }
        }
    }
}

/// Takes over the live calls of nodes that are gone, from the database: each goes on here as
/// after a restart (both parties' grace running), and its parties' open connections, here and
/// on the other nodes, are bound to it again.
async fn adopt(myself: &ActorRef<CallSupMsg>, state: &mut SupState, absent: bool) {
    let Some(cluster) = state.presence.cluster.clone() else { return };
    let rows = match state.store.live_calls().await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "reading live calls to take over");
            return;
        }
    };
    for row in rows {
        if state.sessions.values().any(|id| *id == row.id) || !cluster.adopt(&row.id, row.caller_id, row.callee_id, absent).await {
            continue;
        }
        let users = (state.store.user_by_id(row.caller_id).await, state.store.user_by_id(row.callee_id).await);
        let call = match users {
            (Ok(Some(a)), Ok(Some(b))) => record::from_row(&row, &a, &b),
            _ => None,
        };
        let Some(call) = call else {
            tracing::warn!(call.id = %row.id, "a call to take over could not be read");
            cluster.release(&row.id, row.caller_id, row.callee_id);
            continue;
        };
        let args = state.args(call, Event::Restored, ReplyTo::Nobody, row.trace_parent.as_deref());
        if let Err(e) = spawn_session(myself, state, args).await {
            tracing::error!(call.id = %row.id, error = %e, "could not take over a call");
            cluster.release(&row.id, row.caller_id, row.callee_id);
            continue;
        }
        state.by_user.insert(row.caller_id, row.id.clone());
        state.by_user.insert(row.callee_id, row.id.clone());
        metrics::counter!(crate::telemetry::names::CLUSTER_CALLS_ADOPTED).increment(1);
        tracing::info!(call.id = %row.id, "took over a call whose node is gone; waiting for its parties");
        // Its parties connected here are bound again now; those on other nodes, by theirs.
        let Some(registry) = crate::presence::registry() else { continue };
        for user_id in [row.caller_id, row.callee_id] {
            let conns = ask(&registry, |reply| crate::presence::RegistryMsg::ConnectionsOf { user_id, reply }).await.unwrap_or_default();
            if let (Some((conn, _)), Some(s)) = (conns.into_iter().next(), session(&row.id)) {
                let _ = s.cast(CallMsg::Event { event: Event::Resume { user: user_id, conn }, reply: ReplyTo::Nobody });
            }
        }
    }
}
