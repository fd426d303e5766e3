//! Call history: `GET /api/calls` and `GET /api/calls/{id}`, seen from the asking user.

use axum::extract::State;
use serde::Deserialize;

use super::AppState;
use super::auth::Session;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, Query};
use crate::call::record::{CallRecord, to_record};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

/// How long a history read waits for call records still being written (a database that is slow
/// or down answers with what it has).
const RECORDS_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// At most this many records (1 to 200, default 50; above 200 is taken as 200).
    #[param(value_type = Option<i64>, minimum = 1)]
    limit: Option<String>,
    /// The records older than this call of yours.
    before: Option<String>,
}

/// The caller's call history, newest first.
#[utoipa::path(get, path = "/api/calls", operation_id = "callHistory", tag = "calls", params(HistoryQuery),
    security(("session" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The records, newest first", body = Vec<CallRecord>),
        (status = 400, description = "`invalid_input`: a bad limit, or before names no call of yours", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn history(State(state): State<AppState>, session: Session, Query(q): Query<HistoryQuery>) -> ApiResult<axum::Json<Vec<CallRecord>>> {
    // What a client was told has happened is in the history it reads next.
    state.recorder.flush(RECORDS_WAIT).await;
    let limit = super::paging::limit(q.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
    let me = session.user.id;
    let before = match q.before.as_deref().filter(|b| !b.is_empty()) {
        None => None,
        Some(id) => {
            let row = state.store.call_by_id(id).await?;
            Some(row.filter(|r| r.caller_id == me || r.callee_id == me).ok_or_else(|| ApiError::invalid("invalid_input", "before names no call of yours"))?)
        }
    };
    let rows = state.store.calls_of_user(me, before.as_ref(), limit).await?;
    Ok(axum::Json(rows.iter().map(|r| to_record(r, me)).collect()))
}

/// One call record, to its two parties only.
#[utoipa::path(get, path = "/api/calls/{id}", operation_id = "getCall", tag = "calls",
    params(("id" = String, Path, description = "The call id")),
    security(("session" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The record", body = CallRecord),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "`not_found`: no such call of yours", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn one(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> ApiResult<axum::Json<CallRecord>> {
    let me = session.user.id;
    state.recorder.flush(RECORDS_WAIT).await;
    match state.store.call_by_id(&id).await? {
        Some(row) if row.caller_id == me || row.callee_id == me => Ok(axum::Json(to_record(&row, me))),
        _ => Err(ApiError::NotFound("no such call".into())),
    }
}
