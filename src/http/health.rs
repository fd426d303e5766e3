//! Liveness and readiness for load balancers and orchestrators.

use std::time::Duration;

use axum::extract::State;
use serde::Serialize;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    #[schema(value_type = String, example = "ok")]
    status: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Ready {
    #[schema(value_type = String, example = "ready")]
    status: &'static str,
    /// In a cluster: `ok`, or `degraded` while Redis does not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^(ok|degraded)$")]
    cluster: Option<&'static str>,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations", responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// Readiness: the database answers within two seconds, else 503. In a cluster it also says
/// whether Redis answers: a degraded cluster still serves this node's users, so it stays ready.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations", responses(
    (status = 200, description = "Ready", body = Ready),
    (status = 503, description = "The database does not answer", body = ErrorBody),
))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<axum::Json<Ready>> {
    let cluster = state.presence.cluster.as_ref().map(|c| if c.healthy() { "ok" } else { "degraded" });
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok(axum::Json(Ready { status: "ready", cluster })),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => {
            tracing::warn!("readiness: database did not answer in time");
            Err(ApiError::DatabaseDown)
        }
    }
}
