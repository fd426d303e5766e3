//! The TURN credential parsers: a REST username (`<expiry>:<userId>`) and a nonce, as any client
//! may send them in a STUN USERNAME or NONCE attribute. Whatever the text: no panic; a username
//! is accepted only if it reads back as an unexpired expiry and a user id, and then its
//! password is the one issued for it; a nonce is accepted only if this relay issued it to this
//! client.
#![no_main]

use std::net::IpAddr;
use std::time::Duration;

use duet::turn::credentials::{Credentials, Nonces};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let credentials = Credentials::new("fuzz-secret".into(), Duration::from_secs(600));
    if let Some(user) = credentials.check(text) {
        let (expiry, id) = text.split_once(':').expect("an accepted username has a colon");
        assert!(expiry.parse::<u64>().is_ok());
        assert_eq!(id.parse::<i64>().ok(), Some(user));
    }
    let _ = credentials.key(text, duet::turn::REALM);
    let client: IpAddr = [192, 0, 2, 1].into();
    let nonces = Nonces::new(Duration::from_secs(600));
    assert!(!nonces.valid(text, client), "a nonce this relay never issued: {text:?}");
    let issued = nonces.issue(client);
    assert!(nonces.valid(&issued, client));
    assert!(!nonces.valid(&issued, [192, 0, 2, 2].into()), "a nonce is bound to its client");
});
