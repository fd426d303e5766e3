//! The operator API (PROTOCOL.md section 5): the live actor tree, killing an actor as a crash
//! would, and the live calls. It exists only when `DUET_ADMIN_TOKEN` is set, and answers 404 to
//! any request without that bearer token, so it cannot be found by probing.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{Path, Query};
use crate::call::machine::{CallState, Phase, Role};
use crate::call::{self, CallSupMsg};
use crate::protocol::rfc3339;
use crate::supervision::{self, ActorInfo};

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

/// The live actor tree.
#[utoipa::path(get, path = "/api/admin/actors", operation_id = "adminActors", tag = "operator", security(("admin" = [])), responses(
    (status = 200, description = "Every live actor, supervisors first", body = Vec<ActorInfo>),
    (status = 404, description = "No admin token configured, or not this one: the path does not exist", body = ErrorBody),
))]
pub async fn actors(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return hidden();
    }
    axum::Json(supervision::list()).into_response()
}

/// `GET /api/admin/node`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// This node's id in a cluster (`DUET_NODE_ID`); none on a single node.
    pub node: Option<String>,
    pub cluster: Option<ClusterInfo>,
    /// Open WebSockets on this node (none if its registry did not answer).
    pub connections: Option<usize>,
    /// Users online anywhere in the cluster.
    pub online_users: usize,
    pub users_in_calls: usize,
    /// Live calls this node owns (none if its call supervisor did not answer).
    pub calls: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    /// Whether Redis answers.
    pub healthy: bool,
    /// The other live nodes.
    pub peers: Vec<String>,
    pub remote_users: usize,
    pub owned_calls: usize,
}

/// This node, the cluster it sees, its users and calls.
#[utoipa::path(get, path = "/api/admin/node", operation_id = "adminNode", tag = "operator", security(("admin" = [])), responses(
    (status = 200, description = "This node", body = NodeInfo),
    (status = 404, description = "No admin token configured, or not this one", body = ErrorBody),
))]
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
    let cluster = state.presence.cluster.as_ref().map(|c| ClusterInfo { healthy: c.healthy(), peers: c.peers(), remote_users: c.remote_users().len(), owned_calls: c.calls_owned() });
    axum::Json(NodeInfo {
        node: state.presence.cluster.as_ref().map(|c| c.node.clone()),
        cluster,
        connections,
        online_users: online,
        users_in_calls: in_call,
        calls: local_calls,
    })
    .into_response()
}

/// How `kill` ends an actor.
#[derive(serde::Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KillMode {
    /// `kill` (the default): as a crash would. `fail`: the actor stops as a failure would, and
    /// that counts toward its supervisor's restart intensity (a kill does not); for testing
    /// escalation.
    #[param(pattern = "^(kill|fail)$")]
    mode: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Killed {
    pub killed: String,
}

/// Kills an actor at once, as a crash would (for chaos tests). A killed supervisor is restarted
/// by its parent, with its subtree.
#[utoipa::path(post, path = "/api/admin/actors/{name}/kill", operation_id = "adminKillActor", tag = "operator", security(("admin" = [])),
    params(("name" = String, Path, description = "The actor's name", example = "registry"), KillMode),
    responses(
        (status = 202, description = "Killed; its supervisor restarts it", body = Killed),
        (status = 400, description = "`invalid_mode`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the root supervisor, or an actor outside the supervision tree", body = ErrorBody),
        (status = 404, description = "No live actor of that name; or no admin token configured, or not this one", body = ErrorBody),
    ))]
pub async fn kill(State(state): State<AppState>, headers: HeaderMap, Path(name): Path<String>, Query(how): Query<KillMode>) -> Response {
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
    (StatusCode::ACCEPTED, axum::Json(Killed { killed: name })).into_response()
}

/// Each live call of this node with its state and bound connections.
#[utoipa::path(get, path = "/api/admin/calls", operation_id = "adminCalls", tag = "operator", security(("admin" = [])), responses(
    (status = 200, description = "The live calls", body = Vec<LiveCall>),
    (status = 404, description = "No admin token configured, or not this one", body = ErrorBody),
    (status = 503, description = "The call supervisor did not answer (it is restarting)", body = ErrorBody),
))]
pub async fn calls(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return hidden();
    }
    let Some(sup) = call::supervisor() else { return ApiError::Unavailable.into_response() };
    let Some(list) = call::ask(&sup, CallSupMsg::LiveCalls).await else { return ApiError::Unavailable.into_response() };
    axum::Json(list.iter().map(describe).collect::<Vec<LiveCall>>()).into_response()
}

/// One entry of `GET /api/admin/calls`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveCall {
    pub call_id: String,
    /// Its session actor: `call:<callId>`.
    pub actor: String,
    #[schema(value_type = String, pattern = "^(ringing|active|ended)$")]
    pub state: &'static str,
    pub caller: LiveParty,
    pub callee: LiveParty,
    pub media: crate::call::record::MediaRecord,
    pub created_at: String,
    pub answered_at: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveParty {
    pub user_id: i64,
    /// The connection the call is bound to, if any.
    pub connection: Option<String>,
    /// Since when the call waits for this party to come back (RFC 3339), if it does.
    pub reconnecting_since: Option<String>,
}

fn describe(c: &CallState) -> LiveCall {
    let party = |role: Role| {
        let p = c.party(role);
        LiveParty { user_id: p.user.id, connection: p.conn.as_deref().map(str::to_string), reconnecting_since: p.lost_since.map(rfc3339) }
    };
    LiveCall {
        call_id: c.id.clone(),
        actor: call::actor_name(&c.id),
        state: match c.phase {
            Phase::Ringing => "ringing",
            Phase::Active => "active",
            Phase::Ended => "ended",
        },
        caller: party(Role::Caller),
        callee: party(Role::Callee),
        media: crate::call::record::MediaRecord { audio: c.media.audio, video: c.media.video },
        created_at: rfc3339(c.created_at),
        answered_at: c.answered_at.map(rfc3339),
    }
}
