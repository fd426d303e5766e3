//! `PUT` and `DELETE /api/contacts/{userId}`: the contacts a user adds by hand (PROTOCOL.md
//! section 2.1). The directory in memory changes at once, the store with it, and every open tab
//! of the caller gets a fresh 10000 so its list follows.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::json;

use super::AppState;
use super::auth::Session;
use super::error::{ApiError, ApiResult};
use crate::presence::{self, RegistryMsg};
use crate::protocol::{Code, ServerFrame};

/// The id in the path, or 404 `unknown_user` for anything that is not an active account.
fn contact_id(state: &AppState, raw: &str) -> ApiResult<i64> {
    let id = raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or(ApiError::UnknownUser)?;
    state.presence.directory.active(id).map(|_| id).ok_or(ApiError::UnknownUser)
}

/// `PUT /api/contacts/{userId}`: 204.
pub async fn add(State(state): State<AppState>, session: Session, Path(raw): Path<String>) -> ApiResult<StatusCode> {
    let me = session.user.id;
    let id = contact_id(&state, &raw)?;
    if id == me {
        return Err(ApiError::invalid("invalid_input", "you are always on your own list"));
    }
    let new = !state.presence.directory.has(me, id);
    state.store.add_contact(me, id).await?;
    state.presence.directory.add(me, id);
    if new && !state.presence.directory.is_full() {
        presence::tell(RegistryMsg::Introduce { watcher: me, user: id });
    }
    resend_list(&state, me);
    tracing::info!(user.id = me, contact = id, "contact added");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/contacts/{userId}`: 204; someone called or chatted with stays a contact.
pub async fn remove(State(state): State<AppState>, session: Session, Path(raw): Path<String>) -> ApiResult<StatusCode> {
    let me = session.user.id;
    let id = contact_id(&state, &raw)?;
    state.store.remove_contact(me, id).await?;
    state.presence.directory.remove(me, id);
    resend_list(&state, me);
    tracing::info!(user.id = me, contact = id, "contact removed");
    Ok(StatusCode::NO_CONTENT)
}

/// A fresh 10000 to every open connection of `user`.
fn resend_list(state: &AppState, user: i64) {
    let list = json!(state.presence.contact_list(user));
    let text = ServerFrame::event(Code::UserList, "users", list).to_text();
    presence::tell(RegistryMsg::SendToUser { user_id: user, text, except: None });
}
