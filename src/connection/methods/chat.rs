//! `Message/Send` and `Message/Read`: chat is stored first, then delivered (PROTOCOL.md
//! section 3.2).

use serde_json::json;

use super::super::actor::ConnState;
use super::{Handled, internal};
use crate::presence::{self, RegistryMsg};
use crate::protocol::{ChatMessage, Code, ServerFrame, WsError, rfc3339};
use crate::store::messages::LOBBY;
use crate::store::now_ms;

/// `Message/Send` to `to` (0 is the lobby): 10005 to the recipient's connections (the lobby:
/// everyone online) and the sender's other connections; acks `{id, sentAt}`.
pub async fn send(state: &mut ConnState, to: i64, text: String) -> Handled {
    if to != LOBBY && state.presence.directory.active(to).is_none() {
        return Err(WsError::UnknownUser);
    }
    // Refused before it is stored: an ack would promise a delivery that cannot happen.
    if to != LOBBY && !(state.presence.reachable(to) && state.presence.reachable(state.user.id)) {
        return Err(WsError::NodeUnreachable);
    }
    if state.limits.chat.hit(state.user.id).is_err() {
        return Err(WsError::ChatRateLimited);
    }
    if !state.limits.chat_daily.take(&state.store, state.user.id, now_ms()).await.map_err(internal)? {
        return Err(WsError::ChatDailyCap);
    }
    let row = state.store.insert_message(state.user.id, to, &text, now_ms()).await.map_err(internal)?;
    if to != LOBBY && to != state.user.id {
        // Chatting one to one makes the two contacts (PROTOCOL.md section 2.1).
        presence::meet(&state.presence, &state.store, state.user.id, to);
    }
    let chat = ChatMessage { id: row.id, from_id: row.from_id, to_id: row.to_id, message: row.body, sent_at: rfc3339(row.sent_at) };
    let mut data = json!(chat);
    data["username"] = json!(state.user.username);
    let out = ServerFrame::event(Code::Text, chat.message.clone(), data).to_text();
    let except = Some(state.conn_id.clone());
    if to == LOBBY {
        presence::tell(RegistryMsg::SendToAll { text: out, except });
    } else {
        if to != state.user.id {
            presence::tell(RegistryMsg::SendToUser { user_id: to, text: out.clone(), except: None });
        }
        presence::tell(RegistryMsg::SendToUser { user_id: state.user.id, text: out, except });
    }
    Ok(Some(json!({ "id": chat.id, "sentAt": chat.sent_at })))
}

/// `Message/Read`: marks messages from `from` read; acks `{read}`.
pub async fn read(state: &mut ConnState, from: i64) -> Handled {
    if from == LOBBY || state.presence.directory.active(from).is_none() {
        return Err(WsError::UnknownUser);
    }
    let n = state.store.mark_read(state.user.id, from, now_ms()).await.map_err(internal)?;
    Ok(Some(json!({ "read": n })))
}
