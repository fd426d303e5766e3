//! TURN REST API credentials (coturn's `use-auth-secret`): the username is `<expiry>:<userId>`,
//! the password base64(HMAC-SHA1(secret, username)). Anyone holding the secret (this server, or
//! a coturn configured with it) can check them without a database; they expire on their own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::REALM;
use super::relay::RelayStats;

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

    /// The user a still-valid username names; `None` when malformed or expired.
    pub fn check(&self, username: &str) -> Option<i64> {
        let (expiry, user) = username.split_once(':')?;
        let expiry: u64 = expiry.parse().ok()?;
        let user: i64 = user.parse().ok()?;
        (expiry > now_secs()).then_some(user)
    }
}

/// The relay's authentication: valid, unexpired REST credentials only.
pub struct Auth {
    credentials: Credentials,
    stats: Arc<RelayStats>,
}

impl Auth {
    pub fn new(credentials: Credentials, stats: Arc<RelayStats>) -> Self {
        Auth { credentials, stats }
    }
}

impl turn::auth::AuthHandler for Auth {
    fn auth_handle(&self, username: &str, realm: &str, src_addr: SocketAddr) -> Result<Vec<u8>, turn::Error> {
        let Some(user) = self.credentials.check(username) else {
            // The username's user, even if expired, so operators can see whose relay failed.
            let named = username.split_once(':').and_then(|(_, u)| u.parse::<i64>().ok());
            self.stats.auth_failed(named);
            tracing::info!(%username, client = %src_addr, "TURN credentials refused (malformed or expired)");
            return Err(turn::Error::Other("expired or malformed username".into()));
        };
        // The relay handles one request at a time per listener: an Allocate that follows this
        // check is this user's.
        self.stats.authenticated(user);
        let password = self.credentials.password(username);
        // A forged password fails the message-integrity check against this key.
        Ok(turn::auth::generate_auth_key(username, if realm.is_empty() { REALM } else { realm }, &password))
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
}
