//! The call session actor, `call:<callId>`: owns one call's state, feeds events to the machine,
//! and applies the effects it returns: frames to connections, timers, the call record, presence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::JoinHandle;

use super::machine::{self, CallState, Effect, Event, Reply, Role, Timer, Timing};
use super::record;
use super::supervisor::CallSupMsg;
use crate::connection::{self, ConnMsg};
use crate::presence::{self, RegistryMsg};
use crate::store::{Store, now_ms};

pub enum CallMsg {
    /// An event for the machine; the reply (ack or 10003) goes back to whoever asked.
    Event { event: Event, reply: Option<RpcReplyPort<Reply>> },
    /// A timer armed under generation `generation` fired.
    Timer { timer: Timer, generation: u64 },
}

pub struct CallSession;

pub struct SessionArgs {
    pub call: CallState,
    /// `Start` for a new call, `Restored` after a server restart, `Revived` (or `Abort`) after
    /// the session itself died.
    pub first: Event,
    pub store: Store,
    pub timing: Timing,
    /// Where the session reports its state after every step, for a restart to start from.
    pub snapshots: Snapshots,
}

/// The last state each live call's session reported, kept by the call supervisor.
pub type Snapshots = Arc<Mutex<HashMap<String, CallState>>>;

pub struct SessionState {
    call: CallState,
    store: Store,
    timing: Timing,
    snapshots: Snapshots,
    /// Armed timers: the generation that may fire, and the task that will send it.
    timers: HashMap<Timer, (u64, JoinHandle<()>)>,
    generation: u64,
}

impl Drop for SessionState {
    fn drop(&mut self) {
        for (_, (_, task)) in self.timers.drain() {
            task.abort();
        }
    }
}

impl Actor for CallSession {
    type Msg = CallMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(&self, myself: ActorRef<CallMsg>, args: SessionArgs) -> Result<SessionState, ActorProcessingErr> {
        let revived = matches!(args.first, Event::Revived);
        let mut state =
            SessionState { call: args.call, store: args.store, timing: args.timing, snapshots: args.snapshots, timers: HashMap::new(), generation: 0 };
        // The first step runs before anyone can send the call an event.
        let reply = apply(&myself, &mut state, args.first).await;
        if let Err(e) = reply {
            return Err(format!("call {} could not start: {e:?}", state.call.id).into());
        }
        if revived {
            heal(&myself, &mut state).await;
        }
        Ok(state)
    }

    async fn handle(&self, myself: ActorRef<CallMsg>, msg: CallMsg, state: &mut SessionState) -> Result<(), ActorProcessingErr> {
        match msg {
            CallMsg::Event { event, reply } => {
                let answer = apply(&myself, state, event).await;
                if let Some(port) = reply {
                    let _ = port.send(answer);
                }
            }
            CallMsg::Timer { timer, generation } => {
                if state.timers.get(&timer).is_some_and(|(g, _)| *g == generation) {
                    state.timers.remove(&timer);
                    let _ = apply(&myself, state, Event::TimerFired(timer)).await;
                }
            }
        }
        Ok(())
    }
}

/// After a restart: whatever happened while the session was dead reached nobody. A bound
/// connection that closed meanwhile is lost now; a party who came back meanwhile is bound now.
async fn heal(myself: &ActorRef<CallMsg>, state: &mut SessionState) {
    for role in [Role::Caller, Role::Callee] {
        let party = state.call.party(role).clone();
        if let Some(conn) = party.conn {
            if ActorRef::<ConnMsg>::where_is(connection::actor_name(&conn)).is_none() {
                let _ = apply(myself, state, Event::ConnectionLost { conn, logout: false }).await;
            }
        } else if party.lost_since.is_some() {
            let Some(registry) = presence::registry() else { continue };
            let user_id = party.user.id;
            let conns = super::ask(&registry, |reply| RegistryMsg::ConnectionsOf { user_id, reply }).await.unwrap_or_default();
            if let Some((conn, _)) = conns.into_iter().next() {
                let _ = apply(myself, state, Event::Resume { user: user_id, conn }).await;
            }
        }
    }
}

/// One machine step and its effects. The session stops once the final record is written.
async fn apply(myself: &ActorRef<CallMsg>, state: &mut SessionState, event: Event) -> Reply {
    let t = machine::step(state.call.clone(), event, now_ms(), state.timing);
    state.call = t.state;
    state.snapshots.lock().unwrap_or_else(|p| p.into_inner()).insert(state.call.id.clone(), state.call.clone());
    let mut finished = false;
    for effect in t.effects {
        match effect {
            Effect::ToConn(conn, frame) => {
                if let Some(c) = ActorRef::<ConnMsg>::where_is(connection::actor_name(&conn)) {
                    let _ = c.cast(ConnMsg::Send(frame.to_text()));
                }
            }
            Effect::ToUser { user, except, frame } => {
                presence::tell(RegistryMsg::SendToUser { user_id: user, text: frame.to_text(), except });
            }
            Effect::Arm(timer, ms) => {
                state.generation += 1;
                let generation = state.generation;
                let me = myself.clone();
                let task = tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    let _ = me.cast(CallMsg::Timer { timer, generation });
                });
                if let Some((_, old)) = state.timers.insert(timer, (generation, task)) {
                    old.abort();
                }
            }
            Effect::Cancel(timer) => {
                if let Some((_, task)) = state.timers.remove(&timer) {
                    task.abort();
                }
            }
            Effect::Persist => {
                if let Err(e) = state.store.save_call(&record::to_row(&state.call)).await {
                    tracing::error!(call.id = %state.call.id, error = %e, "writing a call record");
                }
            }
            Effect::InCall { user, in_call } => presence::tell(RegistryMsg::SetInCall { user_id: user, in_call }),
            Effect::Finished => finished = true,
        }
    }
    if finished {
        let c = &state.call;
        tracing::info!(
            call.id = %c.id,
            status = c.status().as_str(),
            reason = c.ending.as_ref().map_or("", |e| e.reason.as_str()),
            duration_ms = c.duration_ms().unwrap_or(0),
            "call ended"
        );
        super::tell(CallSupMsg::Ended { call_id: c.id.clone(), users: [c.caller.user.id, c.callee.user.id] });
        myself.stop(Some("call ended".into()));
    }
    t.reply
}
