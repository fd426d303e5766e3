//! A JSON body extractor whose every failure is an [`ApiError`]: 413 past the body limit, 400
//! `bad_json` for text that is not JSON, 400 `missing_field` or `invalid_input` for JSON of the
//! wrong shape. It does not insist on `Content-Type`, so `curl -d` works as people expect.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Largest request body the API reads.
pub const BODY_LIMIT: usize = 64 * 1024;

pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(BODY_LIMIT)
            } else {
                ApiError::invalid("bad_json", "the request body could not be read")
            }
        })?;
        parse(&bytes).map(Json)
    }
}

/// Decodes a body, naming what is wrong with it.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => ApiError::invalid("bad_json", format!("the body is not valid JSON: {e}")),
            Category::Data => {
                let text = e.to_string();
                match text.strip_prefix("missing field ") {
                    Some(rest) => {
                        let field = rest.split(" at ").next().unwrap_or(rest);
                        ApiError::invalid("missing_field", format!("the field {field} is required"))
                    }
                    None => ApiError::invalid("invalid_input", format!("the body has the wrong shape: {text}")),
                }
            }
        }
    })
}
