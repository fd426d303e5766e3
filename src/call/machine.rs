//! The call state machine of PROTOCOL.md section 4, as a pure function:
//! `step(state, event, now) -> (state, reply, effects)`. No actor, socket, clock or database
//! here: time comes in with each event, and what should happen in the world goes out as
//! [`Effect`]s that the session actor applies.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::protocol::{Code, FrameData, RawData, ServerFrame, User, WsError, rfc3339};
pub use crate::protocol::methods::{Media, Signal};

/// A connection id, as the registry knows it.
pub type ConnId = std::sync::Arc<str>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Caller,
    Callee,
}

impl Role {
    pub fn other(self) -> Role {
        match self {
            Role::Caller => Role::Callee,
            Role::Callee => Role::Caller,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Caller => "caller",
            Role::Callee => "callee",
        }
    }
}

/// The live phases of a call; `Ended` is terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Ringing,
    Active,
    Ended,
}

/// `status` of a call record (PROTOCOL.md section 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallStatus {
    Ringing,
    Active,
    Completed,
    Missed,
    Rejected,
    Busy,
    Cancelled,
    Failed,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Ringing => "ringing",
            CallStatus::Active => "active",
            CallStatus::Completed => "completed",
            CallStatus::Missed => "missed",
            CallStatus::Rejected => "rejected",
            CallStatus::Busy => "busy",
            CallStatus::Cancelled => "cancelled",
            CallStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<CallStatus> {
        Some(match s {
            "ringing" => CallStatus::Ringing,
            "active" => CallStatus::Active,
            "completed" => CallStatus::Completed,
            "missed" => CallStatus::Missed,
            "rejected" => CallStatus::Rejected,
            "busy" => CallStatus::Busy,
            "cancelled" => CallStatus::Cancelled,
            "failed" => CallStatus::Failed,
            _ => return None,
        })
    }
}

/// `reason` of 10016 and `endReason` of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    Hangup,
    Cancelled,
    Rejected,
    Timeout,
    PeerLost,
    Logout,
    ServerError,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Hangup => "hangup",
            EndReason::Cancelled => "cancelled",
            EndReason::Rejected => "rejected",
            EndReason::Timeout => "timeout",
            EndReason::PeerLost => "peer_lost",
            EndReason::Logout => "logout",
            EndReason::ServerError => "server_error",
        }
    }
}

/// Timers a call may arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// Ring timeout: the call is missed when it fires while ringing.
    Ring,
    /// Reconnect grace of one party: the call fails when it fires while they are away.
    Grace(Role),
}

/// One side of a call.
#[derive(Clone, Debug, PartialEq)]
pub struct Party {
    pub user: User,
    /// The connection bound to the call on this side. The callee has none while ringing.
    pub conn: Option<ConnId>,
    /// Set while this party's bound connection is gone and the grace runs.
    pub lost_since: Option<i64>,
    /// The party's last `Call/Report` stats.
    pub report: Option<Value>,
}

/// How a call ended, written once.
#[derive(Clone, Debug, PartialEq)]
pub struct Ending {
    pub status: CallStatus,
    pub reason: EndReason,
    pub by: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CallState {
    pub id: String,
    pub caller: Party,
    pub callee: Party,
    pub media: Media,
    pub phase: Phase,
    pub created_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub ending: Option<Ending>,
    /// Timers armed and not yet fired or cancelled.
    pub timers: BTreeSet<Timer>,
}

/// Timeouts the machine arms, from the settings.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub ring_timeout_ms: u64,
    pub reconnect_grace_ms: u64,
}

#[derive(Clone, Debug)]
pub enum Event {
    /// A new call was created: ring the callee, tell the caller.
    Start,
    /// The server restarted with this call live: both sides are away, their grace runs.
    Restored,
    /// The session actor died and was restarted from this state: its timers died with it and
    /// are armed again for the time they had left.
    Revived,
    /// The session kept failing: the call ends `server_error`.
    Abort,
    Accept { user: i64, conn: ConnId },
    Reject { user: i64, conn: ConnId },
    Cancel { user: i64, conn: ConnId },
    Hangup { user: i64, conn: ConnId },
    /// `user` invited `to` while `to`'s invite to `user` rang: the two become this call.
    Glare { user: i64, to: i64, conn: ConnId },
    /// An offer, answer or candidate. `to` is the `toId` given; `implicit` when the client gave
    /// no `callId` and the call was found from the pair of users.
    Signal { kind: Signal, user: i64, conn: ConnId, to: Option<i64>, implicit: bool, data: Option<RawData> },
    Report { user: i64, stats: Value },
    /// A connection of one of the parties closed (`logout` when a logout closed it).
    ConnectionLost { conn: ConnId, logout: bool },
    /// A party opened a new connection.
    Resume { user: i64, conn: ConnId },
    TimerFired(Timer),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// A frame to one connection.
    ToConn(ConnId, ServerFrame),
    /// A frame to every connection of a user but `except`.
    ToUser { user: i64, except: Option<ConnId>, frame: ServerFrame },
    Arm(Timer, u64),
    Cancel(Timer),
    /// Write the call's record as it now stands.
    Persist,
    /// The user's presence is now (or no longer) `in_call`.
    InCall { user: i64, in_call: bool },
    /// The call ended and its final record is written: the session may stop.
    Finished,
}

/// The answer to the party whose frame caused the event: an ack payload or a 10003 error.
pub type Reply = Result<Value, WsError>;

/// The result of one step.
pub struct Transition {
    pub state: CallState,
    pub reply: Reply,
    pub effects: Vec<Effect>,
}

impl CallState {
    /// A fresh call, ringing, bound on the caller's side to the inviting connection.
    pub fn new(id: String, caller: User, caller_conn: ConnId, callee: User, media: Media, now: i64) -> CallState {
        CallState {
            id,
            caller: Party { user: caller, conn: Some(caller_conn), lost_since: None, report: None },
            callee: Party { user: callee, conn: None, lost_since: None, report: None },
            media,
            phase: Phase::Ringing,
            created_at: now,
            answered_at: None,
            ended_at: None,
            ending: None,
            timers: BTreeSet::new(),
        }
    }

    pub fn role_of(&self, user: i64) -> Option<Role> {
        if user == self.caller.user.id {
            Some(Role::Caller)
        } else if user == self.callee.user.id {
            Some(Role::Callee)
        } else {
            None
        }
    }

    pub fn party(&self, role: Role) -> &Party {
        match role {
            Role::Caller => &self.caller,
            Role::Callee => &self.callee,
        }
    }

    fn party_mut(&mut self, role: Role) -> &mut Party {
        match role {
            Role::Caller => &mut self.caller,
            Role::Callee => &mut self.callee,
        }
    }

    /// The status a record shows for this state.
    pub fn status(&self) -> CallStatus {
        match (&self.phase, &self.ending) {
            (Phase::Ringing, _) => CallStatus::Ringing,
            (Phase::Active, _) => CallStatus::Active,
            (Phase::Ended, Some(e)) => e.status,
            (Phase::Ended, None) => CallStatus::Failed,
        }
    }

    pub fn duration_ms(&self) -> Option<i64> {
        match (self.answered_at, self.ended_at) {
            (Some(a), Some(e)) => Some((e - a).max(0)),
            _ => None,
        }
    }

    /// `activeCall` of 10001 and the data of 10020, for `role`.
    pub fn resume_info(&self, role: Role) -> Value {
        let (state, since) = match self.phase {
            Phase::Active => ("active", self.answered_at.unwrap_or(self.created_at)),
            _ => ("ringing", self.created_at),
        };
        json!({
            "callId": self.id,
            "peer": self.party(role.other()).user,
            "role": role.name(),
            "state": state,
            "since": rfc3339(since),
            "media": { "audio": self.media.audio, "video": self.media.video },
            "peerConnected": self.party(role.other()).conn.is_some(),
        })
    }
}

/// Applies one event. Events that do not apply to the call's phase are refused with the reply
/// and change nothing.
pub fn step(state: CallState, event: Event, now: i64, timing: Timing) -> Transition {
    let mut m = Machine { s: state, fx: Vec::new(), now, timing };
    let reply = m.apply(event);
    Transition { state: m.s, reply, effects: m.fx }
}

struct Machine {
    s: CallState,
    fx: Vec<Effect>,
    now: i64,
    timing: Timing,
}

impl Machine {
    fn ack(&self) -> Reply {
        Ok(json!({ "callId": self.s.id }))
    }

    fn frame(&self, code: Code, message: &str, data: impl Into<FrameData>) -> ServerFrame {
        ServerFrame::event(code, message, data)
    }

    /// 10012, as every ringing device of the callee gets it.
    fn incoming_frame(&self) -> ServerFrame {
        let caller = &self.s.caller.user;
        self.frame(
            Code::IncomingCall,
            &format!("{} is calling", caller.display_name),
            json!({
                "callId": self.s.id,
                "fromId": caller.id,
                "from": caller,
                "media": { "audio": self.s.media.audio, "video": self.s.media.video },
            }),
        )
    }

    fn send_to_party(&mut self, role: Role, frame: ServerFrame) {
        if let Some(conn) = self.s.party(role).conn.clone() {
            self.fx.push(Effect::ToConn(conn, frame));
        }
    }

    fn arm(&mut self, timer: Timer, ms: u64) {
        if self.s.timers.insert(timer) {
            self.fx.push(Effect::Arm(timer, ms));
        }
    }

    fn cancel(&mut self, timer: Timer) {
        if self.s.timers.remove(&timer) {
            self.fx.push(Effect::Cancel(timer));
        }
    }

    /// Refuses events for a user who is not a party, and for an ended call.
    fn party_of(&self, user: i64) -> Result<Role, WsError> {
        let role = self.s.role_of(user).ok_or(WsError::NotAParty)?;
        if self.s.phase == Phase::Ended {
            return Err(WsError::BadState);
        }
        Ok(role)
    }

    fn apply(&mut self, event: Event) -> Reply {
        match event {
            Event::Start => self.start(),
            Event::Restored => self.restored(),
            Event::Revived => self.revived(),
            Event::Abort => {
                if self.s.phase == Phase::Ended {
                    return Err(WsError::BadState);
                }
                let ringing = self.s.phase == Phase::Ringing;
                self.end(CallStatus::Failed, EndReason::ServerError, None);
                self.ended_to(Role::Caller, None);
                self.ended_to(Role::Callee, None);
                if ringing {
                    let frame = self.ended_frame();
                    self.fx.push(Effect::ToUser { user: self.s.callee.user.id, except: None, frame });
                }
                self.ack()
            }
            Event::Accept { user, conn } => self.accept(user, conn),
            Event::Reject { user, conn } => {
                let role = self.party_of(user)?;
                if role != Role::Callee || self.s.phase != Phase::Ringing {
                    return Err(WsError::BadState);
                }
                self.decline(conn)
            }
            Event::Cancel { user, conn } => {
                let role = self.party_of(user)?;
                if role != Role::Caller || self.s.phase != Phase::Ringing {
                    return Err(WsError::BadState);
                }
                self.cancel_call(conn, EndReason::Cancelled)
            }
            Event::Hangup { user, conn } => {
                let role = self.party_of(user)?;
                match (self.s.phase, role) {
                    (Phase::Ringing, Role::Caller) => self.cancel_call(conn, EndReason::Cancelled),
                    (Phase::Ringing, Role::Callee) => self.decline(conn),
                    _ => self.hang_up(role, Some(conn), EndReason::Hangup),
                }
            }
            Event::Glare { user, to, conn } => {
                if user != self.s.callee.user.id || to != self.s.caller.user.id {
                    return Err(WsError::AlreadyInCall);
                }
                self.glare(conn)
            }
            Event::Signal { kind, user, conn, to, implicit, data } => self.signal(kind, user, conn, to, implicit, data),
            Event::Report { user, stats } => {
                let role = self.party_of(user)?;
                self.s.party_mut(role).report = Some(stats);
                self.fx.push(Effect::Persist);
                self.ack()
            }
            Event::ConnectionLost { conn, logout } => self.connection_lost(conn, logout),
            Event::Resume { user, conn } => self.resume(user, conn),
            Event::TimerFired(timer) => self.timer_fired(timer),
        }
    }

    fn start(&mut self) -> Reply {
        if self.s.phase != Phase::Ringing || self.s.timers.contains(&Timer::Ring) {
            return Err(WsError::BadState);
        }
        let incoming = self.incoming_frame();
        self.fx.push(Effect::Persist);
        self.fx.push(Effect::ToUser { user: self.s.callee.user.id, except: None, frame: incoming });
        let ringing = self.frame(Code::Ringing, "ringing", json!({ "callId": self.s.id, "toId": self.s.callee.user.id }));
        self.send_to_party(Role::Caller, ringing);
        self.arm(Timer::Ring, self.timing.ring_timeout_ms);
        self.ack()
    }

    fn restored(&mut self) -> Reply {
        if self.s.phase == Phase::Ended {
            return Err(WsError::BadState);
        }
        // Every connection died with the old process: each bound side is away now.
        let sides: &[Role] = if self.s.phase == Phase::Active { &[Role::Caller, Role::Callee] } else { &[Role::Caller] };
        for role in sides {
            let p = self.s.party_mut(*role);
            p.conn = None;
            p.lost_since = Some(self.now);
            self.arm(Timer::Grace(*role), self.timing.reconnect_grace_ms);
        }
        if self.s.phase == Phase::Ringing {
            let rung = u64::try_from(self.now - self.s.created_at).unwrap_or(0);
            self.arm(Timer::Ring, self.timing.ring_timeout_ms.saturating_sub(rung));
        } else {
            for user in [self.s.caller.user.id, self.s.callee.user.id] {
                self.fx.push(Effect::InCall { user, in_call: true });
            }
        }
        self.ack()
    }

    fn revived(&mut self) -> Reply {
        if self.s.phase == Phase::Ended {
            return Err(WsError::BadState);
        }
        let left = |since: i64, total: u64| total.saturating_sub(u64::try_from(self.now - since).unwrap_or(0));
        for timer in std::mem::take(&mut self.s.timers) {
            let ms = match timer {
                Timer::Ring => left(self.s.created_at, self.timing.ring_timeout_ms),
                Timer::Grace(role) => left(self.s.party(role).lost_since.unwrap_or(self.now), self.timing.reconnect_grace_ms),
            };
            self.s.timers.insert(timer);
            self.fx.push(Effect::Arm(timer, ms));
        }
        self.ack()
    }

    fn go_active(&mut self, callee_conn: ConnId) {
        self.s.phase = Phase::Active;
        self.s.answered_at = Some(self.now);
        self.s.callee.conn = Some(callee_conn.clone());
        self.cancel(Timer::Ring);
        let accepted = self.frame(Code::CallAccepted, "call accepted", json!({ "callId": self.s.id, "by": self.s.callee.user.id }));
        self.send_to_party(Role::Caller, accepted);
        let elsewhere = self.frame(Code::AnsweredElsewhere, "answered on another device", json!({ "callId": self.s.id }));
        self.fx.push(Effect::ToUser { user: self.s.callee.user.id, except: Some(callee_conn), frame: elsewhere });
        for user in [self.s.caller.user.id, self.s.callee.user.id] {
            self.fx.push(Effect::InCall { user, in_call: true });
        }
        self.fx.push(Effect::Persist);
    }

    fn accept(&mut self, user: i64, conn: ConnId) -> Reply {
        let role = self.party_of(user)?;
        if role != Role::Callee || self.s.phase != Phase::Ringing {
            return Err(WsError::BadState);
        }
        self.go_active(conn);
        self.ack()
    }

    fn glare(&mut self, conn: ConnId) -> Reply {
        if self.s.phase != Phase::Ringing {
            return Err(WsError::AlreadyInCall);
        }
        self.go_active(conn);
        Ok(json!({ "callId": self.s.id, "merged": true }))
    }

    /// The call is over: record it once, tell everyone still involved, disarm everything.
    fn end(&mut self, status: CallStatus, reason: EndReason, by: Option<i64>) {
        let was_active = self.s.phase == Phase::Active;
        self.s.phase = Phase::Ended;
        self.s.ended_at = Some(self.now);
        self.s.ending = Some(Ending { status, reason, by });
        for timer in self.s.timers.clone() {
            self.cancel(timer);
        }
        if was_active {
            for user in [self.s.caller.user.id, self.s.callee.user.id] {
                self.fx.push(Effect::InCall { user, in_call: false });
            }
        }
        self.fx.push(Effect::Persist);
        self.fx.push(Effect::Finished);
    }

    fn ended_frame(&self) -> ServerFrame {
        let (reason, by) = self.s.ending.as_ref().map_or(("server_error", None), |e| (e.reason.as_str(), e.by));
        self.frame(
            Code::CallEnded,
            &format!("call ended: {reason}"),
            json!({ "callId": self.s.id, "reason": reason, "by": by, "durationMs": self.s.duration_ms().unwrap_or(0) }),
        )
    }

    /// 10016 to a party's bound connection unless it is the one that asked.
    fn ended_to(&mut self, role: Role, except: Option<&ConnId>) {
        let frame = self.ended_frame();
        if let Some(conn) = self.s.party(role).conn.clone() {
            if Some(&conn) != except {
                self.fx.push(Effect::ToConn(conn, frame));
            }
        }
    }

    /// The callee declines while ringing (rule 4).
    fn decline(&mut self, conn: ConnId) -> Reply {
        let by = self.s.callee.user.id;
        self.end(CallStatus::Rejected, EndReason::Rejected, Some(by));
        let rejected = self.frame(Code::CallRejected, "call rejected", json!({ "callId": self.s.id, "by": by }));
        self.send_to_party(Role::Caller, rejected);
        let frame = self.ended_frame();
        self.fx.push(Effect::ToUser { user: by, except: Some(conn), frame });
        self.ack()
    }

    /// The caller gives up while ringing (rule 5), or logs out.
    fn cancel_call(&mut self, conn: ConnId, reason: EndReason) -> Reply {
        let by = self.s.caller.user.id;
        self.end(CallStatus::Cancelled, reason, Some(by));
        let frame = self.ended_frame();
        self.fx.push(Effect::ToUser { user: self.s.callee.user.id, except: None, frame });
        self.ended_to(Role::Caller, Some(&conn));
        self.ack()
    }

    /// Either party ends an active call (rule 7), or logs out of it (rule 9).
    fn hang_up(&mut self, role: Role, conn: Option<ConnId>, reason: EndReason) -> Reply {
        let by = self.s.party(role).user.id;
        self.end(CallStatus::Completed, reason, Some(by));
        self.ended_to(role.other(), None);
        self.ended_to(role, conn.as_ref());
        self.ack()
    }

    fn signal(&mut self, kind: Signal, user: i64, conn: ConnId, to: Option<i64>, implicit: bool, data: Option<RawData>) -> Reply {
        let role = self.s.role_of(user).ok_or(WsError::NotAParty)?;
        let peer = role.other();
        if to.is_some_and(|t| t != self.s.party(peer).user.id) {
            // Without a callId the call was found by the pair, so another toId means no call
            // between these two; with one, the toId names someone outside the call.
            return Err(if implicit { WsError::BadState } else { WsError::NotAParty });
        }
        if self.s.phase != Phase::Active || self.s.party(role).conn.as_ref() != Some(&conn) {
            return Err(WsError::BadState);
        }
        let Some(peer_conn) = self.s.party(peer).conn.clone() else {
            return Err(WsError::BadState);
        };
        let name = match kind {
            Signal::Offer => "offer",
            Signal::Answer => "answer",
            Signal::Candidate => "candidate",
        };
        // The sender's data goes on as the sender wrote it.
        let frame = self.frame(kind.code(), name, FrameData::Relay { from_id: user, call_id: self.s.id.clone(), data });
        self.fx.push(Effect::ToConn(peer_conn, frame));
        self.ack()
    }

    fn connection_lost(&mut self, conn: ConnId, logout: bool) -> Reply {
        if self.s.phase == Phase::Ended {
            return Err(WsError::BadState);
        }
        let role = if self.s.caller.conn.as_ref() == Some(&conn) {
            Role::Caller
        } else if self.s.callee.conn.as_ref() == Some(&conn) {
            Role::Callee
        } else {
            // Not a bound connection (a callee's ringing tab, say): nothing changes.
            return self.ack();
        };
        if logout {
            self.s.party_mut(role).conn = None;
            return match self.s.phase {
                Phase::Active => self.hang_up(role, None, EndReason::Logout),
                _ => self.cancel_call(conn, EndReason::Logout),
            };
        }
        let p = self.s.party_mut(role);
        p.conn = None;
        p.lost_since = Some(self.now);
        let user = p.user.id;
        self.arm(Timer::Grace(role), self.timing.reconnect_grace_ms);
        let link = self.frame(Code::PeerLink, "peer reconnecting", json!({ "callId": self.s.id, "peerId": user, "state": "reconnecting" }));
        self.send_to_party(role.other(), link);
        self.fx.push(Effect::Persist);
        self.ack()
    }

    fn resume(&mut self, user: i64, conn: ConnId) -> Reply {
        let role = self.party_of(user)?;
        let p = self.s.party(role);
        if p.conn.is_none() && p.lost_since.is_some() {
            let p = self.s.party_mut(role);
            p.conn = Some(conn.clone());
            p.lost_since = None;
            self.cancel(Timer::Grace(role));
            let info = self.s.resume_info(role);
            self.fx.push(Effect::ToConn(conn, self.frame(Code::CallResumed, "call resumed", info.clone())));
            let link = self.frame(Code::PeerLink, "peer connected", json!({ "callId": self.s.id, "peerId": user, "state": "connected" }));
            self.send_to_party(role.other(), link);
            self.fx.push(Effect::Persist);
            return Ok(info);
        }
        if role == Role::Callee && self.s.phase == Phase::Ringing {
            // A device the callee opens while the call rings rings too.
            let incoming = self.incoming_frame();
            self.fx.push(Effect::ToConn(conn, incoming));
        }
        Ok(Value::Null)
    }

    fn timer_fired(&mut self, timer: Timer) -> Reply {
        if !self.s.timers.remove(&timer) {
            // Cancelled before it fired: a stale wake-up.
            return Err(WsError::BadState);
        }
        match timer {
            Timer::Ring if self.s.phase == Phase::Ringing => {
                self.end(CallStatus::Missed, EndReason::Timeout, None);
                let frame = self.ended_frame();
                self.send_to_party(Role::Caller, frame.clone());
                self.fx.push(Effect::ToUser { user: self.s.callee.user.id, except: None, frame });
            }
            Timer::Grace(role) if self.s.party(role).conn.is_none() && self.s.phase != Phase::Ended => {
                let lost = self.s.party(role).user.id;
                let ringing = self.s.phase == Phase::Ringing;
                self.end(CallStatus::Failed, EndReason::PeerLost, Some(lost));
                self.ended_to(role.other(), None);
                if ringing {
                    let frame = self.ended_frame();
                    self.fx.push(Effect::ToUser { user: self.s.callee.user.id, except: None, frame });
                }
            }
            _ => {}
        }
        self.ack()
    }
}

pub mod invariants;
#[cfg(test)]
mod tests;
