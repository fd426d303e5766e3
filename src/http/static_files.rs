//! The web app: the files of `static/`, built into the binary (or read from `DUET_STATIC_DIR`
//! while developing it). A path without a file extension is `<path>.html` if there is one (the
//! network self-test at `/check`), else `index.html`, so the app's own routes load it.

use std::borrow::Cow;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use super::AppState;
use super::error::ApiError;

/// The web app's Content-Security-Policy: its own origin only (inline style attributes allowed,
/// which the app sets from code).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

/// Fallback for every GET the API does not answer.
pub async fn serve(State(state): State<AppState>, uri: Uri, headers: axum::http::HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path.starts_with("api/") || path == "api" || path.split('/').any(|seg| seg == "..") {
        return ApiError::NotFound("no such path".into()).into_response();
    }
    let wanted = if path.is_empty() { "index.html" } else { path };
    let found = load(&state, wanted).await.map(|b| (wanted, b));
    let page = format!("{wanted}.html");
    let found = match found {
        Some(f) => Some(f),
        // `/check` is `check.html`: pages of their own, beside the app.
        None if !wanted.contains('.') && load(&state, &page).await.is_some() => load(&state, &page).await.map(|b| (page.as_str(), b)),
        // An app route, not a file: the app decides what to show.
        None if !wanted.rsplit('/').next().unwrap_or("").contains('.') => load(&state, "index.html").await.map(|b| ("index.html", b)),
        None => None,
    };
    let Some((name, body)) = found else { return ApiError::NotFound("no such file".into()).into_response() };

    let etag = format!("\"{:x}\"", fnv(&body));
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let mut response = (StatusCode::OK, body.into_owned()).into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Always revalidate: the ETag keeps that cheap, and an upgrade is never half-loaded.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // No-sniff, no framing and the referrer policy are on every answer (security.rs).
    if name.ends_with(".html") {
        // The app loads nothing from elsewhere; a page that tried to would be an injection.
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    response
}

async fn load(state: &AppState, path: &str) -> Option<Cow<'static, [u8]>> {
    match &state.settings.static_dir {
        Some(dir) => tokio::fs::read(dir.join(path)).await.ok().map(Cow::Owned),
        None => Assets::get(path).map(|f| f.data),
    }
}

/// A cheap content hash for the ETag.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}
