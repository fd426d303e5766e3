//! Relay safety, as coturn does it: each allocation's relay socket is wrapped so it neither sends
//! to nor accepts from a peer in a denied range (loopback, private, link-local, multicast, …)
//! unless `DUET_TURN_ALLOWED_PEERS` allows it; and a user holds at most
//! [`super::MAX_ALLOCATIONS_PER_USER`] allocations. Counts feed the metrics.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use webrtc_util::Conn;

/// An IP network, `10.0.0.0/8` or `fd00::/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, prefix) = s.split_once('/').unwrap_or((s, ""));
        let net: IpAddr = ip.trim().parse().map_err(|_| format!("{s:?} is not an address or CIDR range"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() { max } else { prefix.trim().parse().map_err(|_| format!("{s:?} has a bad prefix length"))? };
        if prefix > max {
            return Err(format!("{s:?} has a prefix longer than {max}"));
        }
        Ok(Cidr { net, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address is judged as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Ranges a relay must not reach by default (coturn's `denied-peer-ip` advice).
const DENIED: &[&str] = &[
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4", "::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8",
];

#[derive(Clone, Debug)]
pub struct PeerPolicy {
    denied: Vec<Cidr>,
    allowed: Vec<Cidr>,
}

impl PeerPolicy {
    pub fn new(allowed: Vec<Cidr>) -> Self {
        let denied = DENIED.iter().filter_map(|c| c.parse().ok()).collect();
        PeerPolicy { denied, allowed }
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allowed.iter().any(|c| c.contains(ip)) || !self.denied.iter().any(|c| c.contains(ip))
    }
}

/// What the relay has done, for metrics and for telling "TURN refused you" from other failures.
#[derive(Default)]
pub struct RelayStats {
    /// Allocations ever made.
    pub allocations_total: AtomicU64,
    /// Bytes relayed, both directions.
    pub relayed_bytes: AtomicU64,
    /// Datagrams dropped because their peer is in a denied range.
    pub denied_peer_packets: AtomicU64,
    /// Allocations refused because the user was at the limit.
    pub allocations_refused: AtomicU64,
    /// Credential refusals, in all.
    pub auth_failures_total: AtomicU64,
    /// The user of the request being handled (the relay handles one at a time per listener).
    current_user: Mutex<Option<i64>>,
    /// Live allocations per user, and which user owns each relay address.
    live: Mutex<Live>,
    /// The last time (ms) the relay refused each user's credentials.
    auth_failed_at: Mutex<HashMap<i64, i64>>,
    /// The last time (ms) each user allocated.
    allocated_at: Mutex<HashMap<i64, i64>>,
}

#[derive(Default)]
struct Live {
    per_user: HashMap<i64, usize>,
    by_relay: HashMap<SocketAddr, i64>,
}

impl RelayStats {
    pub fn authenticated(&self, user: i64) {
        *self.current_user.lock().unwrap_or_else(|p| p.into_inner()) = Some(user);
    }

    pub fn auth_failed(&self, user: Option<i64>) {
        self.auth_failures_total.fetch_add(1, Ordering::Relaxed);
        if let Some(u) = user {
            self.auth_failed_at.lock().unwrap_or_else(|p| p.into_inner()).insert(u, crate::store::now_ms());
        }
    }

    /// When the relay last refused this user's credentials, if ever.
    pub fn last_auth_failure(&self, user: i64) -> Option<i64> {
        self.auth_failed_at.lock().unwrap_or_else(|p| p.into_inner()).get(&user).copied()
    }

    /// When this user last allocated, if ever.
    pub fn last_allocation(&self, user: i64) -> Option<i64> {
        self.allocated_at.lock().unwrap_or_else(|p| p.into_inner()).get(&user).copied()
    }

    /// Allocations live now.
    pub fn live_allocations(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).by_relay.len()
    }
}

/// Makes each allocation's relay socket, bound on the listen address, advertised on the public
/// address, wrapped by the peer policy.
pub struct Generator {
    bind_ip: IpAddr,
    public_ip: IpAddr,
    policy: Arc<PeerPolicy>,
    stats: Arc<RelayStats>,
}

impl Generator {
    pub fn new(bind_ip: IpAddr, public_ip: IpAddr, policy: PeerPolicy, stats: Arc<RelayStats>) -> Self {
        Generator { bind_ip, public_ip, policy: Arc::new(policy), stats }
    }
}

#[async_trait]
impl turn::relay::RelayAddressGenerator for Generator {
    fn validate(&self) -> Result<(), turn::Error> {
        Ok(())
    }

    async fn allocate_conn(&self, _use_ipv4: bool, requested_port: u16) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        let user = self.stats.current_user.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(user) = user else { return Err(turn::Error::Other("allocation without an authenticated user".into())) };
        {
            let live = self.stats.live.lock().unwrap_or_else(|p| p.into_inner());
            if live.per_user.get(&user).copied().unwrap_or(0) >= super::MAX_ALLOCATIONS_PER_USER {
                self.stats.allocations_refused.fetch_add(1, Ordering::Relaxed);
                tracing::info!(user.id = user, "TURN allocation refused: the user is at the limit");
                return Err(turn::Error::Other("allocation quota reached".into()));
            }
        }
        let socket = tokio::net::UdpSocket::bind(SocketAddr::new(self.bind_ip, requested_port))
            .await
            .map_err(|e| turn::Error::Other(e.to_string()))?;
        let mut relay_addr = socket.local_addr().map_err(|e| turn::Error::Other(e.to_string()))?;
        relay_addr.set_ip(self.public_ip);
        {
            let mut live = self.stats.live.lock().unwrap_or_else(|p| p.into_inner());
            *live.per_user.entry(user).or_insert(0) += 1;
            live.by_relay.insert(relay_addr, user);
        }
        self.stats.allocations_total.fetch_add(1, Ordering::Relaxed);
        self.stats.allocated_at.lock().unwrap_or_else(|p| p.into_inner()).insert(user, crate::store::now_ms());
        let conn = Filtered { inner: socket, policy: self.policy.clone(), stats: self.stats.clone() };
        Ok((Arc::new(conn), relay_addr))
    }
}

/// Counts allocations down as the relay closes them.
pub async fn count_closes(mut closed: tokio::sync::mpsc::Receiver<turn::allocation::AllocationInfo>, stats: Arc<RelayStats>) {
    while let Some(info) = closed.recv().await {
        let mut live = stats.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(user) = live.by_relay.remove(&info.relay_addr) {
            if let Some(n) = live.per_user.get_mut(&user) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    live.per_user.remove(&user);
                }
            }
        }
    }
}

/// A relay socket that drops traffic to and from denied peers.
struct Filtered {
    inner: tokio::net::UdpSocket,
    policy: Arc<PeerPolicy>,
    stats: Arc<RelayStats>,
}

#[async_trait]
impl Conn for Filtered {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        Conn::connect(&self.inner, addr).await
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = Conn::recv_from(&self.inner, buf).await?;
            if self.policy.permits(from.ip()) {
                self.stats.relayed_bytes.fetch_add(n as u64, Ordering::Relaxed);
                return Ok((n, from));
            }
            self.stats.denied_peer_packets.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        Conn::send(&self.inner, buf).await
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        if !self.policy.permits(target.ip()) {
            self.stats.denied_peer_packets.fetch_add(1, Ordering::Relaxed);
            // Dropped, as a firewall would: the sender learns nothing about the inside.
            return Ok(buf.len());
        }
        let n = Conn::send_to(&self.inner, buf, target).await?;
        self.stats.relayed_bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Conn::local_addr(&self.inner)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        Conn::remote_addr(&self.inner)
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        Conn::close(&self.inner).await
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_ranges_and_exceptions() {
        let p = PeerPolicy::new(vec![]);
        for ip in ["127.0.0.1", "10.1.2.3", "192.168.1.1", "172.20.0.1", "169.254.1.1", "224.0.0.1", "::1", "fe80::1", "fd00::1", "::ffff:10.0.0.1", "0.0.0.0"] {
            assert!(!p.permits(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2001:4860::8888", "172.32.0.1"] {
            assert!(p.permits(ip.parse().unwrap()), "{ip}");
        }
        let p = PeerPolicy::new(vec!["127.0.0.0/8".parse().unwrap(), "10.5.0.0/16".parse().unwrap()]);
        assert!(p.permits("127.0.0.1".parse().unwrap()));
        assert!(p.permits("10.5.9.9".parse().unwrap()));
        assert!(!p.permits("10.6.0.1".parse().unwrap()));
        assert!("300.1.1.1/8".parse::<Cidr>().is_err());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
    }
}
