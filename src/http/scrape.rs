//! `GET /metrics`: the Prometheus scrape. The relay's counters and the cluster's gauges are read
//! now, at scrape time.

use axum::extract::State;
use axum::response::IntoResponse;

use super::AppState;

/// The Prometheus text format.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain"),
))]
pub async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    use crate::telemetry::names;
    use std::sync::atomic::Ordering::Relaxed;
    if let Some(c) = &state.presence.cluster {
        metrics::gauge!(names::NODE_INFO, "node" => c.node.clone()).set(1.0);
        metrics::gauge!(names::CLUSTER_REMOTE_USERS).set(c.remote_users().len() as f64);
    }
    if let Some(r) = &state.relay {
        metrics::gauge!(names::TURN_ALLOCATIONS).set(r.live_allocations() as f64);
        metrics::counter!(names::TURN_ALLOCATIONS_TOTAL).absolute(r.allocations_total.load(Relaxed));
        metrics::counter!(names::TURN_RELAYED_BYTES).absolute(r.relayed_bytes.load(Relaxed));
        metrics::counter!(names::TURN_AUTH_FAILURES).absolute(r.auth_failures_total.load(Relaxed));
        metrics::counter!(names::TURN_DENIED_PACKETS).absolute(r.denied_peer_packets.load(Relaxed));
        for (why, n) in r.refusals() {
            metrics::counter!(names::TURN_REFUSALS, "reason" => why.label()).absolute(n);
        }
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], crate::telemetry::render_metrics())
}
