//! The settings parser, both ways settings arrive: a TOML file (`--config`), and name/value
//! pairs as the environment and flags give them. Whatever the input, the answer is settings or
//! an error that names the setting and says what is wrong; never a panic.
#![no_main]

use duet::config::{KEYS, Raw, Settings, parse_file_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(raw) = parse_file_text(text, "fuzz.toml") {
        check(&raw);
    }
    // Lines of `name=value`, as DUET_* variables: every setting's own parser sees any text.
    let mut raw = Raw::new();
    for line in text.lines() {
        let (name, value) = line.split_once('=').unwrap_or((line, ""));
        let key = match name.parse::<usize>() {
            Ok(i) => KEYS.get(i % KEYS.len()),
            Err(_) => KEYS.iter().find(|k| k.name == name || k.env == name),
        };
        if let Some(key) = key {
            raw.insert(key.name, value.to_string());
        }
    }
    check(&raw);
});

fn check(raw: &Raw) {
    match Settings::from_raw(raw) {
        Ok(settings) => {
            // What `serve` asks of them at start must not panic either.
            let _ = (settings.serves_tls(), settings.secure_cookies());
        }
        Err(e) => {
            assert!(!e.setting.is_empty() && !e.problem.is_empty(), "{e:?}");
        }
    }
}
