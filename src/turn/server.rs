//! The relay's request handling, the same whichever transport a message came on: Binding
//! (RFC 8489), and TURN's Allocate, Refresh, CreatePermission, ChannelBind, Send and ChannelData
//! (RFC 8656) with long-term credentials. Every refusal is an error response a client can read,
//! and is counted by reason.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use stun::attributes::*;
use stun::message::{CLASS_ERROR_RESPONSE, CLASS_INDICATION, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, Message};
use stun::message::{METHOD_ALLOCATE, METHOD_BINDING, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_REFRESH, METHOD_SEND};

use super::allocation::{Allocation, Allocations, bind_relay};
use super::credentials::{Credentials, Nonces};
use super::link::{FiveTuple, Link};
use super::policy::PeerPolicy;
use super::stats::{RelayStats, Refusal};
use super::wire::{self, Packet};

/// RFC 8656 section 7.2: 10 minutes unless asked for more, at most an hour (coturn's default).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// How long a nonce stays good (coturn's `stale-nonce` default).
pub const NONCE_LIFETIME: Duration = Duration::from_secs(600);
/// Channel numbers: RFC 8656 section 12 narrowed them to 0x4000-0x4FFF, but RFC 5766's
/// 0x4000-0x7FFF is what deployed clients (coturn's own among them) still pick, and ChannelData's
/// framing tells them apart from STUN either way; so the wider range is accepted, as coturn does.
const CHANNELS: std::ops::RangeInclusive<u16> = 0x4000..=0x7FFF;
/// REQUESTED-TRANSPORT for UDP, the one relay transport offered.
const UDP: u8 = 17;

/// Comprehension-required attributes (below 0x8000) the relay understands; any other in a
/// request is answered 420 (RFC 8489 section 6.3.1).
const KNOWN: &[AttrType] = &[
    ATTR_MAPPED_ADDRESS,
    ATTR_CHANGE_REQUEST,
    ATTR_USERNAME,
    ATTR_MESSAGE_INTEGRITY,
    ATTR_ERROR_CODE,
    ATTR_UNKNOWN_ATTRIBUTES,
    ATTR_CHANNEL_NUMBER,
    ATTR_LIFETIME,
    ATTR_XOR_PEER_ADDRESS,
    ATTR_DATA,
    ATTR_REALM,
    ATTR_NONCE,
    ATTR_XOR_RELAYED_ADDRESS,
    ATTR_REQUESTED_ADDRESS_FAMILY,
    ATTR_EVEN_PORT,
    ATTR_REQUESTED_TRANSPORT,
    ATTR_DONT_FRAGMENT,
    ATTR_XORMAPPED_ADDRESS,
    ATTR_RESERVATION_TOKEN,
    ATTR_PRIORITY,
    ATTR_USE_CANDIDATE,
    ATTR_PADDING,
];

/// A request that passed the long-term credential check.
struct Authed {
    user: i64,
    username: String,
    key: Vec<u8>,
}

/// What a handler answers: success attributes, or a refusal and its reason phrase.
type Outcome = Result<Vec<(AttrType, Vec<u8>)>, (Refusal, String)>;

pub struct Server {
    pub realm: String,
    credentials: Credentials,
    nonces: Nonces,
    policy: Arc<PeerPolicy>,
    pub stats: Arc<RelayStats>,
    pub allocations: Allocations,
    /// Where relay sockets are bound, and the address they are advertised on.
    bind_ip: IpAddr,
    public_ip: IpAddr,
}

impl Server {
    pub fn new(realm: &str, credentials: Credentials, policy: PeerPolicy, bind_ip: IpAddr, public_ip: IpAddr, stats: Arc<RelayStats>) -> Self {
        Server {
            realm: realm.to_string(),
            credentials,
            nonces: Nonces::new(NONCE_LIFETIME),
            policy: Arc::new(policy),
            stats,
            allocations: Allocations::default(),
            bind_ip,
            public_ip,
        }
    }

    /// One datagram or stream frame from a client.
    pub async fn handle(&self, packet: &[u8], five: FiveTuple, link: &Link) {
        match wire::classify(packet) {
            Some(Packet::Stun(bytes)) => self.stun(bytes, five, link).await,
            Some(Packet::ChannelData { channel, data }) => self.channel_data(channel, data, five).await,
            None => {}
        }
    }

    async fn stun(&self, bytes: &[u8], five: FiveTuple, link: &Link) {
        // Not STUN (a wrong FINGERPRINT included, RFC 8489 section 7.3): dropped.
        let Some(mut msg) = wire::decode(bytes) else { return };
        if msg.typ.class == CLASS_REQUEST {
            let answer = self.request(&mut msg, five, link);
            link.answer(answer).await;
        } else if msg.typ.class == CLASS_INDICATION && msg.typ.method == METHOD_SEND {
            self.send_indication(&msg, five).await;
        }
    }

    fn request(&self, msg: &mut Message, five: FiveTuple, link: &Link) -> Vec<u8> {
        let method = msg.typ.method;
        if method == METHOD_BINDING {
            let outcome = match unknown(msg) {
                Some(list) => return self.unknown_attributes(msg, &list, None),
                None => self.binding(msg, five),
            };
            return self.reply(msg, outcome, None);
        }
        if ![METHOD_ALLOCATE, METHOD_REFRESH, METHOD_CREATE_PERMISSION, METHOD_CHANNEL_BIND].contains(&method) {
            return self.reply(msg, Err((Refusal::BadRequest, format!("method {method} is not served here"))), None);
        }
        let authed = match self.authenticate(msg, five) {
            Ok(a) => a,
            Err(answer) => return answer,
        };
        if let Some(list) = unknown(msg) {
            return self.unknown_attributes(msg, &list, Some(&authed.key));
        }
        let outcome = match method {
            m if m == METHOD_ALLOCATE => return self.allocate(msg, five, link, &authed),
            m if m == METHOD_REFRESH => self.refresh(msg, five, &authed),
            m if m == METHOD_CREATE_PERMISSION => self.create_permission(msg, five, &authed),
            _ => self.channel_bind(msg, five, &authed),
        };
        self.reply(msg, outcome, Some(&authed.key))
    }

    /// The answer for an outcome; refusals are counted.
    fn reply(&self, msg: &Message, outcome: Outcome, key: Option<&[u8]>) -> Vec<u8> {
        match outcome {
            Ok(attrs) => wire::answer(msg, CLASS_SUCCESS_RESPONSE, &attrs, key),
            Err((why, text)) => {
                self.stats.refused(why);
                let (code, _) = why.code();
                tracing::debug!(code, reason = %text, "TURN request refused");
                wire::answer(msg, CLASS_ERROR_RESPONSE, &[(ATTR_ERROR_CODE, wire::error_code_value(code, &text))], key)
            }
        }
    }

    fn unknown_attributes(&self, msg: &Message, list: &[AttrType], key: Option<&[u8]>) -> Vec<u8> {
        self.stats.refused(Refusal::UnknownAttribute);
        let values: Vec<u8> = list.iter().flat_map(|t| t.value().to_be_bytes()).collect();
        let attrs = [(ATTR_ERROR_CODE, wire::error_code_value(420, "Unknown Attribute")), (ATTR_UNKNOWN_ATTRIBUTES, values)];
        wire::answer(msg, CLASS_ERROR_RESPONSE, &attrs, key)
    }

    /// A 401 or 438 with the realm and a fresh nonce, so the client can (re)try.
    fn challenge(&self, msg: &Message, why: Refusal, text: &str, client: IpAddr) -> Vec<u8> {
        self.stats.refused(why);
        let (code, _) = why.code();
        let attrs = [
            (ATTR_ERROR_CODE, wire::error_code_value(code, text)),
            (ATTR_REALM, self.realm.as_bytes().to_vec()),
            (ATTR_NONCE, self.nonces.issue(client).into_bytes()),
        ];
        wire::answer(msg, CLASS_ERROR_RESPONSE, &attrs, None)
    }

    /// RFC 8489 section 9.2.4: the long-term credential mechanism, with TURN REST usernames.
    fn authenticate(&self, msg: &mut Message, five: FiveTuple) -> Result<Authed, Vec<u8>> {
        let client = five.client.ip();
        if !msg.contains(ATTR_MESSAGE_INTEGRITY) {
            return Err(self.challenge(msg, Refusal::NoCredentials, "Unauthorized", client));
        }
        let text = |t: AttrType| msg.get(t).ok().and_then(|v| String::from_utf8(v).ok());
        let (Some(username), Some(realm), Some(nonce)) = (text(ATTR_USERNAME), text(ATTR_REALM), text(ATTR_NONCE)) else {
            return Err(self.reply(msg, Err((Refusal::BadRequest, "USERNAME, REALM and NONCE go with MESSAGE-INTEGRITY".into())), None));
        };
        if !self.nonces.valid(&nonce, client) {
            return Err(self.challenge(msg, Refusal::StaleNonce, "Stale Nonce", client));
        }
        let named = username.split_once(':').and_then(|(_, u)| u.parse::<i64>().ok());
        // An allocation outlives the credentials it was made with: its client keeps refreshing
        // it, its permissions and channels with them, and a relayed call longer than the TTL
        // must not break. New allocations need unexpired credentials.
        let own_allocation = msg.typ.method != METHOD_ALLOCATE && self.allocations.get(&five).is_some_and(|a| a.username == username);
        let key = self.credentials.key(&username, &self.realm);
        let signed = realm == self.realm && stun::integrity::MessageIntegrity(key.clone()).check(msg).is_ok();
        let Some(user) = self.credentials.check(&username).or(named.filter(|_| own_allocation)) else {
            // Only a username this server issued (the signature proves it) is put down to its
            // user, as credentials that expired: nothing an unauthenticated request claims is
            // kept, nor can it mark another user's call.
            self.stats.auth_failed(named.filter(|_| signed));
            tracing::debug!(%username, client = %five.client, "TURN credentials refused (malformed or expired)");
            return Err(self.challenge(msg, Refusal::BadCredentials, "Unauthorized: expired or malformed username", client));
        };
        if !signed {
            self.stats.auth_failed(None);
            tracing::debug!(%username, client = %five.client, "TURN credentials refused (wrong password or realm)");
            return Err(self.challenge(msg, Refusal::BadCredentials, "Unauthorized: wrong credentials", client));
        }
        Ok(Authed { user, username, key })
    }

    fn binding(&self, msg: &Message, five: FiveTuple) -> Outcome {
        // XOR-MAPPED-ADDRESS for RFC 8489 clients, MAPPED-ADDRESS for RFC 3489 ones.
        Ok(vec![(ATTR_XORMAPPED_ADDRESS, wire::xor_addr_value(five.client, &msg.transaction_id.0)), (ATTR_MAPPED_ADDRESS, wire::plain_addr_value(five.client))])
    }

    /// The allocation on this 5-tuple, made by this user (437, 441 otherwise).
    fn existing(&self, five: &FiveTuple, authed: &Authed) -> Result<Arc<Allocation>, (Refusal, String)> {
        let alloc = self.allocations.get(five).ok_or((Refusal::Mismatch, "Allocation Mismatch: no allocation on this 5-tuple".to_string()))?;
        if alloc.username != authed.username {
            return Err((Refusal::WrongCredentials, "Wrong Credentials: the allocation was made with other credentials".into()));
        }
        Ok(alloc)
    }

    /// RFC 8656 section 7.2.
    fn allocate(&self, msg: &Message, five: FiveTuple, link: &Link, authed: &Authed) -> Vec<u8> {
        if let Some(alloc) = self.allocations.get(&five) {
            if alloc.username != authed.username {
                return self.reply(msg, Err((Refusal::WrongCredentials, "Wrong Credentials".into())), Some(&authed.key));
            }
            if alloc.made_by == msg.transaction_id.0 {
                // A retransmission: the same answer again.
                return alloc.answer.clone();
            }
            return self.reply(msg, Err((Refusal::Mismatch, "Allocation Mismatch: this 5-tuple already has an allocation".into())), Some(&authed.key));
        }
        match self.make_allocation(msg, five, link, authed) {
            Ok(answer) => answer,
            Err(refusal) => self.reply(msg, Err(refusal), Some(&authed.key)),
        }
    }

    fn make_allocation(&self, msg: &Message, five: FiveTuple, link: &Link, authed: &Authed) -> Result<Vec<u8>, (Refusal, String)> {
        let bad = |text: &str| (Refusal::BadRequest, text.to_string());
        let transport = msg.get(ATTR_REQUESTED_TRANSPORT).map_err(|_| bad("Bad Request: REQUESTED-TRANSPORT is missing"))?;
        match transport.first() {
            Some(&UDP) if transport.len() == 4 => {}
            Some(_) if transport.len() == 4 => {
                return Err((Refusal::UnsupportedTransport, "Unsupported Transport Protocol: the relay allocates UDP only".into()));
            }
            _ => return Err(bad("Bad Request: malformed REQUESTED-TRANSPORT")),
        }
        let dont_fragment = msg.contains(ATTR_DONT_FRAGMENT);
        let token = msg.get(ATTR_RESERVATION_TOKEN).ok();
        let even = msg.get(ATTR_EVEN_PORT).ok();
        let family = msg.get(ATTR_REQUESTED_ADDRESS_FAMILY).ok();
        if token.is_some() && (even.is_some() || family.is_some()) {
            return Err(bad("Bad Request: RESERVATION-TOKEN goes with neither EVEN-PORT nor REQUESTED-ADDRESS-FAMILY"));
        }
        if token.as_ref().is_some_and(|t| t.len() != 8) {
            return Err(bad("Bad Request: malformed RESERVATION-TOKEN"));
        }
        if even.as_ref().is_some_and(|e| e.len() != 1) {
            return Err(bad("Bad Request: malformed EVEN-PORT"));
        }
        if let Some(f) = family {
            let wanted_v4 = match f.first() {
                Some(0x01) => true,
                Some(0x02) => false,
                _ => return Err((Refusal::AddressFamily, "Address Family not Supported".into())),
            };
            if wanted_v4 != self.public_ip.is_ipv4() {
                return Err((Refusal::AddressFamily, "Address Family not Supported: the relay serves the other family".into()));
            }
        }
        let quota = || (Refusal::Quota, format!("Allocation Quota Reached: {} allocations and reserved ports at once", self.stats.max_per_user()));
        let Some(slot) = self.stats.take_slot(authed.user) else {
            tracing::info!(user.id = authed.user, "TURN allocation refused: the user is at the quota");
            return Err(quota());
        };
        // A port reserved beside this one holds a quota slot of its own, and one of the user's
        // few reservations, taken before any port is bound.
        let reserve_next = token.is_none() && even.as_ref().is_some_and(|e| e[0] & 0x80 != 0);
        let reservation_slots = match reserve_next {
            true => match (self.stats.take_slot(authed.user), self.stats.take_reservation(authed.user)) {
                (Some(a), Some(b)) => Some((a, b)),
                _ => {
                    tracing::info!(user.id = authed.user, "TURN reservation refused: the user is at the quota");
                    return Err(quota());
                }
            },
            false => None,
        };
        // From here a refusal drops the slots, so a failed Allocate costs no quota.
        let (socket, reserve) = match &token {
            Some(t) => {
                let s = self.allocations.redeem(t).ok_or((Refusal::Capacity, "Insufficient Capacity: the reservation is unknown or expired".to_string()))?;
                (s, None)
            }
            None => bind_relay(self.bind_ip, even.is_some(), reserve_next, dont_fragment)
                .ok_or((Refusal::Capacity, "Insufficient Capacity: no relay port could be had".to_string()))?,
        };
        let port = socket.local_addr().map_err(|_| (Refusal::Capacity, "Insufficient Capacity".to_string()))?.port();
        let relay_addr = SocketAddr::new(self.public_ip, port);
        let lifetime = desired_lifetime(msg).unwrap_or(DEFAULT_LIFETIME);
        let tid = msg.transaction_id.0;
        let mut attrs = vec![
            (ATTR_XOR_RELAYED_ADDRESS, wire::xor_addr_value(relay_addr, &tid)),
            (ATTR_LIFETIME, (lifetime.as_secs() as u32).to_be_bytes().to_vec()),
        ];
        if let (Some(next), Some(slots)) = (reserve, reservation_slots) {
            attrs.push((ATTR_RESERVATION_TOKEN, self.allocations.reserve(next, slots).to_vec()));
        }
        attrs.push((ATTR_XORMAPPED_ADDRESS, wire::xor_addr_value(five.client, &tid)));
        let answer = wire::answer(msg, CLASS_SUCCESS_RESPONSE, &attrs, Some(&authed.key));
        self.stats.allocated(&slot);
        let mut alloc = Allocation::new(five, authed.user, authed.username.clone(), relay_addr, link.clone(), tid, socket, lifetime, slot);
        alloc.answer = answer.clone();
        let alloc = Arc::new(alloc);
        alloc.start_reader(self.policy.clone(), self.stats.clone());
        self.allocations.insert(alloc);
        tracing::debug!(user.id = authed.user, relay = %relay_addr, transport = five.transport.label(), "TURN allocation made");
        Ok(answer)
    }

    /// RFC 8656 section 7.3; a lifetime of 0 deletes the allocation.
    fn refresh(&self, msg: &Message, five: FiveTuple, authed: &Authed) -> Outcome {
        let alloc = self.existing(&five, authed)?;
        if let Ok(f) = msg.get(ATTR_REQUESTED_ADDRESS_FAMILY) {
            if (f.first() == Some(&0x01)) != alloc.relay_addr.is_ipv4() {
                return Err((Refusal::PeerAddressFamily, "Peer Address Family Mismatch".into()));
            }
        }
        let lifetime = match desired_lifetime(msg) {
            Some(l) if l.is_zero() => {
                self.allocations.remove(&five);
                Duration::ZERO
            }
            l => {
                let l = l.unwrap_or(DEFAULT_LIFETIME);
                alloc.refresh(l);
                l
            }
        };
        Ok(vec![(ATTR_LIFETIME, (lifetime.as_secs() as u32).to_be_bytes().to_vec())])
    }

    /// Peers named in XOR-PEER-ADDRESS, each checked against the relay's family and policy.
    fn peers(&self, msg: &Message, alloc: &Allocation) -> Result<Vec<SocketAddr>, (Refusal, String)> {
        let mut peers = Vec::new();
        for value in wire::all(msg, ATTR_XOR_PEER_ADDRESS) {
            let peer = wire::xor_addr(value, &msg.transaction_id.0).ok_or((Refusal::BadRequest, "Bad Request: malformed XOR-PEER-ADDRESS".to_string()))?;
            if peer.is_ipv4() != alloc.relay_addr.is_ipv4() {
                return Err((Refusal::PeerAddressFamily, "Peer Address Family Mismatch".into()));
            }
            if !self.policy.permits(peer.ip()) {
                tracing::info!(user.id = alloc.user, peer = %peer.ip(), "TURN peer refused: a denied range");
                return Err((Refusal::ForbiddenPeer, format!("Forbidden: the relay does not reach {}", peer.ip())));
            }
            peers.push(peer);
        }
        if peers.is_empty() {
            return Err((Refusal::BadRequest, "Bad Request: XOR-PEER-ADDRESS is missing".into()));
        }
        Ok(peers)
    }

    /// RFC 8656 section 10: all peers are permitted, or none is.
    fn create_permission(&self, msg: &Message, five: FiveTuple, authed: &Authed) -> Outcome {
        let alloc = self.existing(&five, authed)?;
        for peer in self.peers(msg, &alloc)? {
            alloc.permit(peer.ip());
        }
        Ok(Vec::new())
    }

    /// RFC 8656 section 12.
    fn channel_bind(&self, msg: &Message, five: FiveTuple, authed: &Authed) -> Outcome {
        let alloc = self.existing(&five, authed)?;
        let channel = match msg.get(ATTR_CHANNEL_NUMBER) {
            Ok(v) if v.len() == 4 => u16::from_be_bytes([v[0], v[1]]),
            _ => return Err((Refusal::BadRequest, "Bad Request: CHANNEL-NUMBER is missing".into())),
        };
        if !CHANNELS.contains(&channel) {
            return Err((Refusal::BadRequest, format!("Bad Request: channel {channel:#06x} is outside 0x4000-0x7FFF")));
        }
        let peers = self.peers(msg, &alloc)?;
        alloc.bind_channel(channel, peers[0]).map_err(|_| (Refusal::BadRequest, "Bad Request: the channel or the peer is bound already".to_string()))?;
        Ok(Vec::new())
    }

    /// RFC 8656 section 11.2: relayed if the peer is permitted, else silently dropped.
    async fn send_indication(&self, msg: &Message, five: FiveTuple) {
        let Some(alloc) = self.allocations.get(&five) else { return };
        let Some(peer) = msg.get(ATTR_XOR_PEER_ADDRESS).ok().and_then(|v| wire::xor_addr(&v, &msg.transaction_id.0)) else { return };
        let Ok(data) = msg.get(ATTR_DATA) else { return };
        if self.policy.permits(peer.ip()) {
            alloc.to_peer(&data, peer, &self.stats).await;
        }
    }

    /// RFC 8656 section 12.5: data on a bound channel goes to its peer.
    async fn channel_data(&self, channel: u16, data: &[u8], five: FiveTuple) {
        let Some(alloc) = self.allocations.get(&five) else { return };
        if let Some(peer) = alloc.channel_peer(channel) {
            alloc.to_peer(data, peer, &self.stats).await;
        }
    }
}

/// The unknown comprehension-required attributes of a request, if any.
fn unknown(msg: &Message) -> Option<Vec<AttrType>> {
    let mut list: Vec<AttrType> = msg.attributes.0.iter().map(|a| a.typ).filter(|t| t.required() && !KNOWN.contains(t)).collect();
    // RFC 5780's CHANGE-REQUEST asks for answers from another address, which this relay has not.
    if msg.get(ATTR_CHANGE_REQUEST).is_ok_and(|v| v.iter().any(|b| *b != 0)) {
        list.push(ATTR_CHANGE_REQUEST);
    }
    list.dedup();
    (!list.is_empty()).then_some(list)
}

/// The lifetime a request asks for, bounded as RFC 8656 section 7.2 says; `None` when it asks
/// for none, zero when it asks for zero.
fn desired_lifetime(msg: &Message) -> Option<Duration> {
    let v = msg.get(ATTR_LIFETIME).ok().filter(|v| v.len() == 4)?;
    let asked = Duration::from_secs(u64::from(u32::from_be_bytes([v[0], v[1], v[2], v[3]])));
    Some(if asked.is_zero() { asked } else { asked.min(MAX_LIFETIME).max(DEFAULT_LIFETIME) })
}

#[cfg(test)]
mod tests;
