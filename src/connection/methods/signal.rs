//! The signaling fast path: `Message/Offer`, `Message/Answer`, `Message/Candidate`. The reader task
//! routes them straight to the call's session, which checks them against the call's state and
//! forwards them to the peer's writer, answering the sender itself (an ack for a `seq`, a 10003
//! always). Nothing on this path waits for another actor, and the sender's connection actor sees
//! the frame only when there is no live session to say why it is refused.

use super::super::actor::ConnState;
use super::{Handled, no_session};
use crate::call::{self, CallMsg, CallSupMsg, Event, ReplyTo};
use crate::protocol::conn::ConnId;
use crate::protocol::methods::Signal;
use crate::protocol::{RawData, WsError};

/// A signaling frame, as `ClientMethod::Signal` carries it.
pub struct Signaling {
    pub kind: Signal,
    pub to: Option<i64>,
    pub call_id: Option<String>,
    pub data: Option<RawData>,
    pub seq: Option<i64>,
}

/// What became of a signaling frame.
pub enum Routed {
    /// With the session (or the call supervisor); it answers the client.
    Sent,
    /// No live session for this call id: whoever answers must look the call up.
    NoSession(String),
    Refused(WsError),
}

fn method(kind: Signal) -> &'static str {
    match kind {
        Signal::Offer => "Message/Offer",
        Signal::Answer => "Message/Answer",
        Signal::Candidate => "Message/Candidate",
    }
}

/// Routes one signaling frame: with a `callId`, to that call; without, to the call the sender is
/// in (the original protocol had no call ids), through the call supervisor, which knows it.
pub fn route(conn_id: &ConnId, user_id: i64, s: &Signaling) -> Routed {
    let reply = ReplyTo::Conn { conn: conn_id.clone(), method: method(s.kind), seq: s.seq };
    let event = |implicit| Event::Signal { kind: s.kind, user: user_id, conn: conn_id.clone(), to: s.to, implicit, data: s.data.clone() };
    match &s.call_id {
        Some(id) => match call::session(id) {
            Some(session) => match session.cast(CallMsg::Event { event: event(false), reply }) {
                Ok(()) => Routed::Sent,
                // The session ended between the lookup and the cast.
                Err(_) => Routed::NoSession(id.clone()),
            },
            // Another node's call: forwarded to its owner, which answers the client.
            None => match call::remote::forward(id, event(false), reply) {
                Ok(()) => Routed::Sent,
                Err(_) => Routed::NoSession(id.clone()),
            },
        },
        None => {
            let Some(sup) = call::supervisor() else { return Routed::Refused(WsError::Internal) };
            match sup.cast(CallSupMsg::Signal { user_id, event: event(true), reply }) {
                Ok(()) => Routed::Sent,
                Err(_) => Routed::Refused(WsError::Internal),
            }
        }
    }
}

/// Signaling the reader found no live session for: routed once more (the session may have been
/// restarted meanwhile), else answered from the call's record.
pub async fn retry(state: &mut ConnState, s: Signaling) -> Handled {
    match route(&state.conn_id, state.user.id, &s) {
        Routed::Sent => Ok(None),
        Routed::Refused(e) => Err(e),
        Routed::NoSession(id) => no_session(state, &id).await,
    }
}
