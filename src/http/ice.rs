//! `GET /api/ice-servers`: the STUN/TURN servers a client should use, with fresh short-lived
//! TURN credentials (a browser asks again before they run out).

use axum::extract::State;
use serde::Serialize;

use super::AppState;
use super::auth::Session;
use super::error::ErrorBody;
use crate::turn::IceServer;

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IceServers {
    /// For `RTCPeerConnection`'s `iceServers`; empty when no relay is configured.
    pub ice_servers: Vec<IceServer>,
    /// How long the credentials are good for.
    pub ttl_seconds: u64,
}

/// The ICE servers, with credentials for this user.
#[utoipa::path(get, path = "/api/ice-servers", operation_id = "iceServers", tag = "calls",
    security(("session" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The servers and how long their credentials last", body = IceServers),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn ice_servers(State(state): State<AppState>, session: Session) -> axum::Json<IceServers> {
    axum::Json(IceServers { ice_servers: state.ice.ice_servers(session.user.id), ttl_seconds: state.ice.ttl_secs() })
}
