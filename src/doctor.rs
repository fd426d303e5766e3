//! `duet doctor`: checks a deployment's settings against the world (the database, the ports,
//! the addresses browsers and relays will use, the certificate) and prints a verdict per item,
//! in words an operator can act on. Exit code 1 if anything failed.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use crate::config::{Settings, StreamListen};
use crate::turn::Transport;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

pub struct Finding {
    pub verdict: Verdict,
    pub item: &'static str,
    pub detail: String,
}

fn finding(verdict: Verdict, item: &'static str, detail: impl Into<String>) -> Finding {
    Finding { verdict, item, detail: detail.into() }
}

/// Whether an address is reachable only from this machine or this network.
fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified() || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64,
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Runs every check.
pub async fn run(settings: &Settings) -> Vec<Finding> {
    let mut out = vec![finding(Verdict::Ok, "settings", format!("parsed; listening on {}", settings.listen))];
    out.push(database(settings).await);
    out.push(listen(settings).await);
    out.push(public_url(settings));
    out.extend(turn(settings).await);
    out.extend(certificate(settings));
    out
}

/// Connects and compares the schema with this binary's migrations, changing nothing (an SQLite
/// file is opened read-only and never created).
async fn database(settings: &Settings) -> Finding {
    let shown = crate::store::redact(&settings.database_url);
    if let Ok(crate::store::DatabaseUrl::Sqlite(path)) = crate::store::DatabaseUrl::parse(&settings.database_url) {
        if !path.exists() {
            return finding(Verdict::Warn, "database", format!("{} does not exist yet: duet serve or duet migrate creates it", path.display()));
        }
    }
    match tokio::time::timeout(Duration::from_secs(10), crate::store::inspect(&settings.database_url, settings.store)).await {
        Ok(Ok(i)) if !i.has_schema => {
            finding(Verdict::Warn, "database", format!("{shown} ({}) answers but has no duet schema yet: duet serve or duet migrate creates it", i.backend))
        }
        Ok(Ok(i)) if !i.unknown.is_empty() => finding(
            Verdict::Fail,
            "database",
            format!("{shown} ({}) was migrated by a newer duet ({}): run that version", i.backend, i.unknown.join(", ")),
        ),
        Ok(Ok(i)) if !i.pending.is_empty() => finding(
            Verdict::Warn,
            "database",
            format!("{shown} ({}) reachable; {} migration(s) pending ({}): duet serve or duet migrate applies them", i.backend, i.pending.len(), i.pending.join(", ")),
        ),
        Ok(Ok(i)) => finding(Verdict::Ok, "database", format!("{shown} ({}) reachable, schema up to date", i.backend)),
        Ok(Err(e)) => finding(Verdict::Fail, "database", format!("{e:#}")),
        Err(_) => finding(Verdict::Fail, "database", format!("{shown} did not answer within 10 s")),
    }
}

async fn listen(settings: &Settings) -> Finding {
    match std::net::TcpListener::bind(settings.listen) {
        Ok(_) => finding(Verdict::Ok, "http port", format!("{} is free (duet is not running)", settings.listen)),
        Err(_) => {
            let scheme = if settings.serves_tls() { "https" } else { "http" };
            let answers = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(settings.listen)).await.is_ok_and(|r| r.is_ok());
            if answers {
                finding(Verdict::Ok, "http port", format!("{} is in use; if that is duet, it is up ({scheme})", settings.listen))
            } else {
                finding(Verdict::Fail, "http port", format!("{} cannot be bound", settings.listen))
            }
        }
    }
}

fn public_url(settings: &Settings) -> Finding {
    match &settings.public_url {
        Some(url) if url.starts_with("https://") => finding(Verdict::Ok, "public address", format!("browsers use {url}")),
        Some(url) => finding(
            Verdict::Warn,
            "public address",
            format!("{url} is not https: browsers allow camera and microphone only on https (or localhost)"),
        ),
        None if settings.listen.ip().is_loopback() => finding(
            Verdict::Warn,
            "public address",
            format!("DUET_PUBLIC_URL is unset and duet listens on {}: only this machine can reach it", settings.listen),
        ),
        None if !settings.serves_tls() => finding(
            Verdict::Warn,
            "public address",
            "no TLS and no DUET_PUBLIC_URL: other machines get plain http, where browsers refuse camera and microphone; use DUET_TLS_* or a proxy",
        ),
        None => finding(Verdict::Ok, "public address", format!("https on {}", settings.listen)),
    }
}

async fn turn(settings: &Settings) -> Vec<Finding> {
    let Some(listen) = settings.turn_listen else {
        return vec![if settings.turn_urls.is_empty() {
            finding(Verdict::Warn, "turn", "the embedded relay is off and DUET_TURN_URLS is empty: calls between different networks will often fail")
        } else {
            finding(Verdict::Ok, "turn", format!("clients use {}", settings.turn_urls.join(", ")))
        }];
    };
    let tcp = match settings.turn_tcp_listen {
        StreamListen::SameAsUdp => Some(listen),
        StreamListen::Off => None,
        StreamListen::At(a) => Some(a),
    };
    let mut out = Vec::new();
    let mut open = Vec::new();
    for (transport, at) in [(Transport::Udp, Some(listen)), (Transport::Tcp, tcp), (Transport::Tls, settings.turn_tls_listen)] {
        let Some(at) = at else { continue };
        open.push(format!("{} {}", if transport == Transport::Udp { "udp" } else { "tcp" }, at.port()));
        out.push(turn_listener(transport, at).await);
    }
    let relay = crate::turn::public_ip(settings);
    out.push(if is_local(relay) {
        finding(
            Verdict::Warn,
            "relay address",
            format!("{relay} is not a public address: callers outside this network cannot reach the relay; set DUET_TURN_PUBLIC_IP"),
        )
    } else {
        finding(Verdict::Ok, "relay address", format!("the relay hands out {relay}; open {} and the relay's UDP ports in the firewall", open.join(", ")))
    });
    out
}

/// One of the relay's listeners: free (duet is not running), or answering a real STUN Binding
/// request over its own transport.
async fn turn_listener(transport: Transport, at: SocketAddr) -> Finding {
    let item = match transport {
        Transport::Udp => "turn port",
        Transport::Tcp => "turn tcp port",
        Transport::Tls => "turn tls port",
    };
    let free = match transport {
        Transport::Udp => UdpSocket::bind(at).is_ok(),
        Transport::Tcp | Transport::Tls => std::net::TcpListener::bind(at).is_ok(),
    };
    let name = transport.label();
    if free {
        return finding(Verdict::Ok, item, format!("{name} {at} is free (duet is not running)"));
    }
    let probe = SocketAddr::new(if at.ip().is_unspecified() { IpAddr::from([127, 0, 0, 1]) } else { at.ip() }, at.port());
    match crate::turn::probe::binding(transport, probe, Duration::from_secs(2)).await {
        Ok(seen) => finding(Verdict::Ok, item, format!("{name} {at} answers STUN (it saw this machine as {seen})")),
        Err(e) => finding(Verdict::Fail, item, format!("{name} {at} is taken by something that does not answer STUN: {e}")),
    }
}

fn certificate(settings: &Settings) -> Vec<Finding> {
    let Some((cert, _)) = &settings.tls else {
        return if settings.tls_self_signed {
            vec![finding(Verdict::Warn, "certificate", "self-signed: every browser must accept it once; use a real certificate in production")]
        } else {
            Vec::new()
        };
    };
    let pem = match std::fs::read(cert) {
        Ok(p) => p,
        Err(e) => return vec![finding(Verdict::Fail, "certificate", format!("{}: {e}", cert.display()))],
    };
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(&pem) else {
        return vec![finding(Verdict::Fail, "certificate", format!("{} is not a PEM certificate", cert.display()))];
    };
    let Ok(x509) = pem.parse_x509() else {
        return vec![finding(Verdict::Fail, "certificate", format!("{} does not parse as X.509", cert.display()))];
    };
    let mut out = Vec::new();
    let validity = x509.validity();
    let now = x509_parser::time::ASN1Time::now();
    let left = validity.time_to_expiration();
    out.push(if now < validity.not_before {
        finding(Verdict::Fail, "certificate", format!("not valid before {}", validity.not_before))
    } else if left.is_none() {
        finding(Verdict::Fail, "certificate", format!("expired on {}", validity.not_after))
    } else if left.is_some_and(|d| d.whole_days() < 14) {
        finding(Verdict::Warn, "certificate", format!("expires on {}: renew it soon", validity.not_after))
    } else {
        finding(Verdict::Ok, "certificate", format!("valid until {}", validity.not_after))
    });
    let names: Vec<String> = x509
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| san.value.general_names.iter().map(|n| n.to_string()).collect())
        .unwrap_or_default();
    if let Some(host) = settings.public_url.as_deref().and_then(|u| u.split("://").nth(1)).map(|h| h.split(':').next().unwrap_or(h).to_string()) {
        let covered = names.iter().any(|n| {
            let n = n.trim_start_matches("DNSName(").trim_start_matches("IPAddress(").trim_end_matches(')');
            n == host || n.strip_prefix("*.").is_some_and(|d| host.split_once('.').is_some_and(|(_, rest)| rest == d))
        });
        out.push(if covered {
            finding(Verdict::Ok, "certificate names", format!("{host} is covered"))
        } else {
            finding(Verdict::Fail, "certificate names", format!("{host} is not among {names:?}"))
        });
    }
    out
}

/// Prints the findings; returns whether nothing failed.
pub fn print(findings: &[Finding]) -> bool {
    for f in findings {
        let v = match f.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        };
        println!("{v}  {:<17} {}", f.item, f.detail);
    }
    let fails = findings.iter().filter(|f| f.verdict == Verdict::Fail).count();
    let warns = findings.iter().filter(|f| f.verdict == Verdict::Warn).count();
    println!("verdict: {fails} failure(s), {warns} warning(s)");
    fails == 0
}
