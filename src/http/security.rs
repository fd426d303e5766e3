//! What every answer and every state-changing request gets, whatever the route: the browser
//! security headers (no framing, no sniffing, a same-origin referrer, a Content-Security-Policy,
//! HSTS when browsers reach us over TLS), and the CSRF checks: a POST, PUT, PATCH or DELETE that
//! a browser's cookie would authenticate must come from our own origin, or gets 403; and a
//! sign-in (login, register), which no cookie authenticates, must be JSON (a cross-site form can
//! send only form types or text/plain without asking, 415 otherwise) and, from a browser, from
//! our own origin (403 otherwise): a foreign page cannot sign its visitor into another account.

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::SESSION_COOKIE;
use super::error::ApiError;

/// What an API answer (JSON, never a page) may load: nothing.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// A year, as browsers' preload lists ask.
const HSTS: &str = "max-age=31536000";

/// The routes that make a session (or an account) from nothing but the body.
const SIGN_IN: &[&str] = &["/api/login", "/api/register"];

pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() == Method::POST && SIGN_IN.contains(&req.uri().path()) {
        if let Some(why) = sign_in_refusal(&state, req.headers()) {
            tracing::info!(path = %req.uri().path(), origin = ?req.headers().get(header::ORIGIN), "sign-in refused: {why}");
            let mut refused = why.into_response();
            headers(&state, refused.headers_mut());
            return refused;
        }
    }
    if changes_state(req.method()) && cookie_authenticated(req.headers()) {
        let origin = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok());
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        if !origin.is_some_and(|o| origin_allowed(&state, o, host)) {
            tracing::info!(method = %req.method(), path = %req.uri().path(), origin = ?origin, "cross-site request refused");
            let why = match origin {
                None => "a request authenticated by the session cookie must carry an Origin header (or use Authorization: Bearer)",
                Some(_) => "a request authenticated by the session cookie must come from this server's own origin",
            };
            let mut refused = ApiError::Forbidden(why.into()).into_response();
            headers(&state, refused.headers_mut());
            return refused;
        }
    }
    let mut response = next.run(req).await;
    // A 304's headers replace the cached answer's: the page keeps the policy it came with.
    if response.status() != axum::http::StatusCode::NOT_MODIFIED {
        headers(&state, response.headers_mut());
    }
    response
}

/// Why a login or register is refused before it is read: not JSON, or from another site.
fn sign_in_refusal(state: &AppState, h: &HeaderMap) -> Option<ApiError> {
    let json = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Some(ApiError::UnsupportedMediaType("the body must be JSON, sent with Content-Type: application/json".into()));
    }
    // Clients that are not browsers send no Origin; a browser always does on a POST.
    let origin = h.get(header::ORIGIN)?;
    let host = h.get(header::HOST).and_then(|h| h.to_str().ok());
    match origin.to_str() {
        Ok(o) if origin_allowed(state, o, host) => None,
        _ => Some(ApiError::Forbidden("a sign-in must come from this server's own pages".into())),
    }
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The session cookie is there and no bearer token is: what a forged cross-site request has.
fn cookie_authenticated(headers: &HeaderMap) -> bool {
    headers.get(header::AUTHORIZATION).is_none()
        && headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).any(|c| c.trim().starts_with(&format!("{SESSION_COOKIE}=")))
}

fn headers(state: &AppState, h: &mut HeaderMap) {
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    // The web app's pages set their own (stricter for what they load, see static_files.rs).
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(API_CSP));
    }
    if state.settings.secure_cookies() {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
}

/// A browser may act only from our own origin: the public URL, an allowed origin, or, when no
/// public URL is set, whatever host it reached us at.
pub fn origin_allowed(state: &AppState, origin: &str, host: Option<&str>) -> bool {
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    if origin == *state.origin || state.settings.allowed_origins.contains(&origin) {
        return true;
    }
    if state.settings.public_url.is_none() {
        if let Some(host) = host {
            let host = host.to_ascii_lowercase();
            return origin == format!("http://{host}") || origin == format!("https://{host}");
        }
    }
    false
}
