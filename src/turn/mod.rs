//! The embedded STUN/TURN relay and the ICE servers clients are told about. Credentials follow
//! the TURN REST API scheme of coturn's `use-auth-secret` (`credentials.rs`); the relay serves
//! UDP, TCP and TLS (`listen.rs`), handles requests the same on each (`server.rs`), keeps
//! allocations (`allocation.rs`), refuses to reach denied peers (`policy.rs`) and counts what it
//! does and refuses (`stats.rs`). It knows nothing of HTTP, actors or SQL.

pub mod allocation;
pub mod credentials;
pub mod link;
pub mod listen;
pub mod policy;
pub mod probe;
pub mod server;
pub mod stats;
pub mod wire;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Settings, StreamListen};
pub use credentials::Credentials;
pub use link::Transport;
pub use policy::PeerPolicy;
pub use stats::RelayStats;

/// Realm of the embedded server.
pub const REALM: &str = "duet";


/// The default of `DUET_TURN_MAX_ALLOCATIONS_PER_USER`: allocations and reserved ports one user
/// may hold at once.
pub const MAX_ALLOCATIONS_PER_USER: usize = 30;

/// One `RTCIceServer`, as browsers take it.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN REST credentials (`<expiry>:<userId>`), for the TURN URLs only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// What clients are told to use for ICE, and how to make credentials for it.
#[derive(Clone)]
pub struct IceConfig {
    /// `stun:`/`turn:` URLs handed to clients.
    pub urls: Vec<String>,
    pub credentials: Credentials,
}

impl IceConfig {
    /// `iceServers` for one user: the URLs with fresh short-lived credentials.
    pub fn ice_servers(&self, user_id: i64) -> Vec<IceServer> {
        if self.urls.is_empty() {
            return Vec::new();
        }
        let (username, credential) = self.credentials.issue(user_id);
        let (stun, turn): (Vec<String>, Vec<String>) = self.urls.iter().cloned().partition(|u| u.starts_with("stun:"));
        let mut servers = Vec::new();
        if !stun.is_empty() {
            servers.push(IceServer { urls: stun, username: None, credential: None });
        }
        if !turn.is_empty() {
            servers.push(IceServer { urls: turn, username: Some(username), credential: Some(credential) });
        }
        servers
    }

    pub fn ttl_secs(&self) -> u64 {
        self.credentials.ttl.as_secs()
    }
}

/// One listener of the running relay.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    pub transport: Transport,
    /// Where it is bound.
    pub bound: SocketAddr,
    /// What clients are told: the public IP and the bound port.
    pub advertised: SocketAddr,
}

/// The running embedded relay.
pub struct Relay {
    pub server: Arc<server::Server>,
    pub endpoints: Vec<Endpoint>,
    pub stats: Arc<RelayStats>,
    closer: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Relay {
    pub async fn close(&self) {
        let _ = self.closer.send(true);
        for t in &self.tasks {
            t.abort();
        }
        self.server.allocations.clear();
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

/// Binds a listener; a port that is taken is fatal when the operator chose it, else a warning
/// and no listener (another duet or a coturn holds the default): serving without the relay
/// beats not serving.
fn taken(what: &str, listen: SocketAddr, explicit: bool, e: std::io::Error) -> anyhow::Result<()> {
    if explicit {
        anyhow::bail!("cannot bind the TURN port {listen} ({what}): {e} (set DUET_TURN_LISTEN=off to run without the relay)");
    }
    tracing::warn!(listen = %listen, error = %e, "the default TURN port is taken ({what}); running without it (set DUET_TURN_LISTEN to choose another)");
    Ok(())
}

/// The UDP socket, and with `same_port` the TCP listener on its port too. A random port (`:0`)
/// is drawn again until TCP is free on it as well.
async fn bind_udp(listen: SocketAddr, same_port: bool) -> std::io::Result<(tokio::net::UdpSocket, Option<tokio::net::TcpListener>)> {
    for _ in 0..20 {
        let udp = tokio::net::UdpSocket::bind(listen).await?;
        if !same_port {
            return Ok((udp, None));
        }
        match tokio::net::TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, Some(tcp))),
            // The caller binds TCP again and reports it the usual way.
            Err(_) if listen.port() != 0 => return Ok((udp, None)),
            Err(_) => continue,
        }
    }
    Ok((tokio::net::UdpSocket::bind(listen).await?, None))
}

/// Starts the embedded relay on `DUET_TURN_LISTEN` (and TCP, TLS beside it) unless it is `off`,
/// and works out what clients are told: the external URLs of `DUET_TURN_URLS` if set, else the
/// embedded relay's.
pub async fn start(settings: &Settings, secret: String, tls: Option<Arc<rustls::ServerConfig>>) -> anyhow::Result<(Option<Relay>, IceConfig)> {
    let ttl = Duration::from_secs(settings.turn_credential_ttl_secs);
    let credentials = Credentials::new(secret, ttl);
    let Some(listen) = settings.turn_listen else {
        return Ok((None, ice_config(settings, None, credentials)));
    };
    let same_port = settings.turn_tcp_listen == StreamListen::SameAsUdp;
    let (udp, mut tcp) = match bind_udp(listen, same_port).await {
        Ok(pair) => pair,
        Err(e) => {
            taken("udp", listen, settings.turn_listen_explicit, e)?;
            return Ok((None, ice_config(settings, None, credentials)));
        }
    };
    let udp = Arc::new(udp);
    let public = public_ip(settings);
    let udp_bound = udp.local_addr()?;
    // A browser allocates once per transport (UDP, TCP, TLS) and local network interface for
    // each connection it gathers for, so a user with a call, a second tab and the /check page
    // holds a dozen or more (DUET_TURN_MAX_ALLOCATIONS_PER_USER, 30 by default).
    let stats = Arc::new(RelayStats::new(settings.turn_max_allocations_per_user));
    let policy = PeerPolicy::new(settings.turn_allowed_peers.clone());
    let server = Arc::new(server::Server::new(REALM, credentials.clone(), policy, listen.ip(), public, stats.clone()));
    let (closer, closed) = tokio::sync::watch::channel(false);
    let mut endpoints = vec![Endpoint { transport: Transport::Udp, bound: udp_bound, advertised: SocketAddr::new(public, udp_bound.port()) }];
    let mut tasks = vec![tokio::spawn(listen::udp(server.clone(), udp, closed.clone()))];

    let tcp_at = match settings.turn_tcp_listen {
        StreamListen::Off => None,
        StreamListen::SameAsUdp => Some((udp_bound, false)),
        StreamListen::At(a) => Some((a, true)),
    };
    if let Some((at, explicit)) = tcp_at {
        let bound = match tcp.take() {
            Some(l) => Ok(l),
            None => tokio::net::TcpListener::bind(at).await,
        };
        match bound {
            Ok(l) => {
                let bound = l.local_addr()?;
                endpoints.push(Endpoint { transport: Transport::Tcp, bound, advertised: SocketAddr::new(public, bound.port()) });
                tasks.push(tokio::spawn(listen::stream(server.clone(), l, None, closed.clone())));
            }
            Err(e) => taken("tcp", at, explicit, e)?,
        }
    }
    if let Some(at) = settings.turn_tls_listen {
        let Some(tls) = tls else { anyhow::bail!("DUET_TURN_TLS_LISTEN needs a certificate: set DUET_TLS_CERT and DUET_TLS_KEY (or DUET_TLS_SELF_SIGNED=1)") };
        // The HTTP server's certificate, without its HTTP protocols: TURN clients offer none or
        // "stun.turn" (RFC 7443), and either is fine.
        let mut config = (*tls).clone();
        config.alpn_protocols = Vec::new();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let l = tokio::net::TcpListener::bind(at).await.map_err(|e| anyhow::anyhow!("cannot bind the TURN TLS port {at}: {e}"))?;
        let bound = l.local_addr()?;
        endpoints.push(Endpoint { transport: Transport::Tls, bound, advertised: SocketAddr::new(public, bound.port()) });
        tasks.push(tokio::spawn(listen::stream(server.clone(), l, Some(acceptor), closed.clone())));
    }
    tasks.push(tokio::spawn({
        let server = server.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            for n in 0u64.. {
                tick.tick().await;
                server.allocations.sweep();
                if n % 60 == 0 {
                    server.stats.forget_old_marks();
                }
            }
        }
    }));
    for e in &endpoints {
        tracing::info!(listen = %e.bound, relay_ip = %public, transport = e.transport.label(), "STUN/TURN relay listening");
    }
    let relay = Relay { server, endpoints, stats, closer, tasks };
    let ice = ice_config(settings, Some(&relay), credentials);
    Ok((Some(relay), ice))
}

/// The host a `turns:` URL names: the certificate is checked against it, so it is the public
/// URL's host when there is one.
fn tls_host(settings: &Settings, advertised: SocketAddr) -> String {
    let host = settings.public_url.as_deref().and_then(|u| u.split("://").nth(1)).and_then(|rest| {
        let authority = rest.split('/').next().unwrap_or(rest);
        if authority.starts_with('[') { authority.split(']').next().map(|h| format!("{h}]")) } else { authority.split(':').next().map(str::to_string) }
    });
    match host {
        Some(h) if !h.is_empty() => format!("{h}:{}", advertised.port()),
        _ => advertised.to_string(),
    }
}

/// The external URLs if configured, else the embedded relay's (UDP first), else none.
fn ice_config(settings: &Settings, relay: Option<&Relay>, credentials: Credentials) -> IceConfig {
    let urls = if !settings.turn_urls.is_empty() {
        settings.turn_urls.clone()
    } else if let Some(r) = relay {
        let mut urls = Vec::new();
        for e in &r.endpoints {
            match e.transport {
                Transport::Udp => {
                    urls.push(format!("stun:{}", e.advertised));
                    urls.push(format!("turn:{}?transport=udp", e.advertised));
                }
                Transport::Tcp => urls.push(format!("turn:{}?transport=tcp", e.advertised)),
                Transport::Tls => urls.push(format!("turns:{}?transport=tcp", tls_host(settings, e.advertised))),
            }
        }
        urls
    } else {
        Vec::new()
    };
    IceConfig { urls, credentials }
}
