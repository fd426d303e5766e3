//! TURN REST API credentials (coturn's `use-auth-secret`): the username is `<expiry>:<userId>`,
//! the password base64(HMAC-SHA1(secret, username)). Anyone holding the secret (this server, or
//! a coturn configured with it) can check them without a database; they expire on their own.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

#[derive(Clone)]
pub struct Credentials {
    secret: Arc<str>,
    pub ttl: Duration,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Credentials {
    pub fn new(secret: String, ttl: Duration) -> Self {
        Credentials { secret: secret.into(), ttl }
    }

    /// The password for a username, as coturn computes it.
    pub fn password(&self, username: &str) -> String {
        let mut mac = match Hmac::<Sha1>::new_from_slice(self.secret.as_bytes()) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(username.as_bytes());
        BASE64_STANDARD.encode(mac.finalize().into_bytes())
    }

    /// Fresh credentials for a user: `(username, password)`.
    pub fn issue(&self, user_id: i64) -> (String, String) {
        let username = format!("{}:{user_id}", now_secs() + self.ttl.as_secs());
        let password = self.password(&username);
        (username, password)
    }

    /// The long-term key of a username (RFC 8489 section 9.2.2): MD5(username:realm:password).
    pub fn key(&self, username: &str, realm: &str) -> Vec<u8> {
        stun::integrity::MessageIntegrity::new_long_term_integrity(username.to_string(), realm.to_string(), self.password(username)).0
    }

    /// The user a still-valid username names; `None` when malformed or expired.
    pub fn check(&self, username: &str) -> Option<i64> {
        let (expiry, user) = username.split_once(':')?;
        let expiry: u64 = expiry.parse().ok()?;
        let user: i64 = user.parse().ok()?;
        (expiry > now_secs()).then_some(user)
    }
}

/// The relay's nonces: stateless, so that any listener and any restart can check them. Each
/// carries its expiry and an HMAC of it and the client's address under a key made at start.
pub struct Nonces {
    key: [u8; 32],
    lifetime: Duration,
}

impl Nonces {
    pub fn new(lifetime: Duration) -> Self {
        Nonces { key: rand::random(), lifetime }
    }

    fn mac(&self, expiry: u64, client: IpAddr) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(&expiry.to_be_bytes());
        mac.update(client.to_string().as_bytes());
        mac.finalize().into_bytes().iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// A fresh nonce for a client.
    pub fn issue(&self, client: IpAddr) -> String {
        let expiry = now_secs() + self.lifetime.as_secs();
        format!("{expiry:016x}{}", self.mac(expiry, client))
    }

    /// Whether `nonce` was issued to this client and has not expired.
    pub fn valid(&self, nonce: &str, client: IpAddr) -> bool {
        let (Some(expiry), Some(mac)) = (nonce.get(..16), nonce.get(16..)) else { return false };
        let Ok(expiry) = u64::from_str_radix(expiry, 16) else { return false };
        expiry > now_secs() && mac == self.mac(expiry, client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coturn_compatible_passwords() {
        // The TURN REST API draft's example: secret "north", username "1433895918:alice".
        let c = Credentials::new("north".into(), Duration::from_secs(60));
        assert_eq!(c.password("1433895918:alice"), BASE64_STANDARD.encode({
            let mut m = Hmac::<Sha1>::new_from_slice(b"north").unwrap();
            m.update(b"1433895918:alice");
            m.finalize().into_bytes()
        }));
        let (user, pass) = c.issue(7);
        assert!(user.ends_with(":7"));
        assert_eq!(pass, c.password(&user));
        assert_eq!(c.check(&user), Some(7));
        assert_eq!(c.check("1:7"), None, "expired");
        assert_eq!(c.check("nonsense"), None);
        assert_eq!(c.check("99999999999:x"), None);
    }

    #[test]
    fn nonces_are_bound_to_the_client_and_expire() {
        let n = Nonces::new(Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let nonce = n.issue(a);
        assert!(n.valid(&nonce, a));
        assert!(!n.valid(&nonce, "192.0.2.2".parse().unwrap()), "another client");
        assert!(!n.valid(&nonce.replace(&nonce[20..22], "zz"), a), "tampered");
        assert!(!n.valid("0000000000000001deadbeefdeadbeef", a), "expired");
        assert!(!n.valid("short", a));
        let gone = Nonces::new(Duration::from_secs(0));
        assert!(!gone.valid(&gone.issue(a), a));
    }
}
