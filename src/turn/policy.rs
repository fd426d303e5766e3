//! Which peers the relay may reach, as coturn decides it: loopback, private, link-local,
//! multicast and other special ranges are refused unless `DUET_TURN_ALLOWED_PEERS` allows them,
//! so a relay on the internet cannot be turned into a door to the operator's own network.

use std::net::IpAddr;
use std::str::FromStr;

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
