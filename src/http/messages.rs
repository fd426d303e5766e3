//! `GET /api/messages`: chat history with one user or the lobby, newest first, paged.

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::AppState;
use super::auth::Session;
use super::error::{ApiError, ApiResult};
use crate::protocol::{ChatMessage, rfc3339};
use crate::store::messages::LOBBY;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

#[derive(Deserialize)]
pub struct HistoryQuery {
    with: Option<String>,
    limit: Option<String>,
    before: Option<String>,
}

fn number(name: &str, text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| ApiError::invalid("invalid_input", format!("{name} must be a non-negative integer")))
}

/// `GET /api/messages?with=<userId>|0&limit=&before=<messageId>`.
pub async fn history(State(state): State<AppState>, session: Session, Query(q): Query<HistoryQuery>) -> ApiResult<impl IntoResponse> {
    let with = number("with", q.with.as_deref().ok_or_else(|| ApiError::invalid("missing_field", "with is required (a user id, or 0 for the lobby)"))?)?;
    let limit = super::paging::limit(q.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
    let before = q.before.as_deref().map(|b| number("before", b)).transpose()?;
    if with != LOBBY && state.store.user_by_id(with).await?.is_none() {
        return Err(ApiError::NotFound("no such user".into()));
    }
    let rows = state.store.conversation(session.user.id, with, before, limit).await?;
    let list: Vec<ChatMessage> = rows
        .into_iter()
        .map(|r| ChatMessage { id: r.id, from_id: r.from_id, to_id: r.to_id, message: r.body, sent_at: rfc3339(r.sent_at) })
        .collect();
    Ok(axum::Json(list))
}
