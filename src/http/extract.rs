//! `Query` and `Path` extractors whose failures are [`ApiError`]s: a query or path the handler
//! cannot read (a repeated key, bytes that are not UTF-8) is a JSON 400 like every other bad
//! input, not axum's plain-text rejection.

use axum::extract::FromRequestParts;
use axum::extract::rejection::{PathRejection, QueryRejection};

use super::error::ApiError;

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::invalid("invalid_input", format!("the query string cannot be read: {}", r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::invalid("invalid_input", format!("the path cannot be read: {}", r.body_text()))
    }
}
