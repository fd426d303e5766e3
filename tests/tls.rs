//! HTTPS and WSS served by duet itself, with a self-signed development certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::Server;
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn https_and_wss_with_a_self_signed_certificate() {
    let server = Server::start_with(&[("DUET_TLS_SELF_SIGNED", "1")]);
    assert!(server.url.starts_with("http://"), "the harness reads the port");
    let base = server.url.replace("http://", "https://");
    let pem = std::fs::read(server.dir().join("tls/self-signed.crt")).expect("the certificate is kept beside the database");
    let http = reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap()).build().unwrap();

    let a = http.post(format!("{base}/api/register")).json(&json!({"username": "alice", "password": "password123"})).send().await.unwrap();
    assert_eq!(a.status(), 201);
    let a = http.post(format!("{base}/api/login")).json(&json!({"username": "alice", "password": "password123"})).send().await.unwrap();
    let cookie = a.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.contains("Secure") && cookie.contains("HttpOnly"), "{cookie}");
    // Under TLS, browsers are told to come back only over TLS.
    assert_eq!(a.headers()["strict-transport-security"], "max-age=31536000");
    let token = a.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    // Plain HTTP on the TLS port is not served.
    assert!(reqwest::get(format!("{}/healthz", server.url)).await.map(|r| !r.status().is_success()).unwrap_or(true));

    // WSS with the same certificate.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile_certs(&pem) {
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let mut req = format!("wss://{}/ws?token={token}", server.addr).into_client_request().unwrap();
    req.headers_mut().insert("Origin", base.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(tokio_tungstenite::Connector::Rustls(Arc::new(config))))
        .await
        .unwrap();
    let first = ws.next().await.unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(v["code"], 10001);
}

/// The DER certificates of a PEM file (no extra crate: the base64 between the markers).
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use base64::Engine;
    let text = String::from_utf8_lossy(pem);
    text.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .filter_map(|rest| rest.split("-----END CERTIFICATE-----").next())
        .map(|b64| base64::prelude::BASE64_STANDARD.decode(b64.split_whitespace().collect::<String>()).unwrap())
        .map(rustls::pki_types::CertificateDer::from)
        .collect()
}
