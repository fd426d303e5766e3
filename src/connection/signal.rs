//! The signaling fast path: `Message/Offer`, `Message/Answer`, `Message/Candidate`. The reader task
//! routes them straight to the call's session, which checks them against the call's state and
//! forwards them to the peer's writer, answering the sender itself (an ack for a `seq`, a 10003
//! always). Nothing on this path waits for another actor, and the sender's connection actor does
//! not see the frame at all.

use serde_json::Value;

use crate::call::machine::Signal;
use crate::call::{self, CallMsg, CallSupMsg, Event, ReplyTo};
use crate::protocol::conn::ConnId;
use crate::protocol::{ClientFrame, WsError};

/// The signaling kind of a method, if it is one.
pub fn kind(method: &str) -> Option<Signal> {
    match method {
        "Message/Offer" => Some(Signal::Offer),
        "Message/Answer" => Some(Signal::Answer),
        "Message/Candidate" => Some(Signal::Candidate),
        _ => None,
    }
}

/// What became of a signaling frame.
pub enum Routed {
    /// With the session (or the call supervisor); it answers the client.
    Sent,
    /// No live session for this call id: whoever answers must look the call up.
    NoSession(String),
    Refused(WsError),
}

/// Routes one signaling frame: with a `callId`, to that call; without, to the call the sender is
/// in (the original protocol had no call ids), through the call supervisor, which knows it.
pub fn route(conn_id: &ConnId, user_id: i64, frame: &ClientFrame, kind: Signal) -> Routed {
    let to = match &frame.to_id {
        Some(_) => match frame.to_id() {
            Ok(t) => Some(t),
            Err(e) => return Routed::Refused(e),
        },
        None => None,
    };
    let explicit = match frame.data_call_id() {
        None => None,
        Some(Value::String(id)) if !id.is_empty() => Some(id),
        Some(_) => return Routed::Refused(WsError::MissingField),
    };
    let method: &'static str = match kind {
        Signal::Offer => "Message/Offer",
        Signal::Answer => "Message/Answer",
        Signal::Candidate => "Message/Candidate",
    };
    let reply = ReplyTo::Conn { conn: conn_id.clone(), method, seq: frame.seq };
    let event = |implicit| Event::Signal { kind, user: user_id, conn: conn_id.clone(), to, implicit, data: frame.raw_data.clone() };
    match explicit {
        Some(id) => match call::session(&id) {
            Some(session) => match session.cast(CallMsg::Event { event: event(false), reply }) {
                Ok(()) => Routed::Sent,
                // The session ended between the lookup and the cast.
                Err(_) => Routed::NoSession(id),
            },
            None => Routed::NoSession(id),
        },
        None => {
            if to.is_none() {
                return Routed::Refused(WsError::MissingField);
            }
            let Some(sup) = call::supervisor() else { return Routed::Refused(WsError::Internal) };
            match sup.cast(CallSupMsg::Signal { user_id, event: event(true), reply }) {
                Ok(()) => Routed::Sent,
                Err(_) => Routed::Refused(WsError::Internal),
            }
        }
    }
}
