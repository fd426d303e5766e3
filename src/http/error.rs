//! The one error type of the HTTP API and its mapping to PROTOCOL.md section 2: a status and a
//! body `{"error": "<machine_code>", "message": "<human text>"}`. Store errors are logged here,
//! once, and reach the client only as `unavailable` or `internal`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::Invalid;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 with a specific error name (`invalid_username`, `bad_json`, ...).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// 401: no valid session.
    #[error("not logged in")]
    Unauthorized,
    /// 401: wrong username or password (never says which).
    #[error("wrong username or password")]
    BadCredentials,
    /// 403: an account an operator disabled.
    #[error("this account is disabled")]
    AccountDisabled,
    /// 403: logged in, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 404 `unknown_user`: no active account with that id.
    #[error("no such user")]
    UnknownUser,
    /// 405.
    #[error("method not allowed here")]
    MethodNotAllowed,
    /// 409 `username_taken`.
    #[error("that username is taken")]
    UsernameTaken,
    /// 413.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// 415 `unsupported_media_type`: a body that must be JSON came as something else.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429 with Retry-After, in seconds.
    #[error("too many attempts; try again in {0} seconds")]
    RateLimited(u64),
    /// 503: a dependency other than the database is down.
    #[error("the service is temporarily unavailable")]
    Unavailable,
    /// 503: the database does not answer; nothing was changed.
    #[error("the database is unavailable; nothing was changed, try again shortly")]
    DatabaseDown,
    /// 500: a bug; details are in the log only.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid { code, message: message.into() }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Invalid { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::BadCredentials => (StatusCode::UNAUTHORIZED, "bad_credentials"),
            ApiError::AccountDisabled => (StatusCode::FORBIDDEN, "account_disabled"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::UnknownUser => (StatusCode::NOT_FOUND, "unknown_user"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::UsernameTaken => (StatusCode::CONFLICT, "username_taken"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Unavailable | ApiError::DatabaseDown => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(i: Invalid) -> Self {
        ApiError::invalid(i.code, i.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                ApiError::DatabaseDown
            }
            StoreError::NotFound(what) => ApiError::NotFound(format!("no such {what}")),
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::Internal
            }
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        tracing::error!(error = %e, "internal error");
        ApiError::Internal
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut response = (status, axum::Json(ErrorBody { error: code.to_string(), message: self.to_string() })).into_response();
        if let ApiError::RateLimited(secs) = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The body of every error answer (PROTOCOL.md section 2).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A machine code: `invalid_input`, `bad_json`, `missing_field`, `unauthorized`,
    /// `bad_credentials`, `forbidden`, `not_found`, `unknown_user`, `username_taken`,
    /// `too_large`, `rate_limited`, `unavailable`, ...
    #[schema(example = "invalid_input")]
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
}
