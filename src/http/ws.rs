//! `GET /ws`: authenticates (cookie, then bearer, then `?token=`: the first valid one), checks the browser's Origin and the
//! per-user connection limit, then upgrades and hands the socket to a new connection actor.

use std::collections::HashMap;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::State;
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ractor::Actor;
use serde_json::json;

use super::AppState;
use super::auth::{authenticate_any, tokens_from_headers};
use super::error::{ApiError, ErrorBody};
use super::extract::Query;
use crate::connection::{self, ConnArgs, ConnId, Connection, reader};
use crate::store::AccountRow;
use crate::supervision::{self, Kind};

/// Opens the WebSocket of PROTOCOL.md section 3 (an HTTP/1.1 upgrade).
#[utoipa::path(get, path = "/ws", operation_id = "openWebSocket", tag = "signaling",
    params(("token" = Option<String>, Query, description = "The session token, for clients that can set neither a cookie nor a header")),
    security(("session" = []), ("cookie" = [])),
    responses(
        (status = 101, description = "Switching protocols: the WebSocket is open and its first frames are 10001 and 10000"),
        (status = 400, description = "`not_websocket`: not an upgrade request", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "`forbidden`: a browser on a foreign origin", body = ErrorBody),
        (status = 405, description = "`not_websocket`: not a GET", body = ErrorBody),
        (status = 426, description = "`not_websocket`: the connection cannot be upgraded (HTTP/2)", body = ErrorBody),
        (status = 429, description = "`too_many_connections`: at the cap per user or per address", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn upgrade(
    State(state): State<AppState>,
    client: super::client::ClientAddr,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let mut tokens = tokens_from_headers(&headers);
    tokens.extend(query.get("token").cloned());
    let session = match authenticate_any(&state, &tokens).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    if let Some(origin) = headers.get(ORIGIN) {
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        if !super::security::origin_allowed(&state, origin.to_str().unwrap_or(""), host) {
            tracing::info!(user.id = session.user.id, origin = ?origin, "WebSocket from a foreign origin refused");
            return ApiError::Forbidden("this origin may not open a WebSocket here".into()).into_response();
        }
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            let body = json!({ "error": "not_websocket", "message": rejection.body_text() });
            return (rejection.status(), axum::Json(body)).into_response();
        }
    };

    // Admission is a map lookup under a lock, not a question to an actor: a connect storm can
    // neither queue behind it nor time out on it.
    let Some(slot) = state.admission.take(session.user.id) else {
        let max = state.admission.max_per_user();
        let body = json!({ "error": "too_many_connections", "message": format!("at most {max} open connections per user") });
        return (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    };
    // The machine itself is exempt (load generators, a local proxy not declared trusted).
    let address_slot = if client.is_local() {
        None
    } else {
        let Some(slot) = state.address_admission.take(client.0) else {
            let max = state.address_admission.max_per_user();
            tracing::info!(%client, user.id = session.user.id, "WebSocket refused: too many from this address");
            let body = json!({ "error": "too_many_connections", "message": format!("at most {max} open connections from one address") });
            return (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        };
        Some(slot)
    };
    // The row was just read to authenticate: the directory learns of a rename or of an account
    // another process made.
    let u = &session.user;
    state.presence.directory.know(u.id, &state.store).await;
    state.presence.directory.upsert(AccountRow { id: u.id, username: u.username.clone(), display_name: u.display_name.clone(), disabled: u.disabled });

    let conn_id: ConnId = connection::new_id(session.user.id);
    // The supervisor is looked up at each upgrade: a restarted one has a new reference.
    if ractor::registry::where_is(connection::SUPERVISOR).is_none() {
        return super::error::ApiError::Unavailable.into_response();
    }
    let args_state = state.clone();
    ws.max_message_size(reader::MAX_READ_BYTES)
        .max_frame_size(reader::MAX_READ_BYTES)
        // Signaling frames are small: buffers sized for them, not tungstenite's 128 KiB read
        // buffer per socket (which it also zeroes on every read).
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(reader::MAX_READ_BYTES)
        .on_upgrade(move |socket| async move {
            let args = ConnArgs {
                conn_id: conn_id.clone(),
                session_id: session.id,
                user: session.user,
                socket,
                store: args_state.store.clone(),
                presence: args_state.presence.clone(),
                settings: args_state.settings.clone(),
                ice: args_state.ice.clone(),
                limits: args_state.limits.clone(),
                slot,
                address_slot,
            };
            let name = connection::actor_name(&conn_id);
            let Some(supervisor) = ractor::registry::where_is(connection::SUPERVISOR) else {
                tracing::warn!(conn = %conn_id, "no connection supervisor (restarting); the client will reconnect");
                return;
            };
            match Actor::spawn_linked(Some(name.clone()), Connection, args, supervisor).await {
                Ok(_) => supervision::started(&name, Kind::Connection, Some(connection::SUPERVISOR)),
                Err(e) => tracing::error!(conn = %conn_id, error = %e, "could not start a connection actor"),
            }
        })
}

/// Initial read buffer of one WebSocket: a candidate or two. It grows for a larger frame (an
/// SDP offer) when one comes; an idle connection keeps only this (a heap profile of idle
/// connections found the read buffer one of the largest things each holds).
const READ_BUFFER: usize = 1024;

