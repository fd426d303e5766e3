//! A byte-level STUN/TURN client for the relay's tests: it sends exactly the requests a test
//! builds (over UDP or TCP) and returns the answers whole, so error codes, nonces and attributes
//! can be checked against RFC 8489 and RFC 8656.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use stun::attributes::*;
use stun::message::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

pub const ATTR_UNKNOWN_TEST: AttrType = AttrType(0x7faa);

/// coturn's REST password for `username` under `secret`.
pub fn rest_password(secret: &str, username: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    base64::prelude::BASE64_STANDARD.encode(mac.finalize().into_bytes())
}

/// Fresh REST credentials for `user`, good for `secs`.
pub fn rest_credentials(secret: &str, user: i64, secs: i64) -> (String, String) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let username = format!("{}:{user}", now + secs);
    let password = rest_password(secret, &username);
    (username, password)
}

pub fn xor(addr: SocketAddr, tid: &[u8; 12]) -> Vec<u8> {
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(tid);
    let mut out = vec![0, if addr.is_ipv4() { 1 } else { 2 }];
    out.extend_from_slice(&(addr.port() ^ 0x2112).to_be_bytes());
    let octets: Vec<u8> = match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.octets().to_vec(),
        std::net::IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    out.extend(octets.iter().zip(mask).map(|(b, m)| b ^ m));
    out
}

pub fn unxor(value: &[u8], tid: &[u8; 12]) -> SocketAddr {
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(tid);
    let port = u16::from_be_bytes([value[2], value[3]]) ^ 0x2112;
    assert_eq!(value[1], 1, "IPv4 only here");
    let ip = std::net::Ipv4Addr::new(value[4] ^ mask[0], value[5] ^ mask[1], value[6] ^ mask[2], value[7] ^ mask[3]);
    SocketAddr::new(ip.into(), port)
}

/// The error code of an answer, if it is an error.
pub fn error_code(m: &Message) -> Option<u16> {
    let v = m.get(ATTR_ERROR_CODE).ok()?;
    Some(u16::from(v[2]) * 100 + u16::from(v[3]))
}

pub fn text(m: &Message, t: AttrType) -> Option<String> {
    m.get(t).ok().map(|v| String::from_utf8(v).unwrap())
}

enum Wire {
    Udp(UdpSocket, SocketAddr),
    Tcp(TcpStream),
}

/// One client 5-tuple, with its credentials and the realm and nonce it has learnt.
pub struct Client {
    wire: Wire,
    pub username: String,
    pub password: String,
    pub realm: Option<String>,
    pub nonce: Option<String>,
    /// Non-answers received while waiting for answers (Data indications, ChannelData).
    pub inbox: Vec<Vec<u8>>,
}

impl Client {
    pub async fn udp(server: SocketAddr, username: &str, password: &str) -> Client {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Client::with(Wire::Udp(s, server), username, password)
    }

    pub async fn tcp(server: SocketAddr, username: &str, password: &str) -> Client {
        let s = TcpStream::connect(server).await.unwrap();
        Client::with(Wire::Tcp(s), username, password)
    }

    fn with(wire: Wire, username: &str, password: &str) -> Client {
        Client { wire, username: username.into(), password: password.into(), realm: None, nonce: None, inbox: Vec::new() }
    }

    pub fn local_addr(&self) -> SocketAddr {
        match &self.wire {
            Wire::Udp(s, _) => s.local_addr().unwrap(),
            Wire::Tcp(s) => s.local_addr().unwrap(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        match &mut self.wire {
            Wire::Udp(s, to) => {
                s.send_to(bytes, *to).await.unwrap();
            }
            Wire::Tcp(s) => s.write_all(bytes).await.unwrap(),
        }
    }

    /// The next datagram or frame, or `None` within `wait`.
    pub async fn recv(&mut self, wait: Duration) -> Option<Vec<u8>> {
        match &mut self.wire {
            Wire::Udp(s, _) => {
                let mut buf = vec![0u8; 65536];
                let (n, _) = tokio::time::timeout(wait, s.recv_from(&mut buf)).await.ok()?.ok()?;
                Some(buf[..n].to_vec())
            }
            Wire::Tcp(s) => {
                let read = async {
                    let mut head = [0u8; 4];
                    s.read_exact(&mut head).await.ok()?;
                    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
                    let total = if head[0] >> 6 == 0 { 20 + len } else { 4 + len.div_ceil(4) * 4 };
                    let mut frame = vec![0u8; total];
                    frame[..4].copy_from_slice(&head);
                    s.read_exact(&mut frame[4..]).await.ok()?;
                    Some(frame)
                };
                tokio::time::timeout(wait, read).await.ok()?
            }
        }
    }

    /// Sends a request and returns its answer (by transaction id).
    pub async fn exchange(&mut self, request: Vec<u8>) -> Message {
        let tid = &request[8..20].to_vec();
        self.send(&request).await;
        loop {
            let got = self.recv(Duration::from_secs(3)).await.expect("an answer within 3 s");
            if got[0] >> 6 == 0 && got.len() >= 20 && got[8..20] == tid[..] {
                let mut m = Message::new();
                m.raw = got;
                m.decode().unwrap();
                return m;
            }
            self.inbox.push(got);
        }
    }

    /// A request of `method` with `attrs`, signed with the long-term credentials when the
    /// realm and nonce are known.
    pub fn build(&self, method: Method, attrs: &[(AttrType, Vec<u8>)], tid: [u8; 12], sign: bool) -> Vec<u8> {
        let mut m = Message::new();
        m.typ = MessageType::new(method, CLASS_REQUEST);
        m.transaction_id = stun::agent::TransactionId(tid);
        m.write_header();
        for (t, v) in attrs {
            m.add(*t, v);
        }
        if sign {
            if let (Some(realm), Some(nonce)) = (&self.realm, &self.nonce) {
                m.add(ATTR_USERNAME, self.username.as_bytes());
                m.add(ATTR_REALM, realm.as_bytes());
                m.add(ATTR_NONCE, nonce.as_bytes());
                stun::integrity::MessageIntegrity::new_long_term_integrity(self.username.clone(), realm.clone(), self.password.clone()).add_to(&mut m).unwrap();
            }
        }
        stun::fingerprint::FINGERPRINT.add_to(&mut m).unwrap();
        m.raw
    }

    /// A request with the credentials; a first 401 (or a 438) teaches the realm and nonce and
    /// the request is made again, as real clients do. Returns the final answer.
    pub async fn request(&mut self, method: Method, attrs: &[(AttrType, Vec<u8>)]) -> Message {
        let answer = self.exchange(self.build(method, attrs, rand::random(), true)).await;
        let learn = match error_code(&answer) {
            Some(401) => self.nonce.is_none(),
            Some(438) => true,
            _ => false,
        };
        if !learn {
            return answer;
        }
        self.realm = text(&answer, ATTR_REALM);
        self.nonce = text(&answer, ATTR_NONCE);
        self.exchange(self.build(method, attrs, rand::random(), true)).await
    }

    /// Allocate with REQUESTED-TRANSPORT UDP and `extra`.
    pub async fn allocate(&mut self, extra: &[(AttrType, Vec<u8>)]) -> Message {
        let mut attrs = vec![(ATTR_REQUESTED_TRANSPORT, vec![17, 0, 0, 0])];
        attrs.extend_from_slice(extra);
        self.request(METHOD_ALLOCATE, &attrs).await
    }

    /// The relayed address of a successful Allocate answer.
    pub fn relayed(answer: &Message) -> SocketAddr {
        assert_eq!(answer.typ.class, CLASS_SUCCESS_RESPONSE, "error {:?}: {:?}", error_code(answer), text(answer, ATTR_ERROR_CODE));
        unxor(&answer.get(ATTR_XOR_RELAYED_ADDRESS).unwrap(), &answer.transaction_id.0)
    }

    pub async fn permit(&mut self, peer: SocketAddr) -> Message {
        let tid: [u8; 12] = rand::random();
        let attrs = [(ATTR_XOR_PEER_ADDRESS, xor(peer, &tid))];
        self.exchange(self.build(METHOD_CREATE_PERMISSION, &attrs, tid, true)).await
    }

    pub async fn bind_channel(&mut self, channel: u16, peer: SocketAddr) -> Message {
        let tid: [u8; 12] = rand::random();
        let mut number = channel.to_be_bytes().to_vec();
        number.extend_from_slice(&[0, 0]);
        let attrs = [(ATTR_CHANNEL_NUMBER, number), (ATTR_XOR_PEER_ADDRESS, xor(peer, &tid))];
        self.exchange(self.build(METHOD_CHANNEL_BIND, &attrs, tid, true)).await
    }

    /// Refresh with `lifetime` seconds (0 deletes).
    pub async fn refresh(&mut self, lifetime: u32) -> Message {
        self.request(METHOD_REFRESH, &[(ATTR_LIFETIME, lifetime.to_be_bytes().to_vec())]).await
    }

    /// ChannelData to the relay, padded on TCP as RFC 8656 section 12.5 requires.
    pub async fn channel_data(&mut self, channel: u16, data: &[u8]) {
        let mut frame = channel.to_be_bytes().to_vec();
        frame.extend_from_slice(&(data.len() as u16).to_be_bytes());
        frame.extend_from_slice(data);
        if matches!(self.wire, Wire::Tcp(_)) {
            frame.resize(4 + data.len().div_ceil(4) * 4, 0);
        }
        self.send(&frame).await;
    }
}

pub fn is_success(m: &Message) -> bool {
    m.typ.class == CLASS_SUCCESS_RESPONSE
}
