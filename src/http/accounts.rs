//! Accounts: register, log in, log out, who am I, the contact list and directory search
//! (PROTOCOL.md section 2 and 2.1).

use std::collections::HashMap;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::client::ClientAddr;
use super::auth::{Session, login_cookie, logout_cookie};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Query;
use super::json::Json;
use crate::auth::{self, password, token};
use crate::presence::{self, RegistryMsg};
use crate::store::AccountRow;
use crate::protocol::{ContactEntry, User};
use crate::store::users::username_key;
use crate::store::{NewUser, StoreError, now_ms};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterBody {
    /// 3 to 32 of `A-Z a-z 0-9 _ . -`; unique, whatever the case.
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,32}$", example = "alice")]
    username: String,
    /// At least 8 characters, at most 1024.
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
    /// 1 to 64 characters once leading and trailing white space is trimmed, no control
    /// characters; the username if absent.
    #[schema(pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\x00-\x1f\x7f-\x9f]{0,62}[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$")]
    display_name: Option<String>,
}

/// `{user}`: the answer of register and `/api/me`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserAnswer {
    pub user: User,
}

/// `{user, token}`: the answer of login.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginAnswer {
    pub user: User,
    /// The session token, for clients without cookies (`Authorization: Bearer`).
    pub token: String,
}

/// Makes an account.
#[utoipa::path(post, path = "/api/register", operation_id = "register", tag = "accounts", request_body = RegisterBody,
    responses(
        (status = 201, description = "The account", body = UserAnswer),
        (status = 400, description = "`invalid_username`, `weak_password`, `password_too_long`, `invalid_display_name`, `bad_json`, `missing_field` or `invalid_input`", body = ErrorBody),
        (status = 403, description = "`forbidden`: from another site's page (an `Origin` not this server's)", body = ErrorBody),
        (status = 409, description = "`username_taken`", body = ErrorBody),
        (status = 413, description = "`too_large`: a body over 64 KiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: a body not sent as `application/json`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many registrations from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
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
    Ok((StatusCode::CREATED, axum::Json(UserAnswer { user })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginBody {
    #[schema(example = "alice")]
    username: String,
    password: String,
}

/// Logs in: the session token in the answer and in the `duet_session` cookie.
#[utoipa::path(post, path = "/api/login", operation_id = "login", tag = "accounts", request_body = LoginBody,
    responses(
        (status = 200, description = "Logged in; the `duet_session` cookie is set", body = LoginAnswer,
            headers(("Set-Cookie" = String, description = "`duet_session`, HttpOnly, SameSite=Lax"))),
        (status = 400, description = "`bad_json`, `missing_field` or `invalid_input`", body = ErrorBody),
        (status = 401, description = "`bad_credentials`: an unknown user and a wrong password alike", body = ErrorBody),
        (status = 403, description = "`account_disabled`, or `forbidden`: from another site's page (an `Origin` not this server's)", body = ErrorBody),
        (status = 413, description = "`too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: a body not sent as `application/json`", body = ErrorBody),
        (status = 429, description = "`rate_limited` after repeated failures", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
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
    Ok((jar, axum::Json(LoginAnswer { user, token })))
}

/// Logs out: the session is revoked and its open sockets closed with 4001.
#[utoipa::path(post, path = "/api/logout", operation_id = "logout", tag = "accounts",
    security(("session" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Logged out; the cookie is cleared"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "`forbidden`: a cookie-authenticated request from another origin", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn logout(State(state): State<AppState>, session: Session, jar: CookieJar) -> ApiResult<impl IntoResponse> {
    state.store.delete_session(session.id).await?;
    presence::tell(RegistryMsg::CloseSession { session_id: session.id, code: 4001, reason: "logged out" });
    tracing::info!(user.id = session.user.id, "logged out");
    Ok((StatusCode::NO_CONTENT, jar.add(logout_cookie(state.settings.secure_cookies()))))
}

/// Who is logged in.
#[utoipa::path(get, path = "/api/me", operation_id = "me", tag = "accounts",
    security(("session" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The user", body = UserAnswer),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn me(State(state): State<AppState>, session: Session) -> ApiResult<axum::Json<UserAnswer>> {
    let user = User::from_row(&session.user, state.status_of(session.user.id));
    Ok(axum::Json(UserAnswer { user }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// Searches the whole directory (username or display name, any case); at most 100 characters.
    #[param(max_length = 100)]
    q: Option<String>,
    /// With `q`: at most this many users (1 to 100, default 20; above 100 is taken as 100).
    /// Checked with or without `q`.
    #[param(value_type = Option<i64>, minimum = 1)]
    limit: Option<String>,
}

/// Directory search answers at most this many users (PROTOCOL.md section 2).
const SEARCH_MAX: usize = 100;
const SEARCH_DEFAULT: usize = 20;

/// The caller's contact list; `?q=` searches the whole directory. Both come with presence and
/// unread counts, from memory (the database is read only for unread counts).
#[utoipa::path(get, path = "/api/users", operation_id = "listUsers", tag = "contacts", params(UsersQuery),
    security(("session" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The users, with presence and unread counts", body = Vec<ContactEntry>),
        (status = 400, description = "`invalid_input`: q over 100 characters, or a bad limit", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn users(State(state): State<AppState>, session: Session, Query(query): Query<UsersQuery>) -> ApiResult<axum::Json<Vec<ContactEntry>>> {
    // Checked with or without q: paging parameters mean the same on every list.
    let limit = super::paging::limit(query.limit.as_deref(), SEARCH_DEFAULT as i64, SEARCH_MAX as i64)? as usize;
    if query.q.as_deref().is_some_and(|q| q.chars().count() > 100) {
        return Err(ApiError::invalid("invalid_input", "q is at most 100 characters"));
    }
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let list = match q {
        Some(q) => state.presence.search(q, limit),
        None => state.presence.contact_list(session.user.id),
    };
    let unread: HashMap<i64, i64> = state.store.unread_counts(session.user.id).await?.into_iter().collect();
    let list: Vec<ContactEntry> = list.into_iter().map(|user| ContactEntry { unread: unread.get(&user.id).copied().unwrap_or(0), user }).collect();
    Ok(axum::Json(list))
}
