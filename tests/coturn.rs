//! coturn's own test clients (`turnutils_stunclient`, `turnutils_uclient`, `turnutils_peer`
//! from Debian's `coturn` package) against the embedded relay, in each of their modes: the
//! relay must do what coturn's `turnserver` does for them, with no packet lost. Reported
//! skipped where the package is not installed (`.ci/run` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use common::stun_client as sc;

const SECRET: &str = "coturn-test-secret";

/// `turnutils_peer`: an echo server for uclient's datagrams, on loopback.
struct Peer {
    child: Child,
    addr: SocketAddr,
}

impl Peer {
    fn start() -> Peer {
        let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("turnutils_peer").args(["-L", "127.0.0.1", "-p", &port.to_string()]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        // It answers as soon as it is bound: wait until a datagram comes back.
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        for _ in 0..100 {
            probe.send_to(b"ping", addr).unwrap();
            if probe.recv_from(&mut [0u8; 16]).is_ok() {
                break;
            }
        }
        Peer { child, addr }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A relay with all three transports (TLS with the self-signed certificate).
fn relay() -> Server {
    Server::start_with(&[("DUET_TURN_SECRET", SECRET), ("DUET_TLS_SELF_SIGNED", "1"), ("DUET_TURN_TLS_LISTEN", "127.0.0.1:0"), ("DUET_ADMIN_TOKEN", "t")])
}

/// What one uclient run reports.
#[derive(Debug)]
struct Figures {
    mode: String,
    sent: u64,
    received: u64,
    lost: Option<u64>,
    /// The lines to quote: totals, loss, round trip and jitter.
    summary: Vec<String>,
    output: String,
    success: bool,
}

fn figure(text: &str, key: &str) -> Option<u64> {
    text.lines().rev().find_map(|l| l.split(key).nth(1)).and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()).and_then(|n| n.parse().ok())
}

fn finish(mode: &str, out: Output) -> Figures {
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let summary = output
        .lines()
        .filter(|l| ["tot_send_msgs", "Total lost", "round trip", "jitter", "Total transmit"].iter().any(|k| l.contains(k)) && !l.contains("msz="))
        .map(|l| l.trim().to_string())
        .collect();
    Figures {
        mode: mode.to_string(),
        sent: figure(&output, "tot_send_msgs=").unwrap_or(0),
        received: figure(&output, "tot_recv_msgs=").unwrap_or(0),
        lost: figure(&output, "Total lost packets "),
        summary,
        output,
        success: out.status.success(),
    }
}

/// Starts `turnutils_uclient` with `flags` against `port`, as user `user` of the REST scheme.
fn uclient(flags: &[&str], port: u16, user: i64, peer: &str, peer_port: u16) -> Child {
    let (username, password) = sc::rest_credentials(SECRET, user, 600);
    Command::new("turnutils_uclient")
        .args(flags)
        .args(["-p", &port.to_string(), "-u", &username, "-w", &password, "-e", peer, "-r", &peer_port.to_string(), "-n", "50", "-l", "120", "127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a client, killing it after `limit`.
fn wait(mode: &str, mut child: Child, limit: Duration) -> Figures {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    finish(mode, child.wait_with_output().unwrap())
}

async fn metric(server: &Server, line: &str) -> f64 {
    let pem = std::fs::read(server.dir().join("tls/self-signed.crt")).unwrap();
    let http = reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap()).build().unwrap();
    let text = http.get(format!("https://{}/metrics", server.addr)).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(line)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

#[tokio::test]
#[cfg_attr(not(duet_test_coturn), ignore = "skipped: coturn's turnutils_* clients are not installed (Debian package coturn)")]
async fn turnutils_stunclient_learns_its_address() {
    let server = relay();
    let port = server.turn_addr("udp").unwrap().port();
    let out = Command::new("turnutils_stunclient").args(["-p", &port.to_string(), "127.0.0.1"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("UDP reflexive addr: 127.0.0.1:"), "{text}");
}

#[tokio::test]
#[cfg_attr(not(duet_test_coturn), ignore = "skipped: coturn's turnutils_* clients are not installed (Debian package coturn)")]
async fn turnutils_uclient_in_every_mode_loses_no_packet() {
    let server = relay();
    let (udp, tcp, tls) = (server.turn_addr("udp").unwrap().port(), server.turn_addr("tcp").unwrap().port(), server.turn_addr("tls").unwrap().port());
    let peer = Peer::start();
    let p = peer.addr.port();
    // Each mode as its own user: uclient leaves its UDP allocations to expire, as it does on
    // coturn, and the per-user quota is bounded.
    let modes: Vec<(&str, Vec<&str>, u16)> = vec![
        ("udp, RTP/RTCP pair (EVEN-PORT + RESERVATION-TOKEN)", vec![], udp),
        ("udp, no RTCP (-c)", vec!["-c"], udp),
        ("udp, send indications (-s)", vec!["-s"], udp),
        ("udp, client to client (-y)", vec!["-y"], udp),
        ("udp, DONT-FRAGMENT (-g)", vec!["-g"], udp),
        ("udp, 4 clients (-m 4)", vec!["-m", "4"], udp),
        ("tcp (-t)", vec!["-t"], tcp),
        ("tcp, client to client (-t -y)", vec!["-t", "-y"], tcp),
        ("tls (-t -S)", vec!["-t", "-S"], tls),
        ("tls, send indications (-t -S -s)", vec!["-t", "-S", "-s"], tls),
    ];
    let running: Vec<_> = modes.iter().enumerate().map(|(i, (name, flags, port))| (*name, uclient(flags, *port, 100 + i as i64, "127.0.0.1", p))).collect();
    let results: Vec<Figures> = running.into_iter().map(|(name, child)| wait(name, child, Duration::from_secs(60))).collect();
    for f in &results {
        println!("== {}\n  {}", f.mode, f.summary.join("\n  "));
    }
    for f in &results {
        assert!(f.success, "{}: uclient failed\n{}", f.mode, f.output);
        assert!(f.sent > 0 && f.received == f.sent, "{}: sent {} received {}\n{}", f.mode, f.sent, f.received, f.output);
        assert_eq!(f.lost, Some(0), "{}: lost packets\n{}", f.mode, f.output);
    }
    assert!(metric(&server, "duet_turn_allocations_total ").await >= 20.0);
    assert_eq!(metric(&server, "duet_turn_refusals_total{reason=\"quota\"} ").await, 0.0);
}

#[tokio::test]
#[cfg_attr(not(duet_test_coturn), ignore = "skipped: coturn's turnutils_* clients are not installed (Debian package coturn)")]
async fn turnutils_uclient_with_wrong_credentials_or_a_denied_peer_is_refused() {
    let server = relay();
    let udp = server.turn_addr("udp").unwrap().port();
    let peer = Peer::start();
    // A forged password and an expired username: 401, the allocation never completes.
    let (expired, expired_pass) = sc::rest_credentials(SECRET, 9, -60);
    let (fresh, _) = sc::rest_credentials(SECRET, 9, 600);
    for (user, pass) in [(fresh.as_str(), "forged"), (expired.as_str(), expired_pass.as_str())] {
        let out = Command::new("turnutils_uclient")
            .args(["-p", &udp.to_string(), "-u", user, "-w", pass, "-e", "127.0.0.1", "-r", &peer.addr.port().to_string(), "-n", "5", "127.0.0.1"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && text.contains("Cannot complete Allocation"), "{text}");
    }
    assert!(metric(&server, "duet_turn_refusals_total{reason=\"bad_credentials\"} ").await >= 2.0);
    assert_eq!(metric(&server, "duet_turn_allocations ").await, 0.0, "a refused Allocate holds nothing");
    // A private peer: the channel bind is answered 403, which uclient prints.
    let f = wait("denied peer", uclient(&["-c"], udp, 10, "10.1.2.3", 5000), Duration::from_secs(30));
    assert!(!f.success && f.output.contains("error 403"), "{}", f.output);
    assert!(metric(&server, "duet_turn_refusals_total{reason=\"forbidden_peer\"} ").await >= 1.0);
}
