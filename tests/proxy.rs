//! duet behind nginx, with the example configuration of `deploy/nginx.conf` run by a real nginx:
//! HTTPS login through the proxy and the WebSocket upgrade passed through. Skipped, saying so,
//! when nginx is not installed (`.ci/run` installs it).
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

#[tokio::test]
async fn the_nginx_example_proxies_https_and_the_websocket() {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| std::path::Path::new(p).exists());
    let Some(nginx) = nginx else {
        eprintln!("SKIPPED: nginx is not installed (Debian package nginx; .ci/run installs it)");
        return;
    };
    let port = free_port();
    let public = format!("https://localhost:{port}");
    let server = Server::start_with(&[("DUET_PUBLIC_URL", &public)]);

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
    let _nginx = Nginx(
        Command::new(nginx).arg("-p").arg(dir.path()).arg("-c").arg(dir.path().join("nginx.conf")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
    );

    let http = reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(made.cert.pem().as_bytes()).unwrap()).build().unwrap();
    let mut up = false;
    for _ in 0..50 {
        if http.get(format!("{public}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "nginx did not come up: {}", std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default());
    assert_eq!(http.post(format!("{public}/api/register")).json(&json!({"username": "alice", "password": "password123"})).send().await.unwrap().status(), 201);
    let login = http.post(format!("{public}/api/login")).json(&json!({"username": "alice", "password": "password123"})).send().await.unwrap();
    assert!(login.headers()["set-cookie"].to_str().unwrap().contains("Secure"), "the public URL is https, so the cookie is Secure");
    let token = login.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_string();

    // A browser's upgrade through the proxy, from the public origin.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let mut req = format!("wss://localhost:{port}/ws?token={token}").into_client_request().unwrap();
    req.headers_mut().insert("Origin", public.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(tokio_tungstenite::Connector::Rustls(Arc::new(config))))
        .await
        .unwrap();
    let first: serde_json::Value = serde_json::from_str(ws.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(first["code"], 10001);
}
