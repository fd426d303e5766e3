//! Accounts: register, log in, log out, who am I, the contact list and directory search
//! (PROTOCOL.md section 2 and 2.1).

use std::collections::HashMap;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::client::ClientAddr;
use super::auth::{Session, login_cookie, logout_cookie};
use super::error::{ApiError, ApiResult};
use super::json::Json;
use crate::auth::{self, password, token};
use crate::presence::{self, RegistryMsg};
use crate::store::AccountRow;
use crate::protocol::{ContactEntry, User};
use crate::store::users::username_key;
use crate::store::{NewUser, StoreError, now_ms};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterBody {
    username: String,
    password: String,
    display_name: Option<String>,
}

/// `POST /api/register`: 201 `{user}`.
pub async fn register(State(state): State<AppState>, client: ClientAddr, Json(body): Json<RegisterBody>) -> ApiResult<impl IntoResponse> {
    // Counted before anything else: a script trying names costs its address its quota too.
    if !client.is_local() {
        if let Err(wait) = state.limits.registrations.hit(client.0) {
            tracing::info!(%client, "registration refused: too many from this address");
            return Err(ApiError::RateLimited(wait));
        }
    }
    auth::check_username(&body.username)?;
    auth::check_password(&body.password)?;
    let display_name = auth::clean_display_name(body.display_name.as_deref().unwrap_or(&body.username))?;
    if state.store.user_by_username(&body.username).await?.is_some() {
        return Err(ApiError::UsernameTaken);
    }
    let hash = password::hash_async(body.password).await?;
    let row = match state
        .store
        .create_user(NewUser { username: &body.username, display_name: &display_name, password_hash: &hash })
        .await
    {
        Ok(row) => row,
        // Two registrations raced for the name; the unique key decided.
        Err(StoreError::Conflict(_)) => return Err(ApiError::UsernameTaken),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user.id = row.id, user.name = %row.username, "registered");
    state.presence.directory.upsert(AccountRow { id: row.id, username: row.username.clone(), display_name: row.display_name.clone(), disabled: row.disabled });
    let user = User::from_row(&row, state.status_of(row.id));
    Ok((StatusCode::CREATED, axum::Json(json!({ "user": user }))))
}

#[derive(Deserialize)]
pub struct LoginBody {
    username: String,
    password: String,
}

/// `POST /api/login`: 200 `{user, token}` and the session cookie.
pub async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    jar: CookieJar,
    Json(body): Json<LoginBody>,
) -> ApiResult<impl IntoResponse> {
    let key = username_key(&body.username);
    let addr = client.to_string();
    if let Some(wait) = state.limiter.check(&key, &addr) {
        return Err(ApiError::RateLimited(wait));
    }
    // Names that could never be registered are looked up no further, but cost the same time.
    let row = match auth::check_username(&body.username) {
        Ok(()) => state.store.user_by_username(&body.username).await?,
        Err(_) => None,
    };
    let ok = password::verify_async(body.password, row.as_ref().map(|r| r.password_hash.clone())).await;
    let Some(row) = row.filter(|_| ok) else {
        state.limiter.failed(&key, &addr);
        tracing::info!(user.name = %body.username, client = %addr, "login failed");
        return Err(ApiError::BadCredentials);
    };
    if row.disabled {
        return Err(ApiError::AccountDisabled);
    }
    state.limiter.succeeded(&key);

    let token = token::generate();
    let now = now_ms();
    state.store.create_session(&token::digest(&token), row.id, now, now + state.session_ttl_ms()).await?;
    tracing::info!(user.id = row.id, client = %addr, "logged in");
    let user = User::from_row(&row, state.status_of(row.id));
    let jar = jar.add(login_cookie(token.clone(), state.settings.secure_cookies()));
    Ok((jar, axum::Json(json!({ "user": user, "token": token }))))
}

/// `POST /api/logout`: 204; the session is revoked.
pub async fn logout(State(state): State<AppState>, session: Session, jar: CookieJar) -> ApiResult<impl IntoResponse> {
    state.store.delete_session(session.id).await?;
    presence::tell(RegistryMsg::CloseSession { session_id: session.id, code: 4001, reason: "logged out" });
    tracing::info!(user.id = session.user.id, "logged out");
    Ok((StatusCode::NO_CONTENT, jar.add(logout_cookie(state.settings.secure_cookies()))))
}

/// `GET /api/me`: `{user}`.
pub async fn me(State(state): State<AppState>, session: Session) -> ApiResult<impl IntoResponse> {
    let user = User::from_row(&session.user, state.status_of(session.user.id));
    Ok(axum::Json(json!({ "user": user })))
}

#[derive(Deserialize)]
pub struct UsersQuery {
    q: Option<String>,
    limit: Option<String>,
}

/// Directory search answers at most this many users (PROTOCOL.md section 2).
const SEARCH_MAX: usize = 100;
const SEARCH_DEFAULT: usize = 20;

/// `GET /api/users`: the caller's contact list; `?q=` searches the whole directory. Both come
/// with presence and unread counts, from memory (the database is read only for unread counts).
pub async fn users(State(state): State<AppState>, session: Session, Query(query): Query<UsersQuery>) -> ApiResult<impl IntoResponse> {
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let list = match q {
        Some(q) => {
            if q.chars().count() > 100 {
                return Err(ApiError::invalid("invalid_input", "q is at most 100 characters"));
            }
            let limit = super::paging::limit(query.limit.as_deref(), SEARCH_DEFAULT as i64, SEARCH_MAX as i64)? as usize;
            state.presence.search(q, limit)
        }
        None => state.presence.contact_list(session.user.id),
    };
    let unread: HashMap<i64, i64> = state.store.unread_counts(session.user.id).await?.into_iter().collect();
    let list: Vec<ContactEntry> = list.into_iter().map(|user| ContactEntry { unread: unread.get(&user.id).copied().unwrap_or(0), user }).collect();
    Ok(axum::Json(list))
}
