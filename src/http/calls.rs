//! Call history: `GET /api/calls` and `GET /api/calls/{id}`, seen from the asking user.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::Value;

use super::AppState;
use super::auth::Session;
use super::error::{ApiError, ApiResult};
use crate::call::record::to_record;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

/// How long a history read waits for call records still being written (a database that is slow
/// or down answers with what it has).
const RECORDS_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Deserialize)]
pub struct HistoryQuery {
    limit: Option<String>,
    before: Option<String>,
}

/// `GET /api/calls?limit=50&before=<callId>`: newest first.
pub async fn history(State(state): State<AppState>, session: Session, Query(q): Query<HistoryQuery>) -> ApiResult<impl IntoResponse> {
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
    Ok(axum::Json(rows.iter().map(|r| to_record(r, me)).collect::<Vec<Value>>()))
}

/// `GET /api/calls/{id}`: one record, to its two parties only.
pub async fn one(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    let me = session.user.id;
    state.recorder.flush(RECORDS_WAIT).await;
    match state.store.call_by_id(&id).await? {
        Some(row) if row.caller_id == me || row.callee_id == me => Ok(axum::Json(to_record(&row, me))),
        _ => Err(ApiError::NotFound("no such call".into())),
    }
}
