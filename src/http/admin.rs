//! The operator API (PROTOCOL.md section 5): the live actor tree, killing an actor as a crash
//! would, and the live calls. It exists only when `DUET_ADMIN_TOKEN` is set, and answers 404 to
//! any request without that bearer token, so it cannot be found by probing.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use crate::call::machine::{CallState, Phase, Role};
use crate::call::{self, CallSupMsg};
use crate::protocol::rfc3339;
use crate::supervision;

/// Whether the request carries the configured admin token, compared in constant time.
fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(expected) = state.settings.admin_token.as_deref() else { return false };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Hashing first makes both sides the same length; the fold never stops early.
    let (a, b) = (Sha256::digest(expected.as_bytes()), Sha256::digest(given.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hidden() -> Response {
    ApiError::NotFound("no such path".into()).into_response()
}

/// `GET /api/admin/actors`.
pub async fn actors(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return hidden();
    }
    axum::Json(supervision::list()).into_response()
}

/// `GET /api/admin/node`: this node, the cluster it sees, its users and calls.
pub async fn node(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return hidden();
    }
    let (online, in_call) = {
        let view = state.presence.view.lock().unwrap_or_else(|p| p.into_inner());
        (view.online.len(), view.in_call.len())
    };
    let local_calls = match call::supervisor() {
        Some(sup) => call::ask(&sup, CallSupMsg::LiveCalls).await.map(|l| l.len()),
        None => None,
    };
    let connections = match crate::presence::registry() {
        Some(r) => call::ask(&r, crate::presence::RegistryMsg::Count).await,
        None => None,
    };
    let cluster = state.presence.cluster.as_ref().map(|c| {
        json!({ "healthy": c.healthy(), "peers": c.peers(), "remoteUsers": c.remote_users().len(), "ownedCalls": c.calls_owned() })
    });
    axum::Json(json!({
        "node": state.presence.cluster.as_ref().map(|c| c.node.clone()),
        "cluster": cluster,
        "connections": connections,
        "onlineUsers": online,
        "usersInCalls": in_call,
        "calls": local_calls,
    }))
    .into_response()
}

/// How `kill` ends an actor.
#[derive(serde::Deserialize, Default)]
pub struct KillMode {
    /// `fail`: the actor stops as a failure would, and that counts toward its supervisor's
    /// restart intensity (a kill does not); for testing escalation.
    mode: Option<String>,
}

/// `POST /api/admin/actors/{name}/kill[?mode=fail]`: 202, 404 for no such actor, 403 for the
/// root. A killed supervisor is restarted by its parent, with its subtree (see `tree.rs`).
pub async fn kill(State(state): State<AppState>, headers: HeaderMap, Path(name): Path<String>, axum::extract::Query(how): axum::extract::Query<KillMode>) -> Response {
    if !authorized(&state, &headers) {
        return hidden();
    }
    let Some(cell) = ractor::registry::where_is(name.clone()) else {
        return ApiError::NotFound(format!("no live actor named {name}")).into_response();
    };
    if name == crate::tree::ROOT {
        return ApiError::Forbidden("the root supervisor is not killed through the API: the server would stop; send SIGTERM".into()).into_response();
    }
    if supervision::kind_of(&name).is_none() {
        return ApiError::Forbidden(format!("{name} is not an actor of the supervision tree")).into_response();
    }
    match how.mode.as_deref() {
        None | Some("kill") => {
            tracing::warn!(actor = %name, "killed by an operator");
            supervision::operator_kill(&name);
            cell.kill();
        }
        Some("fail") => {
            tracing::warn!(actor = %name, "failed by an operator");
            cell.stop(Some("failure injected by an operator".into()));
        }
        Some(other) => return ApiError::invalid("invalid_mode", format!("mode {other:?} is not kill or fail")).into_response(),
    }
    (StatusCode::ACCEPTED, axum::Json(json!({ "killed": name }))).into_response()
}

/// `GET /api/admin/calls`: each live call with its state and bound connections.
pub async fn calls(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return hidden();
    }
    let Some(sup) = call::supervisor() else { return ApiError::Unavailable.into_response() };
    let Some(list) = call::ask(&sup, CallSupMsg::LiveCalls).await else { return ApiError::Unavailable.into_response() };
    axum::Json(list.iter().map(describe).collect::<Vec<Value>>()).into_response()
}

fn describe(c: &CallState) -> Value {
    let party = |role: Role| {
        let p = c.party(role);
        json!({
            "userId": p.user.id,
            "connection": p.conn.as_deref(),
            "reconnectingSince": p.lost_since.map(rfc3339),
        })
    };
    json!({
        "callId": c.id,
        "actor": call::actor_name(&c.id),
        "state": match c.phase { Phase::Ringing => "ringing", Phase::Active => "active", Phase::Ended => "ended" },
        "caller": party(Role::Caller),
        "callee": party(Role::Callee),
        "media": { "audio": c.media.audio, "video": c.media.video },
        "createdAt": rfc3339(c.created_at),
        "answeredAt": c.answered_at.map(rfc3339),
    })
}
