//! `GET /api/messages`: chat history with one user or the lobby, newest first, paged.

use axum::extract::State;
use serde::Deserialize;

use super::AppState;
use super::auth::Session;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Query;
use crate::protocol::{ChatMessage, rfc3339};
use crate::store::messages::LOBBY;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The other user's id, or 0 for the lobby.
    #[param(required = true, value_type = i64, minimum = 0)]
    with: Option<String>,
    /// At most this many messages (1 to 200, default 50; above 200 is taken as 200).
    #[param(value_type = Option<i64>, minimum = 1)]
    limit: Option<String>,
    /// The messages older than this message id.
    #[param(value_type = Option<i64>, minimum = 0)]
    before: Option<String>,
}

fn number(name: &str, text: &str) -> Result<i64, ApiError> {
    super::paging::whole_number(text).ok_or_else(|| ApiError::invalid("invalid_input", format!("{name} must be a non-negative integer")))
}

/// Chat history with one user or the lobby, newest first.
#[utoipa::path(get, path = "/api/messages", operation_id = "chatHistory", tag = "chat", params(HistoryQuery),
    security(("session" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The messages, newest first", body = Vec<ChatMessage>),
        (status = 400, description = "`missing_field` (with) or `invalid_input`", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn history(State(state): State<AppState>, session: Session, Query(q): Query<HistoryQuery>) -> ApiResult<axum::Json<Vec<ChatMessage>>> {
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
