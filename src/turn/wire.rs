//! The bytes of STUN (RFC 8489) and TURN (RFC 8656) on the wire: telling STUN messages from
//! ChannelData, framing them on a stream, XOR-encoded addresses, and building answers with
//! MESSAGE-INTEGRITY and FINGERPRINT. Message parsing itself is the `stun` crate's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use stun::attributes::AttrType;
use stun::message::{MAGIC_COOKIE, Message, MessageClass, MessageType, Setter};

/// TURN attributes the `stun` crate knows no constant for.
pub const ATTR_ADDITIONAL_ADDRESS_FAMILY: AttrType = AttrType(0x8000);
pub const ATTR_ICMP: AttrType = AttrType(0x8004);

/// The server's name in SOFTWARE.
pub const SOFTWARE: &str = concat!("duet ", env!("CARGO_PKG_VERSION"));

/// What one datagram, or one frame of a stream, holds.
pub enum Packet<'a> {
    Stun(&'a [u8]),
    ChannelData { channel: u16, data: &'a [u8] },
}

/// Classifies a whole datagram or frame; `None` for anything else (dropped unanswered).
pub fn classify(buf: &[u8]) -> Option<Packet<'_>> {
    match buf.first()? >> 6 {
        0b00 if buf.len() >= 20 => {
            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            let cookie = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
            (cookie == MAGIC_COOKIE && len % 4 == 0 && buf.len() >= 20 + len).then(|| Packet::Stun(&buf[..20 + len]))
        }
        0b01 if buf.len() >= 4 => {
            let channel = u16::from_be_bytes([buf[0], buf[1]]);
            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            (buf.len() >= 4 + len).then(|| Packet::ChannelData { channel, data: &buf[4..4 + len] })
        }
        _ => None,
    }
}

/// Decodes one STUN message as RFC 8489 reads it, or `None` for anything that is not STUN. A
/// FINGERPRINT must be right (section 7.3) and last. Attributes after MESSAGE-INTEGRITY are
/// ignored (section 14.5): the message is cut right after it, so nothing an on-path attacker
/// appends (and re-fingerprints, which needs no key) is ever read, and the integrity check sees
/// the length the sender signed.
pub fn decode(bytes: &[u8]) -> Option<Message> {
    let mut msg = Message::new();
    msg.raw = bytes.to_vec();
    msg.decode().ok()?;
    if msg.contains(stun::attributes::ATTR_FINGERPRINT) && stun::fingerprint::FINGERPRINT.check(&msg).is_err() {
        return None;
    }
    let mut end = 20;
    for a in &msg.attributes.0 {
        end += 4 + usize::from(a.length).div_ceil(4) * 4;
        if a.typ == stun::attributes::ATTR_MESSAGE_INTEGRITY {
            if end == bytes.len() {
                return Some(msg);
            }
            let mut cut = Message::new();
            cut.raw = bytes.get(..end)?.to_vec();
            let length = u16::try_from(end - 20).ok()?.to_be_bytes();
            cut.raw[2..4].copy_from_slice(&length);
            cut.decode().ok()?;
            return Some(cut);
        }
    }
    Some(msg)
}

/// On a stream (TCP, TLS): how many bytes the frame that starts with `head` (its first 4 bytes)
/// takes, padding included (RFC 8656 section 12.5: ChannelData is padded to 4 over streams);
/// `None` when the stream is not STUN or ChannelData.
pub fn frame_len(head: [u8; 4]) -> Option<usize> {
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    match head[0] >> 6 {
        0b00 => (len % 4 == 0).then_some(20 + len),
        0b01 => Some(4 + len.div_ceil(4) * 4),
        _ => None,
    }
}

/// A ChannelData message; `pad` for streams.
pub fn channel_data(channel: u16, data: &[u8], pad: bool) -> Vec<u8> {
    let total = if pad { 4 + data.len().div_ceil(4) * 4 } else { 4 + data.len() };
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out.resize(total, 0);
    out
}

/// Decodes an XOR-MAPPED-ADDRESS-style value (also XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS).
pub fn xor_addr(value: &[u8], transaction: &[u8; 12]) -> Option<SocketAddr> {
    if value.len() < 4 {
        return None;
    }
    let port = u16::from_be_bytes([value[2], value[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(transaction);
    let ip = match (value[1], value.len()) {
        (0x01, 8) => IpAddr::V4(Ipv4Addr::from(std::array::from_fn::<u8, 4, _>(|i| value[4 + i] ^ mask[i]))),
        (0x02, 20) => IpAddr::V6(Ipv6Addr::from(std::array::from_fn::<u8, 16, _>(|i| value[4 + i] ^ mask[i]))),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Encodes an address XOR-ed as RFC 8489 section 14.2 says.
pub fn xor_addr_value(addr: SocketAddr, transaction: &[u8; 12]) -> Vec<u8> {
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(transaction);
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let mut out = vec![0, if addr.is_ipv4() { 0x01 } else { 0x02 }];
    out.extend_from_slice(&port.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(ip) => out.extend(ip.octets().iter().zip(mask).map(|(b, m)| b ^ m)),
        IpAddr::V6(ip) => out.extend(ip.octets().iter().zip(mask).map(|(b, m)| b ^ m)),
    }
    out
}

/// A plain (not XOR-ed) MAPPED-ADDRESS value, for RFC 3489 clients.
pub fn plain_addr_value(addr: SocketAddr) -> Vec<u8> {
    let mut out = vec![0, if addr.is_ipv4() { 0x01 } else { 0x02 }];
    out.extend_from_slice(&addr.port().to_be_bytes());
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out
}

/// Every value of attribute `t`, in order (CreatePermission may carry several peers).
pub fn all(msg: &Message, t: AttrType) -> impl Iterator<Item = &[u8]> {
    msg.attributes.0.iter().filter(move |a| a.typ == t).map(|a| a.value.as_slice())
}

/// An answer to `request`: success or error of its method, with `attrs`, then
/// MESSAGE-INTEGRITY when `key` is given (the request was authenticated), then FINGERPRINT.
pub fn answer(request: &Message, class: MessageClass, attrs: &[(AttrType, Vec<u8>)], key: Option<&[u8]>) -> Vec<u8> {
    let mut m = Message::new();
    m.typ = MessageType::new(request.typ.method, class);
    m.transaction_id = request.transaction_id;
    m.write_header();
    for (t, v) in attrs {
        m.add(*t, v);
    }
    m.add(stun::attributes::ATTR_SOFTWARE, SOFTWARE.as_bytes());
    if let Some(key) = key {
        let _ = stun::integrity::MessageIntegrity(key.to_vec()).add_to(&mut m);
    }
    let _ = stun::fingerprint::FINGERPRINT.add_to(&mut m);
    m.raw
}

/// An ERROR-CODE value.
pub fn error_code_value(code: u16, reason: &str) -> Vec<u8> {
    let mut v = vec![0, 0, (code / 100) as u8, (code % 100) as u8];
    v.extend_from_slice(reason.as_bytes());
    v
}

/// An indication of `method` (Data, from the relay to the client), with FINGERPRINT.
pub fn indication(method: stun::message::Method, transaction: [u8; 12], attrs: &[(AttrType, Vec<u8>)]) -> Vec<u8> {
    let mut m = Message::new();
    m.typ = MessageType::new(method, stun::message::CLASS_INDICATION);
    m.transaction_id = stun::agent::TransactionId(transaction);
    m.write_header();
    for (t, v) in attrs {
        m.add(*t, v);
    }
    let _ = stun::fingerprint::FINGERPRINT.add_to(&mut m);
    m.raw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xor_addresses_round_trip() {
        let t = [7u8; 12];
        for a in ["192.0.2.1:3478", "[2001:db8::1]:50000"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(xor_addr(&xor_addr_value(a, &t), &t), Some(a));
        }
        assert_eq!(xor_addr(&[0, 3, 0, 0], &t), None);
    }

    /// A signed request with a second peer appended after MESSAGE-INTEGRITY (and a fresh
    /// FINGERPRINT, which needs no key): the peer is not read, and the signature still checks.
    #[test]
    fn attributes_after_message_integrity_are_not_read() {
        use stun::attributes::{ATTR_MESSAGE_INTEGRITY, ATTR_XOR_PEER_ADDRESS};
        let key = b"key".to_vec();
        let tid = [9u8; 12];
        let mut m = Message::new();
        m.typ = MessageType::new(stun::message::METHOD_CREATE_PERMISSION, stun::message::CLASS_REQUEST);
        m.transaction_id = stun::agent::TransactionId(tid);
        m.write_header();
        let honest: SocketAddr = "192.0.2.1:1000".parse().unwrap();
        let evil: SocketAddr = "203.0.113.66:1000".parse().unwrap();
        m.add(ATTR_XOR_PEER_ADDRESS, &xor_addr_value(honest, &tid));
        stun::integrity::MessageIntegrity(key.clone()).add_to(&mut m).unwrap();
        m.add(ATTR_XOR_PEER_ADDRESS, &xor_addr_value(evil, &tid));
        stun::fingerprint::FINGERPRINT.add_to(&mut m).unwrap();
        let mut read = decode(&m.raw).expect("decodes");
        let peers: Vec<_> = all(&read, ATTR_XOR_PEER_ADDRESS).filter_map(|v| xor_addr(v, &tid)).collect();
        assert_eq!(peers, vec![honest]);
        assert!(read.contains(ATTR_MESSAGE_INTEGRITY));
        stun::integrity::MessageIntegrity(key).check(&mut read).expect("the signature covers what is kept");
        // A wrong FINGERPRINT is not STUN at all.
        let mut bad = m.raw.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(decode(&bad).is_none());
    }

    #[test]
    fn stream_frames_are_sized_and_padded() {
        assert_eq!(frame_len([0x00, 0x01, 0x00, 0x08]), Some(28));
        assert_eq!(frame_len([0x00, 0x01, 0x00, 0x07]), None, "STUN lengths are multiples of 4");
        assert_eq!(frame_len([0x40, 0x00, 0x00, 0x05]), Some(12), "ChannelData padded to 4");
        assert_eq!(frame_len([0x80, 0, 0, 0]), None);
        assert_eq!(channel_data(0x4000, b"abcde", true).len(), 12);
        assert_eq!(channel_data(0x4000, b"abcde", false).len(), 9);
        match classify(&channel_data(0x4001, b"abcde", true)) {
            Some(Packet::ChannelData { channel, data }) => assert_eq!((channel, data), (0x4001, &b"abcde"[..])),
            _ => panic!("not ChannelData"),
        }
    }
}
