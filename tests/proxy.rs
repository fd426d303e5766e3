//! duet behind nginx, with the example configuration of `deploy/nginx.conf` run by a real nginx:
//! HTTPS login through the proxy, the WebSocket upgrade passed through, and per-address limits
//! that count the client behind the proxy, not the proxy. Skipped, saying so, when nginx is not
//! installed (`.ci/run` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::Server;
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Kills nginx when the test ends, however it ends.
struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running nginx with the shipped example in front of `server`, on `public`.
struct Proxy {
    _nginx: Nginx,
    _dir: tempfile::TempDir,
    public: String,
    port: u16,
    cert: rcgen::CertifiedKey<rcgen::KeyPair>,
}

impl Proxy {
    /// An HTTP client of the proxy whose connections leave from `source` (any 127.0.0.0/8
    /// address: distinct clients, as nginx sees them).
    fn client(&self, source: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.cert.cert.pem().as_bytes()).unwrap())
            .local_address(source.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    }
}

fn nginx_bin() -> Option<&'static str> {
    let found = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| std::path::Path::new(p).exists());
    if found.is_none() {
        eprintln!("SKIPPED: nginx is not installed (Debian package nginx; .ci/run installs it)");
    }
    found
}

/// The public origin a proxy on `port` will have.
fn public_of(port: u16) -> String {
    format!("https://localhost:{port}")
}

async fn start_proxy(nginx: &str, port: u16, server: &Server) -> Proxy {
    let public = public_of(port);
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), made.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), made.signing_key.serialize_pem()).unwrap();

    // The shipped example, with this test's names, ports and files; the redirect block goes.
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx.conf")).unwrap();
    let https_block = example.split("\nserver {").nth(1).expect("a server block");
    let site = format!("server {{{https_block}")
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
        .replace("duet.example.com", "localhost")
        .replace("/etc/letsencrypt/live/localhost/fullchain.pem", &dir.path().join("cert.pem").display().to_string())
        .replace("/etc/letsencrypt/live/localhost/privkey.pem", &dir.path().join("key.pem").display().to_string())
        .replace("127.0.0.1:8080", &server.addr);
    let d = dir.path().display();
    let conf = format!(
        "daemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n access_log off;\n client_body_temp_path {d}/body;\n \
         proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n{site}\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let test = Command::new(nginx).args(["-t", "-p"]).arg(dir.path()).arg("-c").arg(dir.path().join("nginx.conf")).output().unwrap();
    assert!(test.status.success(), "nginx -t: {}", String::from_utf8_lossy(&test.stderr));
    let nginx = Nginx(
        Command::new(nginx).arg("-p").arg(dir.path()).arg("-c").arg(dir.path().join("nginx.conf")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
    );
    let proxy = Proxy { _nginx: nginx, _dir: dir, public, port, cert: made };
    let http = proxy.client("127.0.0.1");
    for _ in 0..50 {
        if http.get(format!("{}/healthz", proxy.public)).send().await.is_ok_and(|r| r.status().is_success()) {
            return proxy;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nginx did not come up: {}", std::fs::read_to_string(proxy._dir.path().join("error.log")).unwrap_or_default());
}

#[tokio::test]
async fn the_nginx_example_proxies_https_and_the_websocket() {
    let Some(nginx) = nginx_bin() else { return };
    let port = free_port();
    let public = public_of(port);
    let server = Server::start_with(&[("DUET_PUBLIC_URL", &public), ("DUET_TRUSTED_PROXIES", "127.0.0.1")]);
    let proxy = start_proxy(nginx, port, &server).await;
    let http = proxy.client("127.0.0.1");
    assert_eq!(http.post(format!("{public}/api/register")).json(&json!({"username": "alice", "password": "password123"})).send().await.unwrap().status(), 201);
    let login = http.post(format!("{public}/api/login")).json(&json!({"username": "alice", "password": "password123"})).send().await.unwrap();
    assert!(login.headers()["set-cookie"].to_str().unwrap().contains("Secure"), "the public URL is https, so the cookie is Secure");
    let token = login.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_string();

    // A browser's upgrade through the proxy, from the public origin.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(proxy.cert.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let mut req = format!("wss://localhost:{}/ws?token={token}", proxy.port).into_client_request().unwrap();
    req.headers_mut().insert("Origin", public.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(tokio_tungstenite::Connector::Rustls(Arc::new(config))))
        .await
        .unwrap();
    let first: serde_json::Value = serde_json::from_str(ws.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(first["code"], 10001);
}

#[tokio::test]
async fn behind_the_proxy_a_flood_of_failed_logins_locks_out_that_client_and_no_other() {
    let Some(nginx) = nginx_bin() else { return };
    let port = free_port();
    let public = public_of(port);
    // An address may fail 4 x 2 = 8 times; a name 2 times.
    let server = Server::start_with(&[("DUET_PUBLIC_URL", &public), ("DUET_TRUSTED_PROXIES", "127.0.0.1/32"), ("DUET_LOGIN_MAX_FAILURES", "2")]);
    let proxy = start_proxy(nginx, port, &server).await;
    let (attacker, friend) = (proxy.client("127.0.0.2"), proxy.client("127.0.0.3"));
    assert_eq!(friend.post(format!("{public}/api/register")).json(&json!({"username": "alice", "password": "password123"})).send().await.unwrap().status(), 201);
    let login = |c: &reqwest::Client, name: String, password: &'static str, spoof: Option<String>| {
        let mut req = c.post(format!("{public}/api/login")).json(&json!({"username": name, "password": password}));
        if let Some(s) = spoof {
            // A client naming another address itself: nginx appends the one it saw.
            req = req.header("X-Forwarded-For", s);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    // The attacker guesses one password for many names, claiming a new address each time.
    let mut statuses = Vec::new();
    for i in 0..10 {
        statuses.push(login(&attacker, format!("victim{i}"), "guess", Some(format!("198.51.100.{i}"))).await);
    }
    assert_eq!(&statuses[..8], &[401; 8], "{statuses:?}");
    assert_eq!(&statuses[8..], &[429, 429], "the attacker's own address is locked: {statuses:?}");
    // Alice, behind the same proxy from another address, still signs in.
    assert_eq!(login(&friend, "alice".into(), "password123", None).await, 200);
    // And the attacker stays locked, even with the right password of someone else's name.
    assert_eq!(login(&attacker, "alice".into(), "password123", None).await, 429);
}
