//! A JSON body extractor whose every failure is an [`ApiError`]: 413 past the body limit, 400
//! `bad_json` for text that is not JSON, 400 `missing_field` or `invalid_input` for JSON of the
//! wrong shape. It does not insist on `Content-Type`, so `curl -d` works as people expect.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Largest request body the API reads.
pub const BODY_LIMIT: usize = 64 * 1024;

/// How much of an oversized body is read and thrown away so that the 413 reaches the client.
const DRAIN_LIMIT: usize = 4 * 1024 * 1024;

pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let mut stream = req.into_body().into_data_stream();
        let mut body = Vec::new();
        let mut seen = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| ApiError::invalid("bad_json", "the request body could not be read"))?;
            seen += chunk.len();
            if seen <= BODY_LIMIT {
                body.extend_from_slice(&chunk);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
        // An oversized body is read to its end (up to a bound) before the 413, so the client,
        // still sending, gets the answer rather than a reset connection.
        if seen > BODY_LIMIT {
            return Err(ApiError::TooLarge(BODY_LIMIT));
        }
        parse(&Bytes::from(body)).map(Json)
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
