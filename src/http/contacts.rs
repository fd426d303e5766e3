//! `PUT` and `DELETE /api/contacts/{userId}`: the contacts a user adds by hand (PROTOCOL.md
//! section 2.1). The directory in memory changes at once, the store with it, and every open tab
//! of the caller gets a fresh 10000 so its list follows.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use super::AppState;
use super::auth::Session;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Path;
use crate::presence::{self, RegistryMsg};
use crate::protocol::{Code, ServerFrame};

/// The id in the path, or 404 `unknown_user` for anything that is not an active account.
fn contact_id(state: &AppState, raw: &str) -> ApiResult<i64> {
    let id = super::paging::whole_number(raw).filter(|id| *id > 0).ok_or(ApiError::UnknownUser)?;
    state.presence.directory.active(id).map(|_| id).ok_or(ApiError::UnknownUser)
}

/// Adds a user to the caller's contacts.
#[utoipa::path(put, path = "/api/contacts/{id}", operation_id = "addContact", tag = "contacts",
    params(("id" = i64, Path, description = "The user to add", minimum = 1)),
    security(("session" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Added (or there already)"),
        (status = 400, description = "`invalid_input`: yourself", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "`forbidden`: a cookie-authenticated request from another origin", body = ErrorBody),
        (status = 404, description = "`unknown_user`: no active account with that id", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
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

/// Removes an added contact; someone called or chatted with stays a contact.
#[utoipa::path(delete, path = "/api/contacts/{id}", operation_id = "removeContact", tag = "contacts",
    params(("id" = i64, Path, description = "The user to remove", minimum = 1)),
    security(("session" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Removed (or not there)"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "`forbidden`: a cookie-authenticated request from another origin", body = ErrorBody),
        (status = 404, description = "`unknown_user`: no active account with that id", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
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
