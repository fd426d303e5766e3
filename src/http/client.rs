//! The client's address: the socket's peer, or, when that peer is a trusted proxy
//! (`DUET_TRUSTED_PROXIES`), the address the proxies name in `Forwarded` (RFC 7239) or else
//! `X-Forwarded-For`. The chain is read from the right, skipping trusted proxies, so a client
//! cannot pick its own address by sending the header itself: the first address a trusted proxy
//! vouches for is the one used. From any other peer those headers are ignored.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::AppState;
use crate::cidr::{Cidr, canonical};

/// The address every per-address limit and log line uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The machine itself (its own tools, a load generator, a local proxy not declared
    /// trusted): per-address caps do not apply to it; per-user ones do.
    pub fn is_local(self) -> bool {
        self.0.is_loopback()
    }
}

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Without connect info (the router driven in-process) there is no peer to speak of.
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        Ok(ClientAddr(resolve(peer, &parts.headers, &state.settings.trusted_proxies)))
    }
}

/// The client's address, from the peer and the headers, trusting only `trusted` proxies.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let chain = forwarded_chain(headers);
    let mut client = peer;
    for hop in chain.iter().rev() {
        // An address the proxy could not vouch for ("unknown", an obfuscated name, garbage):
        // the last address that was vouched for is the client.
        let Some(ip) = hop.map(canonical) else { break };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// The hops the headers name, left (the original client) to right (the nearest proxy); `None`
/// for one that is not an IP address. `Forwarded` wins over `X-Forwarded-For` when present.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| -> Vec<String> { headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect() };
    let forwarded = values("forwarded");
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| element.split(';').find_map(|pair| pair.trim().strip_prefix("for=").or_else(|| pair.trim().strip_prefix("For=")).or_else(|| pair.trim().strip_prefix("FOR="))).and_then(node_ip))
            .collect();
    }
    values("x-forwarded-for").iter().flat_map(|v| v.split(',')).map(|hop| node_ip(hop.trim())).collect()
}

/// An RFC 7239 node (`192.0.2.1`, `"192.0.2.1:4711"`, `"[2001:db8::1]:4711"`) as an address.
fn node_ip(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    node.parse::<SocketAddr>().ok().map(|s| s.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap_or_else(|_| panic!("{v}")));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("{s}"))
    }

    fn proxies() -> Vec<Cidr> {
        ["127.0.0.1", "10.0.0.0/8"].iter().map(|c| c.parse().unwrap_or_else(|e: String| panic!("{e}"))).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(resolve(ip("203.0.113.9"), &h, &proxies()), ip("203.0.113.9"));
        assert_eq!(resolve(ip("127.0.0.1"), &h, &[]), ip("127.0.0.1"), "no proxies trusted: headers ignored");
    }

    #[test]
    fn the_rightmost_address_a_trusted_proxy_vouches_for_is_the_client() {
        // nginx appends the address it saw to what the client sent: the spoofed part is left.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7")]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &proxies()), ip("198.51.100.7"));
        // Two trusted proxies in a row.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.2.3")]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &proxies()), ip("198.51.100.7"));
        // Several header lines are one list.
        let h = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(resolve(ip("::ffff:127.0.0.1"), &h, &proxies()), ip("198.51.100.7"));
    }

    #[test]
    fn forwarded_is_read_as_rfc_7239_writes_it_and_wins() {
        let h = headers(&[("forwarded", r#"for=6.6.6.6, for="[2001:db8::1]:4711";proto=https"#), ("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &proxies()), ip("2001:db8::1"));
        let h = headers(&[("forwarded", r#"For="192.0.2.60:8080";by=10.0.0.1"#)]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &proxies()), ip("192.0.2.60"));
    }

    #[test]
    fn garbage_or_an_empty_header_leaves_the_last_vouched_address() {
        for bad in ["unknown", "_hidden", "not an ip, 999.1.1.1", ""] {
            let h = headers(&[("x-forwarded-for", bad)]);
            assert_eq!(resolve(ip("127.0.0.1"), &h, &proxies()), ip("127.0.0.1"), "{bad:?}");
        }
        let h = headers(&[("x-forwarded-for", "garbage, 198.51.100.7")]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &proxies()), ip("198.51.100.7"));
        let h = headers(&[("x-forwarded-for", "198.51.100.7, garbage")]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &proxies()), ip("127.0.0.1"));
    }
}
