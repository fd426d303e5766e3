//! The HTTP face of duet: the axum router, the application state every handler shares, and the
//! server's start and graceful stop. Handlers are thin: parse, authorize, call the store (or an
//! actor), answer. No SQL here.

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod calls;
pub mod client;
pub mod contacts;
pub mod error;
pub mod extract;
pub mod health;
pub mod ice;
pub mod json;
pub mod listener;
pub mod messages;
pub mod scrape;
pub mod openapi;
pub mod paging;
pub mod security;
pub mod static_files;
pub mod tls;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use tower_http::trace::TraceLayer;

use crate::auth::limiter::LoginLimiter;
use crate::config::Settings;
use crate::protocol::Status;
use crate::store::{Store, now_ms};
use crate::turn::{IceConfig, RelayStats};
use crate::tree::{RootArgs, Tree};
use crate::call::recorder::Recorder;
use crate::connection::admission::Admission;
use crate::presence::{Directory, Presence};
use crate::call::Timing;
use error::ApiError;

/// Everything a request handler may use, built once at start. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The validated settings of this server.
    pub settings: Arc<Settings>,
    /// The origin browsers reach us at (the configured public URL, or the bound address).
    pub origin: Arc<str>,
    /// The database.
    pub store: Store,
    /// Failed-login counts per username and address.
    pub limiter: Arc<LoginLimiter>,
    /// The ICE servers clients are told about, and their credentials.
    pub ice: IceConfig,
    /// The embedded relay's counters, when it runs.
    pub relay: Option<Arc<RelayStats>>,
    /// Who is online and the directory of accounts and contacts, read without asking an actor.
    pub presence: Presence,
    /// The per-user cap on open WebSockets.
    pub admission: Arc<Admission>,
    /// The per-address cap on open WebSockets.
    pub address_admission: Arc<Admission<std::net::IpAddr>>,
    /// Registrations, chat, invites and reports counted against their limits.
    pub limits: Arc<crate::limits::Limits>,
    /// Writes call records; history reads wait for what it still holds.
    pub recorder: Recorder,
}

impl AppState {
    pub fn new(settings: Arc<Settings>, store: Store, bound: SocketAddr, ice: IceConfig, relay: Option<Arc<RelayStats>>, presence: Presence, recorder: Recorder) -> Self {
        let scheme = if settings.serves_tls() { "https" } else { "http" };
        let origin: Arc<str> = settings.public_url.clone().unwrap_or_else(|| format!("{scheme}://{bound}")).into();
        let limiter = LoginLimiter::new(settings.login_max_failures, Duration::from_secs(settings.login_lockout_secs));
        let admission = Admission::new(settings.ws_max_per_user);
        let address_admission = Admission::new(settings.ws_max_per_address);
        let limits = Arc::new(crate::limits::Limits::new(&settings));
        AppState { settings, origin, store, limiter: Arc::new(limiter), ice, relay, presence, admission, address_admission, limits, recorder }
    }

    /// Session lifetime in milliseconds.
    pub fn session_ttl_ms(&self) -> i64 {
        i64::try_from(self.settings.session_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// The presence of one user.
    pub fn status_of(&self, user_id: i64) -> Status {
        self.presence.status(user_id)
    }
}

/// The API's routes, each with its OpenAPI description (from the handler's own annotation).
pub fn api_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi;
    use utoipa_axum::{router::OpenApiRouter, routes};
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(accounts::register))
        .routes(routes!(accounts::login))
        .routes(routes!(accounts::logout))
        .routes(routes!(accounts::me))
        .routes(routes!(accounts::users))
        .routes(routes!(contacts::add, contacts::remove))
        .routes(routes!(messages::history))
        .routes(routes!(ice::ice_servers))
        .routes(routes!(calls::history))
        .routes(routes!(calls::one))
        .routes(routes!(ws::upgrade))
        .routes(routes!(admin::actors))
        .routes(routes!(admin::kill))
        .routes(routes!(admin::calls))
        .routes(routes!(admin::node))
        .routes(routes!(scrape::metrics_text))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(openapi::openapi_json))
        .split_for_parts()
}

/// The whole router; tests may drive it directly. The trace layer logs one line per request at
/// debug (5xx at error).
pub fn app(state: AppState) -> Router {
    let trusted = state.settings.trusted_proxies.clone();
    let (api, description) = api_routes();
    openapi::publish(&description);
    api
        .fallback(fallback)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(state.clone(), security::guard))
        .layer(axum::middleware::from_fn(count_requests))
        .layer(DefaultBodyLimit::max(json::BODY_LIMIT))
        // The span names the path only: a query string may carry a session token (`/ws?token=`).
        .layer(TraceLayer::new_for_http().on_request(()).make_span_with(move |req: &axum::http::Request<axum::body::Body>| {
            let peer = req.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>().map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
            let client = client::resolve(peer, req.headers(), &trusted);
            tracing::debug_span!("request", method = %req.method(), path = %req.uri().path(), version = ?req.version(), %client)
        }))
        .with_state(state)
}

/// GETs the API does not know are the web app's; anything else is a JSON 404.
async fn fallback(state: axum::extract::State<AppState>, method: axum::http::Method, uri: axum::http::Uri, headers: axum::http::HeaderMap) -> axum::response::Response {
    if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
        return static_files::serve(state, uri, headers).await;
    }
    ApiError::NotFound("no such path".into()).into_response()
}

/// Counts every request by its route (the pattern, not the path, so ids do not explode the
/// label set) and status.
async fn count_requests(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| if req.uri().path().starts_with("/api/") { "unmatched".to_string() } else { "static".to_string() }, |p| p.as_str().to_string());
    let response = next.run(req).await;
    metrics::counter!(crate::telemetry::names::HTTP_REQUESTS, "route" => route, "status" => response.status().as_u16().to_string()).increment(1);
    response
}

/// Opens the store, starts the relay and the actor tree, binds, serves until SIGINT or SIGTERM,
/// then stops gracefully.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let store = Store::open_with(&settings.database_url, settings.store).await?;
    let tls = tls::config(&settings).await?;
    let secret = match &settings.turn_secret {
        Some(s) => s.clone(),
        None => store.setting_or_init("turn_secret", crate::auth::token::generate).await?,
    };
    let (relay, ice) = crate::turn::start(&settings, secret, tls.as_ref().map(|c| c.get_inner())).await?;
    let listener = listen(settings.listen).map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
    let bound = listener.local_addr()?;
    let timing = Timing { ring_timeout_ms: settings.ring_timeout_ms, reconnect_grace_ms: settings.reconnect_grace_ms };
    let relay_stats = relay.as_ref().map(|r| r.stats.clone());
    let directory = Arc::new(Directory::load(&store, settings.directory_full_max).await?);
    tokio::spawn(crate::presence::directory::keep_current(directory.clone(), store.clone()));
    // The calls' last reported states: what a restarted call supervisor revives, and who a
    // restarted registry sees in a call.
    let call_snapshots = crate::call::session::Snapshots::default();
    let in_calls = {
        let snapshots = call_snapshots.clone();
        Arc::new(move || crate::call::users_in_live_calls(&snapshots)) as crate::presence::InCalls
    };
    let cluster = match &settings.cluster {
        Some(c) => Some(crate::cluster::Cluster::start(c.clone())?),
        None => None,
    };
    let presence = Presence::new(directory, in_calls, cluster);
    let recorder = Recorder::start(store.clone());
    let mut tree = Tree::start(RootArgs {
        store: store.clone(),
        timing,
        relay: relay_stats.clone(),
        presence: presence.clone(),
        recorder: recorder.clone(),
        call_snapshots,
        call_traces: Default::default(),
    })
    .await?;
    let state = AppState::new(settings.clone(), store.clone(), bound, ice, relay_stats, presence, recorder.clone());
    tokio::spawn(purge_sessions(store));
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(origin = %state.origin, "duet listening on {scheme}://{bound}");

    let router = app(state);
    let limits = listener::ConnLimits::from_settings(&settings);
    // A signal, or the supervision tree giving up, starts the one shutdown path; the second
    // ends the process non-zero afterwards.
    let gave_up: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let shutdown_within = Duration::from_millis(settings.shutdown_timeout_ms);
    let stop_tree = {
        let gave_up = gave_up.clone();
        async move {
            let why = tokio::select! {
                () = shutdown_signal() => None,
                why = tree.gave_up.recv() => why,
            };
            if let Some(why) = &why {
                tracing::error!(reason = %why, "stopping the server: the supervision tree gave up");
            }
            *gave_up.lock().unwrap_or_else(|p| p.into_inner()) = why;
            // Clients hear 10021 and a 1001 close before the listener goes away.
            tree.stop(RECONNECT_AFTER_MS, shutdown_within).await;
        }
    };
    let acceptor = tls.map(|config| tokio_rustls::TlsAcceptor::from(config.get_inner()));
    let listener = tokio::net::TcpListener::from_std(listener)?;
    listener::serve(listener, acceptor, router, limits, stop_tree, shutdown_within).await;
    // Every call record handed to the recorder is on disk before the process ends.
    if !recorder.flush(shutdown_within).await {
        tracing::warn!(within_ms = settings.shutdown_timeout_ms, "shutdown: some call records could not be written in time");
    }
    if let Some(r) = relay {
        r.close().await;
    }
    let gave_up = gave_up.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(why) = gave_up {
        anyhow::bail!("stopped because the supervision tree gave up: {why}");
    }
    tracing::info!("duet stopped");
    Ok(())
}

/// Connections the kernel queues before they are accepted: room for an office opening its laptops
/// at once (std's default of 128 turns a connect storm into SYN retries a second apart).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the HTTP listener (non-blocking, for tokio) with [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)?.into_std()
}

/// What 10021 tells clients to wait before reconnecting.
const RECONNECT_AFTER_MS: u64 = 1000;

/// Deletes expired sessions every hour, so the table does not grow without bound.
async fn purge_sessions(store: Store) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        match store.purge_expired_sessions(now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "purged expired sessions"),
            Err(e) => tracing::warn!(error = %e, "purging expired sessions"),
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down");
}
