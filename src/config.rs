//! Settings: flags of `duet serve`, the same names as `DUET_*` environment variables, and an
//! optional TOML file (`--config`), in that order of precedence, over the defaults of
//! PROTOCOL.md section 6.
//!
//! Every value arrives as text and is parsed here, so that a bad one stops the start with one
//! line that names the setting and the problem (clap's own typed errors would print a usage page).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// One setting as the command line, the environment and the file know it.
pub struct Key {
    /// Name in the TOML file and, with dashes, the flag (`--ring-timeout-ms`).
    pub name: &'static str,
    /// Environment variable.
    pub env: &'static str,
    /// Default as text, or none.
    pub default: Option<&'static str>,
    /// One line for `--help`, the README and the sample file.
    pub help: &'static str,
}

/// Every setting duet knows, in the order the README lists them.
pub const KEYS: &[Key] = &[
    Key { name: "listen", env: "DUET_LISTEN", default: Some("127.0.0.1:8080"), help: "HTTP listen address" },
    Key { name: "database_url", env: "DUET_DATABASE_URL", default: Some("sqlite://data/duet.db"), help: "sqlite://<path>, postgres://user:password@host/db or mysql://user:password@host/db" },
    Key { name: "database_pool_size", env: "DUET_DATABASE_POOL_SIZE", default: Some("16"), help: "database connections kept open (PostgreSQL, MySQL; SQLite uses 8)" },
    Key { name: "database_connect_timeout_ms", env: "DUET_DATABASE_CONNECT_TIMEOUT_MS", default: Some("3000"), help: "a database connection not made (or not free) within this long fails the request with 503" },
    Key { name: "database_query_timeout_ms", env: "DUET_DATABASE_QUERY_TIMEOUT_MS", default: Some("5000"), help: "a query not answered within this long fails with 503, so a dead database is noticed in seconds" },
    Key { name: "public_url", env: "DUET_PUBLIC_URL", default: None, help: "the origin browsers use (Origin check, cookie Secure); default http://<listen>" },
    Key { name: "trusted_proxies", env: "DUET_TRUSTED_PROXIES", default: None, help: "comma-separated CIDRs of reverse proxies whose Forwarded / X-Forwarded-For header names the client (for per-address limits and logs); from any other peer those headers are ignored" },
    Key { name: "allowed_origins", env: "DUET_ALLOWED_ORIGINS", default: None, help: "comma-separated extra origins allowed to open the WebSocket" },
    Key { name: "tls_cert", env: "DUET_TLS_CERT", default: None, help: "PEM certificate chain: serve HTTPS and WSS" },
    Key { name: "tls_key", env: "DUET_TLS_KEY", default: None, help: "PEM private key of DUET_TLS_CERT" },
    Key { name: "tls_self_signed", env: "DUET_TLS_SELF_SIGNED", default: Some("0"), help: "1: serve HTTPS with a self-signed certificate made for this machine (development, phones on a LAN)" },
    Key { name: "ring_timeout_ms", env: "DUET_RING_TIMEOUT_MS", default: Some("30000"), help: "how long a call rings before it is missed" },
    Key { name: "reconnect_grace_ms", env: "DUET_RECONNECT_GRACE_MS", default: Some("20000"), help: "how long a call waits for a dropped party to come back" },
    Key { name: "turn_listen", env: "DUET_TURN_LISTEN", default: Some("0.0.0.0:3478"), help: "embedded STUN/TURN (UDP) address, or off" },
    Key { name: "turn_tcp_listen", env: "DUET_TURN_TCP_LISTEN", default: None, help: "TURN over TCP (turn:…?transport=tcp) address, or off; default the UDP listener's address and port" },
    Key { name: "turn_tls_listen", env: "DUET_TURN_TLS_LISTEN", default: None, help: "TURN over TLS (turns:) address, e.g. 0.0.0.0:5349; uses DUET_TLS_CERT (or the self-signed one); default off" },
    Key { name: "turn_public_ip", env: "DUET_TURN_PUBLIC_IP", default: None, help: "the relay address TURN hands out; default the first non-loopback address" },
    Key { name: "turn_secret", env: "DUET_TURN_SECRET", default: None, help: "shared secret of TURN REST credentials (coturn use-auth-secret); default generated once and kept in the database" },
    Key { name: "turn_allowed_peers", env: "DUET_TURN_ALLOWED_PEERS", default: None, help: "comma-separated CIDRs the relay may reach although loopback, private or link-local" },
    Key { name: "turn_urls", env: "DUET_TURN_URLS", default: None, help: "comma-separated external stun:/turn: URLs to hand clients instead of the embedded relay" },
    Key { name: "turn_credential_ttl_secs", env: "DUET_TURN_CREDENTIAL_TTL_SECS", default: Some("3600"), help: "lifetime of the TURN credentials handed to clients" },
    Key { name: "session_ttl_secs", env: "DUET_SESSION_TTL_SECS", default: Some("2592000"), help: "a login session expires after this long without use (sliding)" },
    Key { name: "login_max_failures", env: "DUET_LOGIN_MAX_FAILURES", default: Some("5"), help: "failed logins for one username before 429 (one address gets four times as many)" },
    Key { name: "login_lockout_secs", env: "DUET_LOGIN_LOCKOUT_SECS", default: Some("300"), help: "how long failed logins are remembered and a locked name stays locked" },
    Key { name: "ws_ping_interval_ms", env: "DUET_WS_PING_INTERVAL_MS", default: Some("20000"), help: "how often the server pings each WebSocket" },
    Key { name: "ws_idle_timeout_ms", env: "DUET_WS_IDLE_TIMEOUT_MS", default: Some("60000"), help: "a WebSocket silent this long is dropped" },
    Key { name: "ws_abuse_close_ms", env: "DUET_WS_ABUSE_CLOSE_MS", default: Some("10000"), help: "a WebSocket over its frame rate this long is closed with 1008" },
    Key { name: "ws_rate_per_sec", env: "DUET_WS_RATE_PER_SEC", default: Some("100"), help: "frames a second one WebSocket may send, sustained" },
    Key { name: "ws_rate_burst", env: "DUET_WS_RATE_BURST", default: Some("200"), help: "frames one WebSocket may send in a burst above its rate" },
    Key { name: "ws_max_per_user", env: "DUET_WS_MAX_PER_USER", default: Some("8"), help: "open WebSockets one user may have; the next upgrade gets 429" },
    Key { name: "ws_max_per_address", env: "DUET_WS_MAX_PER_ADDRESS", default: Some("256"), help: "open WebSockets from one client address (behind DUET_TRUSTED_PROXIES, the client's; loopback is exempt); the next upgrade gets 429" },
    Key { name: "register_per_hour", env: "DUET_REGISTER_PER_HOUR", default: Some("100"), help: "accounts one client address may register an hour (loopback is exempt); then 429" },
    Key { name: "chat_per_minute", env: "DUET_CHAT_PER_MINUTE", default: Some("6000"), help: "chat messages one user may send a minute, over all their connections (the frame rate limits each connection); then rate_limited" },
    Key { name: "chat_daily_max", env: "DUET_CHAT_DAILY_MAX", default: Some("20000"), help: "chat messages one user may have stored per UTC day; then rate_limited" },
    Key { name: "invites_per_minute", env: "DUET_INVITES_PER_MINUTE", default: Some("120"), help: "calls one user may start to the same person a minute; then rate_limited" },
    Key { name: "call_reports_per_minute", env: "DUET_CALL_REPORTS_PER_MINUTE", default: Some("120"), help: "Call/Report frames one user may send a minute; then rate_limited" },
    Key { name: "ws_send_queue", env: "DUET_WS_SEND_QUEUE", default: Some("1024"), help: "frames that may wait for one client's socket" },
    Key { name: "ws_send_stall_ms", env: "DUET_WS_SEND_STALL_MS", default: Some("5000"), help: "a client whose send queue stays full this long is closed with 1008 (it does not read)" },
    Key { name: "ws_write_timeout_ms", env: "DUET_WS_WRITE_TIMEOUT_MS", default: Some("10000"), help: "a write to one client's socket not done within this long closes it with 1008 (it stopped reading), however short its queue" },
    Key { name: "http_header_timeout_ms", env: "DUET_HTTP_HEADER_TIMEOUT_MS", default: Some("10000"), help: "an HTTP/1 request head (or a TLS handshake) not complete within this long closes the connection" },
    Key { name: "http_idle_timeout_ms", env: "DUET_HTTP_IDLE_TIMEOUT_MS", default: Some("60000"), help: "an HTTP connection (not yet a WebSocket) that moves no byte this long is closed" },
    Key { name: "http_max_per_address", env: "DUET_HTTP_MAX_PER_ADDRESS", default: Some("128"), help: "open HTTP connections (not yet WebSockets) from one peer address; more are closed at once (loopback and DUET_TRUSTED_PROXIES are exempt)" },
    Key { name: "turn_max_allocations_per_user", env: "DUET_TURN_MAX_ALLOCATIONS_PER_USER", default: Some("30"), help: "relay allocations and reserved ports (EVEN-PORT) one user may hold at once; then 486" },
    Key { name: "directory_full_max", env: "DUET_DIRECTORY_FULL_MAX", default: Some("500"), help: "up to this many active accounts everyone is everyone's contact; above it, contact lists are scoped" },
    Key { name: "shutdown_timeout_ms", env: "DUET_SHUTDOWN_TIMEOUT_MS", default: Some("10000"), help: "the longest a graceful shutdown waits for connections to close and calls to be written before it stops anyway" },
    Key { name: "static_dir", env: "DUET_STATIC_DIR", default: None, help: "serve the web app from this folder instead of the copy built into the binary (web app development)" },
    Key { name: "redis_url", env: "DUET_REDIS_URL", default: None, help: "redis://host:6379/: join a cluster of duet nodes sharing presence and frames through this Redis" },
    Key { name: "redis_prefix", env: "DUET_REDIS_PREFIX", default: Some("duet"), help: "prefix of the cluster's Redis keys and channels (several clusters on one Redis)" },
    Key { name: "node_id", env: "DUET_NODE_ID", default: None, help: "this node's name in the cluster; default <hostname>-<random>" },
    Key { name: "cluster_heartbeat_ms", env: "DUET_CLUSTER_HEARTBEAT_MS", default: Some("1000"), help: "how often a node tells Redis it is alive" },
    Key { name: "cluster_node_expiry_ms", env: "DUET_CLUSTER_NODE_EXPIRY_MS", default: Some("5000"), help: "a node silent this long is gone: its users go offline on the other nodes" },
    Key { name: "otlp_endpoint", env: "DUET_OTLP_ENDPOINT", default: None, help: "OTLP/HTTP endpoint for call traces, e.g. http://127.0.0.1:4318" },
    Key { name: "admin_token", env: "DUET_ADMIN_TOKEN", default: None, help: "enables the operator API (PROTOCOL.md section 5)" },
];

/// Where TURN over TCP listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamListen {
    /// The UDP listener's address and port, as coturn does.
    SameAsUdp,
    Off,
    At(SocketAddr),
}

/// Typed, validated settings of one `duet serve`.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// The cluster this node joins through Redis, if any.
    pub cluster: Option<crate::cluster::ClusterSettings>,
    /// Where the data lives; the scheme picks the backend.
    pub database_url: String,
    /// The longest a graceful shutdown waits before it stops anyway.
    pub shutdown_timeout_ms: u64,
    /// Pool size and timeouts of the database.
    pub store: crate::store::StoreOptions,
    /// The origin browsers reach us at, without a trailing slash (`https://duet.example.com`);
    /// none means `http://` and the bound address.
    pub public_url: Option<String>,
    /// Extra origins a browser WebSocket may come from, besides `public_url`.
    pub allowed_origins: Vec<String>,
    /// Peers whose forwarding headers name the client's address.
    pub trusted_proxies: Vec<crate::cidr::Cidr>,
    /// PEM files to serve HTTPS with.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Serve HTTPS with a self-signed certificate made at start.
    pub tls_self_signed: bool,
    /// Embedded STUN/TURN listen address; `None` when `off`.
    pub turn_listen: Option<SocketAddr>,
    /// Whether the TURN address was asked for (then a taken port stops the start) rather than
    /// the default (then duet starts without the relay and says so).
    pub turn_listen_explicit: bool,
    /// TURN over TCP: where, beside the UDP listener.
    pub turn_tcp_listen: StreamListen,
    /// TURN over TLS (`turns:`), if on.
    pub turn_tls_listen: Option<SocketAddr>,
    /// The relay address handed out; `None` means found at start.
    pub turn_public_ip: Option<std::net::IpAddr>,
    /// The TURN REST shared secret, if configured.
    pub turn_secret: Option<String>,
    /// Peers the relay may reach although in a denied range.
    pub turn_allowed_peers: Vec<crate::turn::policy::Cidr>,
    /// External STUN/TURN URLs handed to clients instead of the embedded relay.
    pub turn_urls: Vec<String>,
    /// Lifetime of TURN credentials, in seconds.
    pub turn_credential_ttl_secs: u64,
    /// Ring timeout of a call, in milliseconds.
    pub ring_timeout_ms: u64,
    /// Reconnect grace of a call party, in milliseconds.
    pub reconnect_grace_ms: u64,
    /// Idle lifetime of a login session, in seconds; each use extends it.
    pub session_ttl_secs: u64,
    /// Failed logins per username before the name is locked for a while.
    pub login_max_failures: u32,
    /// Window and lockout length for failed logins, in seconds.
    pub login_lockout_secs: u64,
    /// Interval of server pings on each WebSocket, in milliseconds.
    pub ws_ping_interval_ms: u64,
    /// A WebSocket that sends nothing (not even a pong) this long is dropped, in milliseconds.
    pub ws_idle_timeout_ms: u64,
    /// How long a WebSocket may stay over its frame rate before it is closed, in milliseconds.
    pub ws_abuse_close_ms: u64,
    /// Sustained frames a second per WebSocket (token bucket rate).
    pub ws_rate_per_sec: u64,
    /// Burst size of that token bucket.
    pub ws_rate_burst: u64,
    /// Open WebSockets per user.
    pub ws_max_per_user: usize,
    /// Open WebSockets per client address.
    pub ws_max_per_address: usize,
    /// Registrations per client address an hour.
    pub register_per_hour: u32,
    /// Chat messages per user a minute.
    pub chat_per_minute: u32,
    /// Stored chat messages per user per UTC day.
    pub chat_daily_max: u32,
    /// Invites from one user to the same person a minute.
    pub invites_per_minute: u32,
    /// `Call/Report` frames per user a minute.
    pub call_reports_per_minute: u32,
    /// Frames that may wait for one client's socket.
    pub ws_send_queue: usize,
    /// How long that queue may stay full before the client counts as not reading.
    pub ws_send_stall_ms: u64,
    /// How long one write to a client's socket may take before the client counts as not reading.
    pub ws_write_timeout_ms: u64,
    /// How long an HTTP/1 request head or a TLS handshake may take to arrive.
    pub http_header_timeout_ms: u64,
    /// How long an HTTP connection may move nothing before it is closed.
    pub http_idle_timeout_ms: u64,
    /// Open HTTP connections per peer address (loopback and trusted proxies exempt).
    pub http_max_per_address: usize,
    /// Relay allocations and reservations one user may hold.
    pub turn_max_allocations_per_user: usize,
    /// Largest directory in which everyone is everyone's contact (PROTOCOL.md section 2.1).
    pub directory_full_max: usize,
    /// A folder to serve the web app from instead of the embedded copy.
    pub static_dir: Option<PathBuf>,
    /// Where traces go (OTLP over HTTP); none exports nothing.
    pub otlp_endpoint: Option<String>,
    /// Bearer token of the operator API; none disables it.
    pub admin_token: Option<String>,
}

/// Raw values by setting name, merged from the sources before parsing.
pub type Raw = BTreeMap<&'static str, String>;

/// A setting that cannot be used; its `Display` is the one line printed before exiting.
#[derive(Debug, thiserror::Error)]
#[error("bad setting {setting}: {problem}")]
pub struct SettingError {
    pub setting: String,
    pub problem: String,
}

fn bad(key: &str, problem: impl Into<String>) -> SettingError {
    let env = KEYS.iter().find(|k| k.name == key).map_or(key, |k| k.env);
    SettingError { setting: format!("{env} (--{})", key.replace('_', "-")), problem: problem.into() }
}

/// Reads the TOML file's settings; unknown names and non-scalar values are errors.
pub fn read_file(path: &Path) -> Result<Raw, SettingError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SettingError { setting: format!("config file {}", path.display()), problem: format!("cannot read it: {e}") })?;
    parse_file_text(&text, &path.display().to_string())
}

/// The settings of a TOML file's text; `file` names it in errors.
pub fn parse_file_text(text: &str, file: &str) -> Result<Raw, SettingError> {
    let file_err = |problem: String| SettingError { setting: format!("config file {file}"), problem };
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| file_err(e.message().to_string()))?;
    let mut raw = Raw::new();
    for (name, value) in table {
        let key = KEYS
            .iter()
            .find(|k| k.name == name)
            .ok_or_else(|| file_err(format!("unknown setting `{name}`")))?;
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| file_err(format!("`{name}` must be a list of strings"))))
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            _ => return Err(file_err(format!("`{name}` must be a string or a number"))),
        };
        raw.insert(key.name, text);
    }
    Ok(raw)
}

/// Merges command line/environment values (already merged by clap) over the file's.
pub fn merge(cli: Raw, file: Raw) -> Raw {
    let mut raw = file;
    raw.extend(cli);
    raw
}

impl Settings {
    /// Parses and checks every setting, falling back to the defaults.
    pub fn from_raw(raw: &Raw) -> Result<Self, SettingError> {
        let get = |name: &'static str| -> Option<String> {
            raw.get(name)
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .or_else(|| KEYS.iter().find(|k| k.name == name).and_then(|k| k.default.map(str::to_string)))
        };
        let number = |name: &'static str, min: u64| -> Result<u64, SettingError> {
            let text = get(name).unwrap_or_default();
            let value: u64 = text.parse().map_err(|_| bad(name, format!("{text:?} is not a whole number")))?;
            if value < min {
                return Err(bad(name, format!("{value} is below the minimum of {min}")));
            }
            Ok(value)
        };

        let count = |name: &'static str| -> Result<u32, SettingError> { u32::try_from(number(name, 1)?).map_err(|_| bad(name, "too large")) };

        let listen_text = get("listen").unwrap_or_default();
        let listen: SocketAddr = listen_text
            .parse()
            .map_err(|_| bad("listen", format!("{listen_text:?} is not an address like 127.0.0.1:8080")))?;

        let database_url = get("database_url").unwrap_or_default();
        crate::store::DatabaseUrl::parse(&database_url).map_err(|problem| bad("database_url", problem))?;

        let public_url = get("public_url").map(|url| parse_origin(&url).map_err(|p| bad("public_url", p))).transpose()?;
        let allowed_origins = get("allowed_origins")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|o| parse_origin(o).map_err(|p| bad("allowed_origins", p)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();

        let login_max_failures = number("login_max_failures", 1)?;
        let list = |name: &'static str| -> Vec<String> {
            get(name).map(|l| l.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()).unwrap_or_default()
        };
        let tls = match (get("tls_cert"), get("tls_key")) {
            (Some(c), Some(k)) => {
                for (name, path) in [("tls_cert", &c), ("tls_key", &k)] {
                    if !Path::new(path).is_file() {
                        return Err(bad(name, format!("{path:?} is not a readable file")));
                    }
                }
                Some((PathBuf::from(c), PathBuf::from(k)))
            }
            (Some(_), None) => return Err(bad("tls_key", "DUET_TLS_CERT is set, so the key is needed too")),
            (None, Some(_)) => return Err(bad("tls_cert", "DUET_TLS_KEY is set, so the certificate is needed too")),
            (None, None) => None,
        };
        let tls_self_signed = match get("tls_self_signed").as_deref() {
            Some("1" | "true" | "yes" | "on") => true,
            Some("0" | "false" | "no" | "off") | None => false,
            Some(other) => return Err(bad("tls_self_signed", format!("{other:?} is not 1 or 0"))),
        };
        if tls_self_signed && tls.is_some() {
            return Err(bad("tls_self_signed", "cannot be used together with DUET_TLS_CERT"));
        }
        let turn_listen = match get("turn_listen").as_deref() {
            Some("off") => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| bad("turn_listen", format!("{text:?} is not an address like 0.0.0.0:3478, or off")))?),
            None => None,
        };
        let turn_tcp_listen = match get("turn_tcp_listen").as_deref() {
            None => StreamListen::SameAsUdp,
            Some("off") => StreamListen::Off,
            Some(text) => StreamListen::At(text.parse().map_err(|_| bad("turn_tcp_listen", format!("{text:?} is not an address like 0.0.0.0:3478, or off")))?),
        };
        let turn_tls_listen = match get("turn_tls_listen").as_deref() {
            None | Some("off") => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| bad("turn_tls_listen", format!("{text:?} is not an address like 0.0.0.0:5349, or off")))?),
        };
        if turn_tls_listen.is_some() && tls.is_none() && !tls_self_signed {
            return Err(bad("turn_tls_listen", "TURN over TLS needs a certificate: set DUET_TLS_CERT and DUET_TLS_KEY (or DUET_TLS_SELF_SIGNED=1)"));
        }
        if turn_listen.is_none() && (turn_tls_listen.is_some() || matches!(turn_tcp_listen, StreamListen::At(_))) {
            return Err(bad("turn_listen", "is off, so the relay is: DUET_TURN_TCP_LISTEN and DUET_TURN_TLS_LISTEN need it on"));
        }
        let turn_public_ip = get("turn_public_ip")
            .map(|t| t.parse::<std::net::IpAddr>().map_err(|_| bad("turn_public_ip", format!("{t:?} is not an IP address"))))
            .transpose()?;
        let turn_allowed_peers = list("turn_allowed_peers")
            .iter()
            .map(|c| c.parse().map_err(|p: String| bad("turn_allowed_peers", p)))
            .collect::<Result<Vec<_>, _>>()?;
        let trusted_proxies = list("trusted_proxies")
            .iter()
            .map(|c| c.parse().map_err(|p: String| bad("trusted_proxies", p)))
            .collect::<Result<Vec<_>, _>>()?;
        let turn_urls = list("turn_urls");
        if let Some(u) = turn_urls.iter().find(|u| !(u.starts_with("stun:") || u.starts_with("turn:") || u.starts_with("turns:"))) {
            return Err(bad("turn_urls", format!("{u:?} must start with stun:, turn: or turns:")));
        }
        let pool_size = number("database_pool_size", 1)?;
        let store = crate::store::StoreOptions {
            pool_size: u32::try_from(pool_size).ok().filter(|n| *n <= 1000).ok_or_else(|| bad("database_pool_size", "at most 1000"))?,
            connect_timeout: std::time::Duration::from_millis(number("database_connect_timeout_ms", 100)?),
            query_timeout: std::time::Duration::from_millis(number("database_query_timeout_ms", 100)?),
        };
        Ok(Settings {
            listen,
            database_url,
            store,
            public_url,
            allowed_origins,
            trusted_proxies,
            tls,
            tls_self_signed,
            turn_listen,
            turn_listen_explicit: raw.get("turn_listen").is_some_and(|v| !v.trim().is_empty()),
            turn_tcp_listen,
            turn_tls_listen,
            turn_public_ip,
            turn_secret: get("turn_secret"),
            turn_allowed_peers,
            turn_urls,
            turn_credential_ttl_secs: number("turn_credential_ttl_secs", 2)?,
            ring_timeout_ms: number("ring_timeout_ms", 100)?,
            reconnect_grace_ms: number("reconnect_grace_ms", 100)?,
            session_ttl_secs: number("session_ttl_secs", 1)?,
            login_max_failures: u32::try_from(login_max_failures).map_err(|_| bad("login_max_failures", "too large"))?,
            login_lockout_secs: number("login_lockout_secs", 1)?,
            ws_ping_interval_ms: number("ws_ping_interval_ms", 10)?,
            ws_idle_timeout_ms: number("ws_idle_timeout_ms", 10)?,
            ws_abuse_close_ms: number("ws_abuse_close_ms", 10)?,
            ws_rate_per_sec: number("ws_rate_per_sec", 1)?,
            ws_rate_burst: number("ws_rate_burst", 1)?,
            ws_max_per_user: usize::try_from(number("ws_max_per_user", 1)?).map_err(|_| bad("ws_max_per_user", "too large"))?,
            ws_max_per_address: usize::try_from(number("ws_max_per_address", 1)?).map_err(|_| bad("ws_max_per_address", "too large"))?,
            register_per_hour: count("register_per_hour")?,
            chat_per_minute: count("chat_per_minute")?,
            chat_daily_max: count("chat_daily_max")?,
            invites_per_minute: count("invites_per_minute")?,
            call_reports_per_minute: count("call_reports_per_minute")?,
            ws_send_queue: usize::try_from(number("ws_send_queue", 8)?).map_err(|_| bad("ws_send_queue", "too large"))?,
            ws_send_stall_ms: number("ws_send_stall_ms", 10)?,
            ws_write_timeout_ms: number("ws_write_timeout_ms", 10)?,
            http_header_timeout_ms: number("http_header_timeout_ms", 10)?,
            http_idle_timeout_ms: number("http_idle_timeout_ms", 10)?,
            http_max_per_address: usize::try_from(number("http_max_per_address", 1)?).map_err(|_| bad("http_max_per_address", "too large"))?,
            turn_max_allocations_per_user: usize::try_from(number("turn_max_allocations_per_user", 1)?).map_err(|_| bad("turn_max_allocations_per_user", "too large"))?,
            directory_full_max: usize::try_from(number("directory_full_max", 0)?).map_err(|_| bad("directory_full_max", "too large"))?,
            shutdown_timeout_ms: number("shutdown_timeout_ms", 100)?,
            static_dir: get("static_dir").map(PathBuf::from),
            cluster: match get("redis_url") {
                None => None,
                Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                    let heartbeat = number("cluster_heartbeat_ms", 50)?;
                    let expiry = number("cluster_node_expiry_ms", 200)?;
                    if expiry < heartbeat * 2 {
                        return Err(bad("cluster_node_expiry_ms", "must be at least twice DUET_CLUSTER_HEARTBEAT_MS"));
                    }
                    let node = get("node_id").unwrap_or_else(|| {
                        let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
                        let host = if host.is_empty() { "duet".to_string() } else { host };
                        format!("{host}-{:04x}", rand::random::<u16>())
                    });
                    if node.is_empty() || node.len() > 64 || !node.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                        return Err(bad("node_id", format!("{node:?}: letters, digits, '-', '_' and '.', at most 64")));
                    }
                    Some(crate::cluster::ClusterSettings {
                        url,
                        prefix: get("redis_prefix").unwrap_or_else(|| "duet".into()),
                        node,
                        heartbeat: std::time::Duration::from_millis(heartbeat),
                        expiry: std::time::Duration::from_millis(expiry),
                    })
                }
                Some(url) => return Err(bad("redis_url", format!("{url:?} is not a redis:// or rediss:// URL"))),
            },
            otlp_endpoint: get("otlp_endpoint")
                .map(|u| if u.starts_with("http://") || u.starts_with("https://") { Ok(u) } else { Err(bad("otlp_endpoint", format!("{u:?} must be an http:// or https:// URL"))) })
                .transpose()?,
            admin_token: get("admin_token"),
        })
    }

    /// Whether this server speaks TLS itself.
    pub fn serves_tls(&self) -> bool {
        self.tls.is_some() || self.tls_self_signed
    }

    /// Whether browsers reach us over TLS, which makes the session cookie `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.serves_tls() || self.public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
    }
}

/// Checks an origin (`scheme://host[:port]`, no path) and returns it without a trailing slash.
fn parse_origin(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
        return Err(format!("{url:?} must be an origin like https://duet.example.com, with no path"));
    }
    Ok(url.to_ascii_lowercase())
}

/// The sample file shipped beside the README: every setting with its default, commented out.
pub fn sample_file() -> String {
    let mut out = String::from("# duet settings: flags of `duet serve` > DUET_* environment > this file > defaults.\n");
    for key in KEYS {
        out.push_str(&format!("\n# {} ({})\n", key.help, key.env));
        match key.default {
            Some(d) if d.parse::<u64>().is_ok() => out.push_str(&format!("# {} = {d}\n", key.name)),
            Some(d) => out.push_str(&format!("# {} = \"{d}\"\n", key.name)),
            None => out.push_str(&format!("# {} = \"\"\n", key.name)),
        }
    }
    out
}

/// The path of the sample file, relative to the repository root.
pub fn sample_path() -> PathBuf {
    PathBuf::from("duet.example.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&'static str, &str)]) -> Raw {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn defaults_are_those_of_the_protocol() {
        let s = Settings::from_raw(&Raw::new()).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url, "sqlite://data/duet.db");
        assert_eq!(s.public_url, None);
        assert_eq!(s.ring_timeout_ms, 30_000);
        assert_eq!(s.reconnect_grace_ms, 20_000);
        assert!(s.admin_token.is_none());
        assert_eq!(s.turn_max_allocations_per_user, crate::turn::MAX_ALLOCATIONS_PER_USER);
    }

    #[test]
    fn a_bad_value_names_the_setting_in_one_line() {
        let err = Settings::from_raw(&raw(&[("listen", "nowhere")])).unwrap_err().to_string();
        assert!(err.contains("DUET_LISTEN") && err.contains("nowhere") && !err.contains('\n'), "{err}");
        let err = Settings::from_raw(&raw(&[("ring_timeout_ms", "-5")])).unwrap_err().to_string();
        assert!(err.contains("DUET_RING_TIMEOUT_MS"), "{err}");
        let err = Settings::from_raw(&raw(&[("database_url", "oracle://x")])).unwrap_err().to_string();
        assert!(err.contains("DUET_DATABASE_URL"), "{err}");
        let err = Settings::from_raw(&raw(&[("public_url", "ftp://x")])).unwrap_err().to_string();
        assert!(err.contains("DUET_PUBLIC_URL"), "{err}");
    }

    #[test]
    fn command_line_wins_over_the_file() {
        let merged = merge(raw(&[("listen", "127.0.0.1:9000")]), raw(&[("listen", "127.0.0.1:7000"), ("ring_timeout_ms", "500")]));
        let s = Settings::from_raw(&merged).unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.ring_timeout_ms, 500);
    }

    #[test]
    fn the_shipped_sample_file_is_current_and_parses() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let shipped = std::fs::read_to_string(root.join(sample_path())).unwrap();
        assert_eq!(shipped, sample_file(), "regenerate duet.example.toml with `duet config-sample > duet.example.toml`");
        // Uncommented, the sample is a valid file with the defaults.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("duet.toml");
        let uncommented: String = shipped
            .lines()
            .filter(|l| l.starts_with("# ") && l.contains(" = ") && !l.ends_with("\"\""))
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        std::fs::write(&path, uncommented).unwrap();
        let s = Settings::from_raw(&read_file(&path).unwrap()).unwrap();
        assert_eq!(s.ring_timeout_ms, 30_000);
    }

    #[test]
    fn unknown_names_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("duet.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let err = read_file(&path).unwrap_err().to_string();
        assert!(err.contains("unknown setting `lisen`"), "{err}");
    }
}
