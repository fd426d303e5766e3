//! The call session actor, `call:<callId>`: owns one call's state, feeds events to the machine,
//! and applies the effects it returns: frames to connections, timers, the call record, presence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::JoinHandle;

use opentelemetry::KeyValue;
use serde_json::Value;

use super::machine::{self, CallState, Effect, Event, Phase, Reply, Role, Timer, Timing};
use super::outcome::{self, FailureClass, RelayFacts};
use super::trace::CallTrace;
use crate::telemetry::names;
use crate::turn::RelayStats;
use super::record;
use crate::protocol::conn;
use crate::presence::{self, RegistryMsg};
use super::recorder::Recorder;
use crate::store::now_ms;

pub enum CallMsg {
    /// An event for the machine; the reply (ack or 10003) goes back to whoever asked.
    Event { event: Event, reply: ReplyTo },
    /// A timer armed under generation `generation` fired.
    Timer { timer: Timer, generation: u64 },
}

pub struct CallSession;

/// Where the answer to an event goes.
pub enum ReplyTo {
    Nobody,
    /// Someone waits for it (the call supervisor, say).
    Port(RpcReplyPort<Reply>),
    /// Straight to the client, as a frame on its connection: an ack when the frame carried a
    /// `seq`, a 10003 always. The connection casts signaling and goes on reading; it never
    /// waits for the session.
    Conn { conn: conn::ConnId, method: &'static str, seq: Option<i64> },
}

impl ReplyTo {
    pub fn send(self, answer: Reply) {
        match self {
            ReplyTo::Nobody => {}
            ReplyTo::Port(port) => {
                let _ = port.send(answer);
            }
            ReplyTo::Conn { conn, method, seq } => {
                let frame = match (answer, seq) {
                    (Ok(v), Some(seq)) => crate::protocol::ServerFrame::ack(method, seq, v),
                    (Ok(_), None) => return,
                    (Err(e), seq) => crate::protocol::ServerFrame::error(Some(method), seq, e),
                };
                conn::deliver(&conn, frame.to_text());
            }
        }
    }
}

pub struct SessionArgs {
    pub call: CallState,
    /// `Start` for a new call, `Restored` after a server restart, `Revived` (or `Abort`) after
    /// the session itself died.
    pub first: Event,
    /// Who hears the first step's answer (the inviting connection, for a new call).
    pub first_reply: ReplyTo,
    /// Writes the call's record, off the path of the frames.
    pub recorder: Recorder,
    pub timing: Timing,
    /// Where the session reports its state after every step, for a restart to start from.
    pub snapshots: Snapshots,
    /// The call's trace, which outlives any one session actor.
    pub trace: CallTrace,
    /// The embedded relay's counters, to tell relay failures apart when the call ends.
    pub relay: Option<Arc<RelayStats>>,
}

/// The last state each live call's session reported, kept by the call supervisor.
pub type Snapshots = Arc<Mutex<HashMap<String, CallState>>>;

pub struct SessionState {
    call: CallState,
    recorder: Recorder,
    timing: Timing,
    snapshots: Snapshots,
    trace: CallTrace,
    relay: Option<Arc<RelayStats>>,
    /// Set when the call ends.
    failure_class: Option<FailureClass>,
    /// Armed timers: the generation that may fire, and the task that will send it.
    timers: HashMap<Timer, (u64, JoinHandle<()>)>,
    generation: u64,
    /// The first step and who hears its answer, until `post_start` runs it.
    first: Option<(Event, ReplyTo, bool)>,
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

    async fn pre_start(&self, _myself: ActorRef<CallMsg>, args: SessionArgs) -> Result<SessionState, ActorProcessingErr> {
        let revived = matches!(args.first, Event::Revived);
        let mut state =
            SessionState {
                call: args.call,
                recorder: args.recorder,
                timing: args.timing,
                snapshots: args.snapshots,
                trace: args.trace,
                relay: args.relay,
                failure_class: None,
                timers: HashMap::new(),
                generation: 0,
                first: None,
            };
        state.first = Some((args.first, args.first_reply, revived));
        Ok(state)
    }

    /// The first step runs here, after the spawn returned but before any event is handled: the
    /// call supervisor, which admits invites one at a time, does not wait for the call's first
    /// record to be written.
    async fn post_start(&self, myself: ActorRef<CallMsg>, state: &mut SessionState) -> Result<(), ActorProcessingErr> {
        let Some((first, reply, revived)) = state.first.take() else { return Ok(()) };
        if let Err(e) = apply(&myself, state, first, reply).await {
            return Err(format!("call {} could not start: {e:?}", state.call.id).into());
        }
        if revived {
            heal(&myself, state).await;
        }
        Ok(())
    }

    async fn handle(&self, myself: ActorRef<CallMsg>, msg: CallMsg, state: &mut SessionState) -> Result<(), ActorProcessingErr> {
        match msg {
            CallMsg::Event { event, reply } => {
                let _ = apply(&myself, state, event, reply).await;
            }
            CallMsg::Timer { timer, generation } => {
                if state.timers.get(&timer).is_some_and(|(g, _)| *g == generation) {
                    state.timers.remove(&timer);
                    let _ = apply(&myself, state, Event::TimerFired(timer), ReplyTo::Nobody).await;
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
            // A connection on another node is that node's to report lost.
            if conn::remote_node(&conn).is_none() && conn::find(&conn).is_none() {
                let _ = apply(myself, state, Event::ConnectionLost { conn, logout: false }, ReplyTo::Nobody).await;
            }
        } else if party.lost_since.is_some() {
            let Some(registry) = presence::registry() else { continue };
            let user_id = party.user.id;
            let conns = super::ask(&registry, |reply| RegistryMsg::ConnectionsOf { user_id, reply }).await.unwrap_or_default();
            if let Some((conn, _)) = conns.into_iter().next() {
                let _ = apply(myself, state, Event::Resume { user: user_id, conn }, ReplyTo::Nobody).await;
            }
        }
    }
}

/// Whether the other party of `user` is bound on another node that cannot be reached now.
fn peer_out_of_reach(call: &CallState, user: i64) -> bool {
    let peer = if call.caller.user.id == user { &call.callee } else { &call.caller };
    peer.conn.as_deref().is_some_and(|c| conn::remote_node(c).is_some()) && crate::cluster::current().is_some_and(|c| !c.healthy())
}

/// What of an event the trace and metrics need after the machine has consumed it.
enum Seen {
    Signal(machine::Signal, i64, Option<crate::protocol::RawData>),
    Report(Value),
    Lost,
    Resume,
    Other,
}

fn seen(event: &Event) -> Seen {
    match event {
        Event::Signal { kind, user, data, .. } => Seen::Signal(*kind, *user, data.clone()),
        Event::Report { stats, .. } => Seen::Report(stats.clone()),
        Event::ConnectionLost { .. } => Seen::Lost,
        Event::Resume { .. } => Seen::Resume,
        _ => Seen::Other,
    }
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Ringing => "ringing",
        Phase::Active => "active",
        Phase::Ended => "ended",
    }
}

/// The class of the call that just ended, from its record, reports and the relay's view.
fn classify(state: &SessionState) -> FailureClass {
    let c = &state.call;
    let (from, to) = (c.created_at, c.ended_at.unwrap_or_else(now_ms));
    let facts = |user: i64| match &state.relay {
        Some(r) => RelayFacts {
            embedded: true,
            auth_refused: r.last_auth_failure(user).is_some_and(|t| t >= from && t <= to),
            allocated: r.last_allocation(user).is_some_and(|t| t >= from && t <= to),
        },
        None => RelayFacts::default(),
    };
    outcome::classify(
        c.status(),
        c.ending.as_ref().map(|e| e.reason),
        [c.caller.report.as_ref(), c.callee.report.as_ref()],
        [facts(c.caller.user.id), facts(c.callee.user.id)],
    )
}

/// How long a transition waits for its record to be written before the call's frames go on.
const TRANSITION_WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// What of the state before a step the trace and metrics compare with: enough to tell a
/// transition, without copying the whole call for every candidate.
struct Before {
    phase: Phase,
    caller_conn: Option<conn::ConnId>,
    callee_conn: Option<conn::ConnId>,
    unstarted: bool,
}

impl Before {
    fn of(c: &CallState) -> Before {
        Before {
            phase: c.phase,
            caller_conn: c.caller.conn.clone(),
            callee_conn: c.callee.conn.clone(),
            unstarted: matches!(c.phase, Phase::Ringing) && c.timers.is_empty() && c.caller.conn.is_some(),
        }
    }

    fn conns_changed(&self, c: &CallState) -> bool {
        self.caller_conn != c.caller.conn || self.callee_conn != c.callee.conn
    }
}

/// Records one step in the call's trace and the metrics.
fn observe(state: &SessionState, before: &Before, seen: Seen, reply: &Reply) {
    let call = &state.call;
    if reply.is_ok() {
        match seen {
            Seen::Signal(kind, from, data) => {
                let name = match kind {
                    machine::Signal::Offer => "offer",
                    machine::Signal::Answer => "answer",
                    machine::Signal::Candidate => "candidate",
                };
                metrics::counter!(names::FRAMES_RELAYED, "kind" => name).increment(1);
                match kind {
                    machine::Signal::Offer => state.trace.child("call.offer", vec![KeyValue::new("call.id", call.id.clone()), KeyValue::new("from", from)]),
                    machine::Signal::Answer => state.trace.child("call.answer", vec![KeyValue::new("call.id", call.id.clone()), KeyValue::new("from", from)]),
                    machine::Signal::Candidate => state.trace.candidate(data.as_ref()),
                }
            }
            Seen::Report(stats) => {
                let text = |k: &str| stats.get(k).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).unwrap_or_default();
                let relayed = text("localCandidateType") == "relay" || text("remoteCandidateType") == "relay";
                metrics::counter!(names::CALL_REPORTS, "relayed" => if relayed { "true" } else { "false" }).increment(1);
                if text("iceState") == "failed" {
                    metrics::counter!(names::ICE_FAILURES).increment(1);
                }
                let attrs = ["iceState", "localCandidateType", "remoteCandidateType", "rttMs", "bitrateKbps", "packetLoss"]
                    .iter()
                    .map(|k| KeyValue::new(*k, text(k)))
                    .collect();
                state.trace.event("call.report", attrs);
            }
            Seen::Lost if before.phase == call.phase && before.conns_changed(call) => {
                state.trace.event("peer.reconnecting", Vec::new());
            }
            Seen::Resume if before.conns_changed(call) => {
                state.trace.event("peer.resumed", Vec::new());
            }
            _ => {}
        }
    }
    if before.phase == call.phase {
        return;
    }
    let (from, to) = (phase_name(before.phase), phase_name(call.phase));
    metrics::gauge!(names::CALLS_LIVE, "state" => from).decrement(1.0);
    if call.phase != Phase::Ended {
        metrics::gauge!(names::CALLS_LIVE, "state" => to).increment(1.0);
    }
    state.trace.child(
        if call.phase == Phase::Active { "call.answered" } else { "call.ended" },
        vec![KeyValue::new("call.id", call.id.clone()), KeyValue::new("from", from), KeyValue::new("to", to)],
    );
    if call.phase == Phase::Active {
        let setup = (call.answered_at.unwrap_or(call.created_at) - call.created_at) as f64 / 1000.0;
        metrics::histogram!(names::CALL_SETUP).record(setup);
    }
    if call.phase == Phase::Ended {
        let status = call.status().as_str();
        let class = state.failure_class.unwrap_or(FailureClass::Ok);
        metrics::counter!(names::CALLS_ENDED, "status" => status, "failure_class" => class.as_str()).increment(1);
        if let Some(d) = call.duration_ms() {
            metrics::histogram!(names::CALL_DURATION).record(d as f64 / 1000.0);
        }
        let ending = call.ending.as_ref();
        let mut attrs = vec![
            KeyValue::new("call.status", status),
            KeyValue::new("call.end_reason", ending.map_or("", |e| e.reason.as_str())),
            KeyValue::new("call.failure_class", class.as_str()),
            KeyValue::new("call.duration_ms", call.duration_ms().unwrap_or(0)),
        ];
        if let Some(by) = ending.and_then(|e| e.by) {
            attrs.push(KeyValue::new("call.ended_by", by));
        }
        if let Some(a) = call.answered_at {
            attrs.push(KeyValue::new("call.setup_ms", a - call.created_at));
        }
        let unhappy = !matches!(class, FailureClass::Ok | FailureClass::NoAnswer | FailureClass::Declined | FailureClass::Busy);
        state.trace.close(attrs, unhappy.then(|| format!("call failed: {}", class.as_str())));
    }
}

/// One machine step and its effects. The answer goes to `reply` first: a request's answer
/// precedes the events it caused (the inviter hears its ack before 10013). The session stops
/// once the final record is written.
async fn apply(myself: &ActorRef<CallMsg>, state: &mut SessionState, event: Event, reply: ReplyTo) -> Reply {
    if let Event::Signal { user, .. } = &event {
        if peer_out_of_reach(&state.call, *user) {
            // The peer is on another node and Redis is away: refused, not acked and lost.
            reply.send(Err(crate::protocol::WsError::NodeUnreachable));
            return Err(crate::protocol::WsError::NodeUnreachable);
        }
    }
    let before = Before::of(&state.call);
    let what = seen(&event);
    let started = matches!(event, Event::Start | Event::Restored);
    // Signaling never changes the call's state, so it leaves the snapshot as it is.
    let signal = matches!(event, Event::Signal { .. });
    let t = machine::step(state.call.clone(), event, now_ms(), state.timing);
    state.call = t.state;
    if !signal {
        state.snapshots.lock().unwrap_or_else(|p| p.into_inner()).insert(state.call.id.clone(), state.call.clone());
    }
    if t.effects.contains(&Effect::Finished) {
        state.failure_class = Some(classify(state));
    }
    if started && t.reply.is_ok() {
        if before.unstarted {
            metrics::counter!(names::CALLS_STARTED).increment(1);
        }
        metrics::gauge!(names::CALLS_LIVE, "state" => phase_name(state.call.phase)).increment(1.0);
    }
    observe(state, &before, what, &t.reply);
    if t.effects.contains(&Effect::Persist) {
        let class = state.failure_class.map(FailureClass::as_str);
        let row = record::to_row(&state.call, class, state.trace.traceparent());
        if before.phase != state.call.phase || started {
            // A transition is on disk before the parties hear of it (bounded: a slow database
            // delays the call's frames by at most this, and the row is written later).
            if !state.recorder.save_and_wait(row, TRANSITION_WRITE_WAIT).await {
                tracing::warn!(call.id = %state.call.id, "a call record is not written yet; the call goes on");
            }
        } else {
            state.recorder.save(row);
        }
    }
    // Out of the cluster's directory once the record says it ended (a node taking calls over
    // reads the records) and before anyone hears it ended (so that the next invite they make
    // finds both users free on every node).
    if t.effects.contains(&Effect::Finished) {
        if let Some(cluster) = crate::cluster::current() {
            cluster.release(&state.call.id, state.call.caller.user.id, state.call.callee.user.id);
        }
    }
    reply.send(t.reply.clone());
    let mut finished = false;
    for effect in t.effects {
        match effect {
            Effect::ToConn(conn, frame) => {
                conn::deliver(&conn, frame.to_text());
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
            // Written above, before any frame.
            Effect::Persist => {}
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
            failure_class = state.failure_class.map_or("", FailureClass::as_str),
            duration_ms = c.duration_ms().unwrap_or(0),
            "call ended"
        );
        myself.stop(Some("call ended".into()));
    }
    t.reply
}
