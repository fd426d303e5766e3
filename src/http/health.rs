//! Liveness and readiness for load balancers and orchestrators.

use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ApiResult};

/// `GET /healthz`: the process answers.
pub async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers within two seconds, else 503. In a cluster it also says
/// whether Redis answers: a degraded cluster still serves this node's users, so it stays ready.
pub async fn readyz(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let cluster = state.presence.cluster.as_ref().map(|c| if c.healthy() { "ok" } else { "degraded" });
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok(axum::Json(match cluster {
            Some(c) => json!({ "status": "ready", "cluster": c }),
            None => json!({ "status": "ready" }),
        })),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => {
            tracing::warn!("readiness: database did not answer in time");
            Err(ApiError::DatabaseDown)
        }
    }
}
