//! `Call/Invite`, `Call/Accept|Reject|Cancel|Hangup` and `Call/Report`. Each is cast to the call
//! supervisor or the call's session, which answers the client itself ahead of the frames the
//! request causes; the connection never waits for a call.

use serde_json::{Value, json};

use super::super::actor::ConnState;
use super::{Handled, internal, no_session};
use crate::call::{self, CallMsg, CallSupMsg, Event, ReplyTo};
use crate::presence;
use crate::protocol::methods::{CallRequest, Media};
use crate::protocol::{Status, User, WsError};
use crate::store::messages::LOBBY;

/// `Call/Invite` (rules 1 and 2): checked here as far as the callee's account, then admitted by
/// the call supervisor, which alone knows who is in which call.
pub fn invite(state: &mut ConnState, to: i64, media: Media, seq: Option<i64>) -> Handled {
    if to == state.user.id {
        return Err(WsError::SelfCall);
    }
    let callee = match state.presence.directory.active(to) {
        Some(a) if to != LOBBY => User { id: to, username: a.username, display_name: a.display_name, status: Status::Available },
        _ => return Err(WsError::UnknownUser),
    };
    if state.limits.invites.hit((state.user.id, to)).is_err() {
        return Err(WsError::InviteRateLimited);
    }
    let sup = call::supervisor().ok_or(WsError::Internal)?;
    // Calling someone, answered or not, makes the two contacts (PROTOCOL.md section 2.1).
    presence::meet(&state.presence, &state.store, state.user.id, to);
    let caller = state.wire_user(Status::Available);
    let conn = state.conn_id.clone();
    let reply = ReplyTo::Conn { conn: conn.clone(), method: "Call/Invite", seq };
    sup.cast(CallSupMsg::Invite { caller, conn, callee, media, reply }).map_err(|_| WsError::Internal)?;
    Ok(None)
}

/// `Call/Accept`, `Call/Reject`, `Call/Cancel`, `Call/Hangup`.
pub async fn request(state: &mut ConnState, request: CallRequest, call_id: &str, seq: Option<i64>) -> Handled {
    let (user, conn) = (state.user.id, state.conn_id.clone());
    let (event, method) = match request {
        CallRequest::Accept => (Event::Accept { user, conn }, "Call/Accept"),
        CallRequest::Reject => (Event::Reject { user, conn }, "Call/Reject"),
        CallRequest::Cancel => (Event::Cancel { user, conn }, "Call/Cancel"),
        CallRequest::Hangup => (Event::Hangup { user, conn }, "Call/Hangup"),
    };
    to_session(state, call_id, event, method, seq).await
}

/// `Call/Report`: kept on the live call, or on the record of one that just ended (clients send
/// a last report after hanging up).
pub async fn report(state: &mut ConnState, call_id: &str, stats: Value, seq: Option<i64>) -> Handled {
    if state.limits.reports.hit(state.user.id).is_err() {
        return Err(WsError::ReportRateLimited);
    }
    if call::session(call_id).is_some() || call::remote::owned_elsewhere(call_id) {
        return to_session(state, call_id, Event::Report { user: state.user.id, stats }, "Call/Report", seq).await;
    }
    match state.store.call_by_id(call_id).await.map_err(internal)? {
        Some(row) if row.caller_id == state.user.id || row.callee_id == state.user.id => {
            let caller = row.caller_id == state.user.id;
            state.store.set_call_report(call_id, caller, &stats.to_string()).await.map_err(internal)?;
            Ok(Some(json!({ "callId": call_id })))
        }
        Some(_) => Err(WsError::NotAParty),
        None => Err(WsError::UnknownCall),
    }
}

/// Casts an event to a live call's session, which answers the client itself (an ack for a
/// `seq`, a 10003 always); to its node, if another node owns the call. A call with no session
/// anywhere has ended (or never was): answered here from its record.
async fn to_session(state: &ConnState, id: &str, event: Event, method: &'static str, seq: Option<i64>) -> Handled {
    let reply = ReplyTo::Conn { conn: state.conn_id.clone(), method, seq };
    let (event, reply) = match call::session(id) {
        Some(s) => match s.cast(CallMsg::Event { event, reply }) {
            Ok(()) => return Ok(None),
            Err(ractor::MessagingErr::SendErr(CallMsg::Event { event, reply })) => (event, reply),
            Err(_) => return no_session(state, id).await,
        },
        None => (event, reply),
    };
    match call::remote::forward(id, event, reply) {
        Ok(()) => Ok(None),
        Err(_) => no_session(state, id).await,
    }
}
