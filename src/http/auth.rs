//! Who is asking: the session behind the `duet_session` cookie or an `Authorization: Bearer`
//! token, looked up by the token's hash. Each use slides the session's expiry.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum_extra::extract::cookie::{Cookie, SameSite};

use super::AppState;
use super::error::ApiError;
use crate::auth::token;
use crate::store::{UserRow, now_ms};

pub const SESSION_COOKIE: &str = "duet_session";

/// A session is written back at most this often (or a quarter of its lifetime, if shorter), so
/// reads do not each cost a write.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Browsers keep a cookie at most 400 days; the server decides when the session really ends.
const COOKIE_MAX_AGE_DAYS: i64 = 400;

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: i64,
    pub user: UserRow,
}

/// The tokens a request carries, in the order they are tried: the cookie, then the bearer header.
pub fn tokens_from_headers(headers: &HeaderMap) -> Vec<String> {
    let from_cookie = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| Cookie::parse(pair.trim().to_string()).ok())
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_string());
    let from_bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    from_cookie.into_iter().chain(from_bearer).collect()
}

/// The first of `tokens` that names a live session; a stale cookie does not hide a valid
/// bearer token behind it. 401 if none does.
pub async fn authenticate_any(state: &AppState, tokens: &[String]) -> Result<Session, ApiError> {
    for token in tokens {
        match authenticate(state, token).await {
            Err(ApiError::Unauthorized) => continue,
            other => return other,
        }
    }
    Err(ApiError::Unauthorized)
}

/// Resolves a token to its live session, sliding the expiry; 401 if none.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Session, ApiError> {
    if token.is_empty() || token.len() > 256 {
        return Err(ApiError::Unauthorized);
    }
    let now = now_ms();
    let (session, user) = state.store.session_with_user(&token::digest(token), now).await?.ok_or(ApiError::Unauthorized)?;
    if user.disabled {
        return Err(ApiError::Unauthorized);
    }
    let ttl = state.session_ttl_ms();
    if now - session.last_used_at >= TOUCH_EVERY_MS.min(ttl / 4) {
        state.store.touch_session(session.id, now, now + ttl).await?;
    }
    Ok(Session { id: session.id, user })
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate_any(state, &tokens_from_headers(&parts.headers)).await
    }
}

/// The `Set-Cookie` that logs a browser in.
pub fn login_cookie(token: String, secure: bool) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, token))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(time::Duration::days(COOKIE_MAX_AGE_DAYS))
        .build()
}

/// The `Set-Cookie` that forgets it.
pub fn logout_cookie(secure: bool) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, ""))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(time::Duration::ZERO)
        .build()
}
