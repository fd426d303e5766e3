//! A STUN Binding request over UDP, TCP or TLS, answered with the address the server saw: how
//! `duet doctor` tells that each of the relay's transports really answers STUN.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use stun::message::{BINDING_REQUEST, CLASS_SUCCESS_RESPONSE, METHOD_BINDING, Message, Setter};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::link::Transport;
use super::wire;

/// Sends a Binding request to `addr` and returns the XOR-MAPPED-ADDRESS of the answer.
pub async fn binding(transport: Transport, addr: SocketAddr, within: Duration) -> Result<SocketAddr, String> {
    let tid: [u8; 12] = rand::random();
    let mut req = Message::new();
    req.typ = BINDING_REQUEST;
    req.transaction_id = stun::agent::TransactionId(tid);
    req.write_header();
    let _ = stun::fingerprint::FINGERPRINT.add_to(&mut req);
    let answer = tokio::time::timeout(within, exchange(transport, addr, &req.raw))
        .await
        .map_err(|_| format!("no answer within {} ms", within.as_millis()))??;
    let msg = wire::decode(&answer).ok_or_else(|| "the answer is not STUN".to_string())?;
    if msg.transaction_id.0 != tid || msg.typ.method != METHOD_BINDING || msg.typ.class != CLASS_SUCCESS_RESPONSE {
        return Err(format!("unexpected answer {}", msg.typ));
    }
    let value = msg.get(stun::attributes::ATTR_XORMAPPED_ADDRESS).map_err(|_| "the answer has no XOR-MAPPED-ADDRESS".to_string())?;
    wire::xor_addr(&value, &tid).ok_or_else(|| "a malformed XOR-MAPPED-ADDRESS".to_string())
}

async fn exchange(transport: Transport, addr: SocketAddr, req: &[u8]) -> Result<Vec<u8>, String> {
    match transport {
        Transport::Udp => {
            let socket = tokio::net::UdpSocket::bind(if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).await.map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 2048];
            // UDP may lose the request: resend every 250 ms until the caller's deadline.
            loop {
                socket.send_to(req, addr).await.map_err(|e| e.to_string())?;
                if let Ok(r) = tokio::time::timeout(Duration::from_millis(250), socket.recv_from(&mut buf)).await {
                    let (n, _) = r.map_err(|e| e.to_string())?;
                    return Ok(buf[..n].to_vec());
                }
            }
        }
        Transport::Tcp => {
            let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            over_stream(tcp, req).await
        }
        Transport::Tls => {
            let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = rustls::ClientConfig::builder().dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate)).with_no_client_auth();
            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
            over_stream(tls, req).await
        }
    }
}

async fn over_stream<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, req: &[u8]) -> Result<Vec<u8>, String> {
    io.write_all(req).await.map_err(|e| e.to_string())?;
    let mut head = [0u8; 4];
    io.read_exact(&mut head).await.map_err(|e| e.to_string())?;
    let len = wire::frame_len(head).ok_or("the answer is not STUN")?;
    let mut frame = vec![0u8; len];
    frame[..4].copy_from_slice(&head);
    io.read_exact(&mut frame[4..]).await.map_err(|e| e.to_string())?;
    Ok(frame)
}

/// The probe checks that the relay answers, not who it is: the certificate is the doctor's other
/// finding. So any certificate is taken here, with its signatures still checked.
#[derive(Debug)]
struct AnyCertificate;

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &rustls::crypto::ring::default_provider().signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &rustls::crypto::ring::default_provider().signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}
