//! Which peers the relay may reach, as coturn decides it: loopback, private, link-local,
//! multicast and other special ranges are refused unless `DUET_TURN_ALLOWED_PEERS` allows them,
//! so a relay on the internet cannot be turned into a door to the operator's own network.

use std::net::IpAddr;

pub use crate::cidr::{Cidr, canonical};

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
