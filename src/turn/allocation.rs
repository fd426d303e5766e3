//! Allocations (RFC 8656 section 5): each one a relay socket of its own, its permissions and
//! channel bindings with their lifetimes, the task that carries peers' datagrams back to the
//! client, and its slot in the user's quota. The table sweeps expired state every second;
//! dropping an allocation stops its task, closes its socket and gives the slot back.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::task::AbortHandle;

use super::link::{FiveTuple, Link};
use super::policy::PeerPolicy;
use super::stats::{RelayStats, Slot};
use super::wire;

/// RFC 8656 section 9: permissions last 300 s, channel bindings 600 s.
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// A port reserved by EVEN-PORT's R bit waits this long for its RESERVATION-TOKEN (RFC 8656 §7.2
/// suggests 30 s).
pub const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);
/// Largest datagram a peer can send that is relayed whole.
const PEER_DATAGRAM: usize = 16 * 1024;

pub struct Allocation {
    pub five: FiveTuple,
    pub user: i64,
    /// The username that made it: later requests must use the same (441 otherwise).
    pub username: String,
    /// The relay address handed out (public IP, relay port).
    pub relay_addr: SocketAddr,
    pub link: Link,
    /// The Allocate that made it and the answer sent, for a retransmitted Allocate.
    pub made_by: [u8; 12],
    pub answer: Vec<u8>,
    socket: Arc<UdpSocket>,
    state: Mutex<State>,
    reader: Mutex<Option<AbortHandle>>,
    _slot: Slot,
}

struct State {
    expires: Instant,
    permissions: HashMap<IpAddr, Instant>,
    channels: HashMap<u16, (SocketAddr, Instant)>,
    by_peer: HashMap<SocketAddr, u16>,
}

/// Why a channel could not be bound.
pub struct ChannelConflict;

impl Allocation {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        five: FiveTuple,
        user: i64,
        username: String,
        relay_addr: SocketAddr,
        link: Link,
        made_by: [u8; 12],
        socket: UdpSocket,
        lifetime: Duration,
        slot: Slot,
    ) -> Self {
        let state = State { expires: Instant::now() + lifetime, permissions: HashMap::new(), channels: HashMap::new(), by_peer: HashMap::new() };
        Allocation {
            five,
            user,
            username,
            relay_addr,
            link,
            made_by,
            answer: Vec::new(),
            socket: Arc::new(socket),
            state: Mutex::new(state),
            reader: Mutex::new(None),
            _slot: slot,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn refresh(&self, lifetime: Duration) {
        self.state().expires = Instant::now() + lifetime;
    }

    /// Installs or refreshes a permission for a peer's IP (ports do not matter, RFC 8656 §9).
    pub fn permit(&self, ip: IpAddr) {
        self.state().permissions.insert(ip, Instant::now() + PERMISSION_LIFETIME);
    }

    pub fn permitted(&self, ip: IpAddr) -> bool {
        self.state().permissions.get(&ip).is_some_and(|t| *t > Instant::now())
    }

    /// Binds (or refreshes) `channel` to `peer`, and permits the peer: RFC 8656 §11.2 refuses a
    /// channel already bound to another peer, and a peer already bound to another channel.
    pub fn bind_channel(&self, channel: u16, peer: SocketAddr) -> Result<(), ChannelConflict> {
        let now = Instant::now();
        let mut s = self.state();
        if s.channels.get(&channel).is_some_and(|(p, _)| *p != peer) || s.by_peer.get(&peer).is_some_and(|c| *c != channel) {
            return Err(ChannelConflict);
        }
        s.channels.insert(channel, (peer, now + CHANNEL_LIFETIME));
        s.by_peer.insert(peer, channel);
        s.permissions.insert(peer.ip(), now + PERMISSION_LIFETIME);
        Ok(())
    }

    /// The peer a live channel is bound to.
    pub fn channel_peer(&self, channel: u16) -> Option<SocketAddr> {
        self.state().channels.get(&channel).filter(|(_, t)| *t > Instant::now()).map(|(p, _)| *p)
    }

    fn channel_for(&self, peer: SocketAddr) -> Option<u16> {
        let s = self.state();
        let channel = *s.by_peer.get(&peer)?;
        s.channels.get(&channel).filter(|(_, t)| *t > Instant::now()).map(|_| channel)
    }

    /// Drops expired permissions and channels; true when the allocation itself has expired.
    fn sweep(&self, now: Instant) -> bool {
        let mut s = self.state();
        s.permissions.retain(|_, t| *t > now);
        let gone: Vec<(u16, SocketAddr)> = s.channels.iter().filter(|(_, (_, t))| *t <= now).map(|(c, (p, _))| (*c, *p)).collect();
        for (channel, peer) in gone {
            s.channels.remove(&channel);
            s.by_peer.remove(&peer);
        }
        s.expires <= now
    }

    /// Sends a client's data to a peer it has permitted; false if it has not.
    pub async fn to_peer(&self, data: &[u8], peer: SocketAddr, stats: &RelayStats) -> bool {
        if !self.permitted(peer.ip()) {
            stats.denied_peer_packets.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if let Ok(n) = self.socket.send_to(data, peer).await {
            stats.relayed_bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        true
    }

    /// Starts carrying peers' datagrams to the client: as ChannelData on a bound channel, else as
    /// Data indications; only from permitted peers in allowed ranges.
    pub fn start_reader(self: &Arc<Self>, policy: Arc<PeerPolicy>, stats: Arc<RelayStats>) {
        let weak: Weak<Allocation> = Arc::downgrade(self);
        let socket = self.socket.clone();
        let stream = self.five.transport.is_stream();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; PEER_DATAGRAM];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else { return };
                let Some(alloc) = weak.upgrade() else { return };
                if !policy.permits(from.ip()) || !alloc.permitted(from.ip()) {
                    stats.denied_peer_packets.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                stats.relayed_bytes.fetch_add(n as u64, Ordering::Relaxed);
                let frame = match alloc.channel_for(from) {
                    Some(channel) => wire::channel_data(channel, &buf[..n], stream),
                    None => {
                        let tid: [u8; 12] = rand::random();
                        wire::indication(
                            stun::message::METHOD_DATA,
                            tid,
                            &[(stun::attributes::ATTR_XOR_PEER_ADDRESS, wire::xor_addr_value(from, &tid)), (stun::attributes::ATTR_DATA, buf[..n].to_vec())],
                        )
                    }
                };
                let link = alloc.link.clone();
                drop(alloc);
                link.relay(frame).await;
            }
        });
        *self.reader.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        if let Some(task) = self.reader.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

/// A port kept for a later Allocate with the RESERVATION-TOKEN handed out with it. It holds a
/// slot of its maker's quota, and one of their few reservations, until redeemed or expired: a
/// port held is a port held, whether an allocation uses it yet or not.
pub struct Reservation {
    socket: UdpSocket,
    made: Instant,
    _slots: (Slot, Slot),
}

/// Every allocation, by 5-tuple, and the reserved ports.
#[derive(Default)]
pub struct Allocations {
    map: Mutex<HashMap<FiveTuple, Arc<Allocation>>>,
    reservations: Mutex<HashMap<[u8; 8], Reservation>>,
}

impl Allocations {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<FiveTuple, Arc<Allocation>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, five: &FiveTuple) -> Option<Arc<Allocation>> {
        self.map().get(five).cloned()
    }

    pub fn insert(&self, alloc: Arc<Allocation>) {
        self.map().insert(alloc.five, alloc);
    }

    pub fn remove(&self, five: &FiveTuple) -> Option<Arc<Allocation>> {
        self.map().remove(five)
    }

    pub fn clear(&self) {
        let all: Vec<_> = self.map().drain().collect();
        drop(all);
        self.reservations.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Keeps `socket` for whoever presents the token returned; `slots` (a quota slot and a
    /// reservation slot of its maker) are held as long.
    pub fn reserve(&self, socket: UdpSocket, slots: (Slot, Slot)) -> [u8; 8] {
        let token: [u8; 8] = rand::random();
        self.reservations.lock().unwrap_or_else(|p| p.into_inner()).insert(token, Reservation { socket, made: Instant::now(), _slots: slots });
        token
    }

    /// Ports reserved now.
    pub fn reserved(&self) -> usize {
        self.reservations.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The socket a live token reserved.
    pub fn redeem(&self, token: &[u8]) -> Option<UdpSocket> {
        let token: [u8; 8] = token.try_into().ok()?;
        let r = self.reservations.lock().unwrap_or_else(|p| p.into_inner()).remove(&token)?;
        (r.made.elapsed() < RESERVATION_LIFETIME).then_some(r.socket)
        // The reservation's slots go back here; the allocation made with the port takes its own.
    }

    /// Expires allocations, permissions, channels and reservations.
    pub fn sweep(&self) {
        let now = Instant::now();
        let expired: Vec<Arc<Allocation>> = {
            let mut map = self.map();
            let gone: Vec<FiveTuple> = map.iter().filter(|(_, a)| a.sweep(now)).map(|(k, _)| *k).collect();
            gone.iter().filter_map(|k| map.remove(k)).collect()
        };
        for a in &expired {
            tracing::debug!(user.id = a.user, relay = %a.relay_addr, "TURN allocation expired");
        }
        drop(expired);
        self.reservations.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, r| r.made.elapsed() < RESERVATION_LIFETIME);
    }
}

/// A relay socket on `ip`: any port, or an even one, with the next port too when `reserve_next`
/// (EVEN-PORT, RFC 8656 §14.6). `None` when no such port could be had.
pub fn bind_relay(ip: IpAddr, even: bool, reserve_next: bool, dont_fragment: bool) -> Option<(UdpSocket, Option<UdpSocket>)> {
    let open = |port: u16| -> Option<UdpSocket> {
        let s = std::net::UdpSocket::bind(SocketAddr::new(ip, port)).ok()?;
        s.set_nonblocking(true).ok()?;
        if dont_fragment {
            set_dont_fragment(&s);
        }
        UdpSocket::from_std(s).ok()
    };
    if !even {
        return open(0).map(|s| (s, None));
    }
    // The kernel picks ports at random; an even one (with a free successor) turns up quickly.
    for _ in 0..64 {
        let first = open(0)?;
        let port = first.local_addr().ok()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if !reserve_next {
            return Some((first, None));
        }
        if let Some(next) = open(port + 1) {
            return Some((first, Some(next)));
        }
    }
    None
}

/// DONT-FRAGMENT: datagrams to peers leave with the DF bit set (RFC 8656 §14.8).
#[cfg(target_os = "linux")]
fn set_dont_fragment(socket: &std::net::UdpSocket) {
    use std::os::fd::AsRawFd;
    let (level, name, value) = if socket.local_addr().is_ok_and(|a| a.is_ipv4()) {
        (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_DO)
    } else {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_DO)
    };
    // SAFETY: a valid descriptor we own, and a c_int option value of the size given.
    let rc = unsafe {
        libc::setsockopt(socket.as_raw_fd(), level, name, (&value as *const libc::c_int).cast(), std::mem::size_of::<libc::c_int>() as libc::socklen_t)
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "could not set DF on a relay socket");
    }
}

#[cfg(not(target_os = "linux"))]
fn set_dont_fragment(_socket: &std::net::UdpSocket) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn even_ports_with_a_reserved_successor() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (a, next) = bind_relay(ip, true, true, true).unwrap();
        let port = a.local_addr().unwrap().port();
        assert_eq!(port % 2, 0);
        assert_eq!(next.unwrap().local_addr().unwrap().port(), port + 1);
        let (b, none) = bind_relay(ip, true, false, false).unwrap();
        assert_eq!(b.local_addr().unwrap().port() % 2, 0);
        assert!(none.is_none());
    }

    #[tokio::test]
    async fn reservations_are_redeemed_once_and_hold_their_slots_until_then() {
        let t = Allocations::default();
        let stats = RelayStats::new(3);
        let slots = (stats.take_slot(1).unwrap(), stats.take_reservation(1).unwrap());
        let token = t.reserve(UdpSocket::bind("127.0.0.1:0").await.unwrap(), slots);
        assert_eq!(stats.live_allocations(), 1, "a reservation counts against the quota");
        assert!(t.redeem(&[0u8; 8]).is_none());
        assert!(t.redeem(&token).is_some());
        assert_eq!(stats.live_allocations(), 0, "redeemed, its slot is back");
        assert!(t.redeem(&token).is_none(), "a token is good once");
    }
}
