//! `User/Connect`, `User/Ping`, `User/List`.

use serde_json::json;

use super::super::actor::ConnState;
use super::Handled;
use crate::protocol::{Code, ServerFrame, WsError, rfc3339};
use crate::store::now_ms;

/// A no-op kept for old clients.
pub fn connect() -> Handled {
    Ok(Some(json!({})))
}

/// The application heartbeat: acks `{serverTime}`.
pub fn ping() -> Handled {
    Ok(Some(json!({ "serverTime": rfc3339(now_ms()) })))
}

/// Answers 10000, the contact list, then the ack.
pub async fn list(state: &mut ConnState) -> Handled {
    let list = json!(state.presence.contact_list(state.user.id));
    state.write(&ServerFrame::event(Code::UserList, "users", list)).await.map_err(|_| WsError::Internal)?;
    Ok(Some(json!({})))
}
