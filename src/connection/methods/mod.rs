//! The methods of PROTOCOL.md section 3.2, one small module per group, run by the connection
//! actor on frames the reader already decoded into a typed [`ClientMethod`] (signaling mostly
//! never reaches here: the reader routes it straight to the call, see `signal.rs`).

mod calls;
mod chat;
pub mod signal;
mod users;

use serde_json::Value;

use super::actor::ConnState;
use crate::protocol::WsError;
use crate::protocol::methods::ClientMethod;

/// A method handled without error, and what to acknowledge with (`None`: nothing now, the answer
/// comes from elsewhere, or there is none).
pub type Handled = Result<Option<Value>, WsError>;

/// Runs one method. `Ok(Some(v))` is acknowledged with `v` when the frame carried a `seq`.
pub async fn run(state: &mut ConnState, method: ClientMethod, seq: Option<i64>) -> Handled {
    match method {
        ClientMethod::Connect => users::connect(),
        ClientMethod::Ping => users::ping(),
        ClientMethod::List => users::list(state).await,
        ClientMethod::Send { to, text } => chat::send(state, to, text).await,
        ClientMethod::Read { from } => chat::read(state, from).await,
        ClientMethod::Invite { to, media } => calls::invite(state, to, media, seq),
        ClientMethod::Call { request, call_id } => calls::request(state, request, &call_id, seq).await,
        ClientMethod::Report { call_id, stats } => calls::report(state, &call_id, stats, seq).await,
        ClientMethod::Signal { kind, to, call_id, data } => signal::retry(state, signal::Signaling { kind, to, call_id, data, seq }).await,
    }
}

/// The answer for a call with no live session: it has ended (or never was). `bad_state` to its
/// parties, `not_a_party` to others, else `unknown_call`.
pub async fn no_session(state: &ConnState, id: &str) -> Handled {
    match state.store.call_by_id(id).await.map_err(internal)? {
        Some(row) if row.caller_id == state.user.id || row.callee_id == state.user.id => Err(WsError::BadState),
        Some(_) => Err(WsError::NotAParty),
        None => Err(WsError::UnknownCall),
    }
}

/// A store failure as the client hears it: `unavailable` while the database is down (nothing was
/// stored, so nothing is acknowledged), else `internal`.
fn internal(e: crate::store::StoreError) -> WsError {
    match e {
        crate::store::StoreError::Unavailable(detail) => {
            tracing::warn!(error = %detail, "database unavailable on a connection");
            WsError::Unavailable
        }
        other => {
            tracing::error!(error = %other, "store error on a connection");
            WsError::Internal
        }
    }
}
