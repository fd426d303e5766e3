//! The embedded STUN/TURN relay and the ICE servers clients are told about. Credentials follow
//! the TURN REST API scheme of coturn's `use-auth-secret` (`credentials.rs`), and the relay
//! refuses to reach loopback, private, link-local and multicast peers unless allowed, and caps
//! allocations per user (`relay.rs`). It knows nothing of HTTP, actors or SQL.

pub mod credentials;
pub mod relay;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::Settings;
pub use credentials::Credentials;
pub use relay::{PeerPolicy, RelayStats};

/// Realm of the embedded server.
pub const REALM: &str = "duet";

/// Allocations one user may hold at once.
pub const MAX_ALLOCATIONS_PER_USER: usize = 10;

/// What clients are told to use for ICE, and how to make credentials for it.
#[derive(Clone)]
pub struct IceConfig {
    /// `stun:`/`turn:` URLs handed to clients.
    pub urls: Vec<String>,
    pub credentials: Credentials,
}

impl IceConfig {
    /// `iceServers` for one user: the URLs with fresh short-lived credentials.
    pub fn ice_servers(&self, user_id: i64) -> Value {
        if self.urls.is_empty() {
            return json!([]);
        }
        let (username, credential) = self.credentials.issue(user_id);
        let stun: Vec<&String> = self.urls.iter().filter(|u| u.starts_with("stun:")).collect();
        let turn: Vec<&String> = self.urls.iter().filter(|u| !u.starts_with("stun:")).collect();
        let mut servers = Vec::new();
        if !stun.is_empty() {
            servers.push(json!({ "urls": stun }));
        }
        if !turn.is_empty() {
            servers.push(json!({ "urls": turn, "username": username, "credential": credential }));
        }
        json!(servers)
    }

    pub fn ttl_secs(&self) -> u64 {
        self.credentials.ttl.as_secs()
    }
}

/// The running embedded relay.
pub struct Relay {
    server: turn::server::Server,
    pub addr: SocketAddr,
    pub stats: Arc<RelayStats>,
}

impl Relay {
    pub async fn close(&self) {
        let _ = self.server.close().await;
    }
}

/// The address the relay hands out: `DUET_TURN_PUBLIC_IP`, else the address of the default
/// route (found without sending anything), else loopback.
pub fn public_ip(settings: &Settings) -> IpAddr {
    if let Some(ip) = settings.turn_public_ip {
        return ip;
    }
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| {
        s.connect("192.0.2.1:9")?;
        s.local_addr()
    });
    match probe {
        Ok(a) if !a.ip().is_unspecified() && !a.ip().is_loopback() => a.ip(),
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

/// Starts the embedded relay on `DUET_TURN_LISTEN` unless it is `off`, and works out what
/// clients are told: the external URLs of `DUET_TURN_URLS` if set, else the embedded relay's.
pub async fn start(settings: &Settings, secret: String) -> anyhow::Result<(Option<Relay>, IceConfig)> {
    let ttl = Duration::from_secs(settings.turn_credential_ttl_secs);
    let credentials = Credentials::new(secret, ttl);
    let relay = match settings.turn_listen {
        None => None,
        Some(listen) => {
            let public = public_ip(settings);
            let socket = match tokio::net::UdpSocket::bind(listen).await {
                Ok(s) => s,
                Err(e) if settings.turn_listen_explicit => {
                    anyhow::bail!("cannot bind the TURN port {listen}: {e} (set DUET_TURN_LISTEN=off to run without it)")
                }
                Err(e) => {
                    // The default port is taken (another duet, a coturn): serve without the relay
                    // rather than not at all, and say so.
                    tracing::warn!(listen = %listen, error = %e, "the default TURN port is taken; running without the embedded relay (set DUET_TURN_LISTEN to choose another)");
                    return Ok((None, ice_config(settings, None, credentials)));
                }
            };
            let addr = socket.local_addr()?;
            let stats = Arc::new(RelayStats::default());
            let policy = PeerPolicy::new(settings.turn_allowed_peers.clone());
            let (close_tx, close_rx) = tokio::sync::mpsc::channel(1024);
            let generator = relay::Generator::new(listen.ip(), public, policy, stats.clone());
            let auth = credentials::Auth::new(credentials.clone(), stats.clone());
            let server = turn::server::Server::new(turn::server::config::ServerConfig {
                conn_configs: vec![turn::server::config::ConnConfig { conn: Arc::new(socket), relay_addr_generator: Box::new(generator) }],
                realm: REALM.to_string(),
                auth_handler: Arc::new(auth),
                channel_bind_timeout: Duration::from_secs(0),
                alloc_close_notify: Some(close_tx),
            })
            .await
            .map_err(|e| anyhow::anyhow!("starting the TURN server: {e}"))?;
            tokio::spawn(relay::count_closes(close_rx, stats.clone()));
            tracing::info!(listen = %addr, relay_ip = %public, "STUN/TURN relay listening (udp)");
            Some(Relay { server, addr: SocketAddr::new(public, addr.port()), stats })
        }
    };
    let ice = ice_config(settings, relay.as_ref(), credentials);
    Ok((relay, ice))
}

/// The external URLs if configured, else the embedded relay's, else none.
fn ice_config(settings: &Settings, relay: Option<&Relay>, credentials: Credentials) -> IceConfig {
    let urls = if !settings.turn_urls.is_empty() {
        settings.turn_urls.clone()
    } else if let Some(r) = relay {
        vec![format!("stun:{}", r.addr), format!("turn:{}?transport=udp", r.addr)]
    } else {
        Vec::new()
    };
    IceConfig { urls, credentials }
}
