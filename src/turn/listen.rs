//! The relay's listeners: UDP, TCP and TLS over TCP (`turn:…?transport=udp`, `…?transport=tcp`,
//! `turns:`). On a stream, STUN messages and ChannelData are framed by their own length fields
//! (RFC 8656 section 12.5, ChannelData padded to 4); the connection is the 5-tuple, so its
//! allocation goes when the connection does.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};

use super::link::{FiveTuple, Link, Transport};
use super::server::Server;
use super::wire;

/// A client that says nothing for this long is disconnected (an allocation is refreshed well
/// within it; RFC 8656's default lifetime is 10 minutes).
const STREAM_IDLE: Duration = Duration::from_secs(15 * 60);
/// Time for a TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Frames queued for one stream client before relayed data is dropped.
const STREAM_QUEUE: usize = 512;

pub async fn udp(server: Arc<Server>, socket: Arc<UdpSocket>, mut closed: watch::Receiver<bool>) {
    let Ok(local) = socket.local_addr() else { return };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (n, from) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                // An ICMP error for an earlier send, or a transient one: keep serving.
                Err(_) => continue,
            },
            _ = closed.changed() => return,
        };
        let five = FiveTuple { client: from, server: local, transport: Transport::Udp };
        let link = Link::Udp { socket: socket.clone(), to: from };
        server.handle(&buf[..n], five, &link).await;
    }
}

/// TCP, or TLS over TCP when `tls` is given.
pub async fn stream(server: Arc<Server>, listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, closed: watch::Receiver<bool>) {
    let Ok(local) = listener.local_addr() else { return };
    let mut stop = closed.clone();
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(e) => {
                    // Out of descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "TURN accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = tcp.set_nodelay(true);
        let (server, tls, closed) = (server.clone(), tls.clone(), closed.clone());
        tokio::spawn(async move {
            match tls {
                None => connection(server, tcp, FiveTuple { client: peer, server: local, transport: Transport::Tcp }, closed).await,
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => connection(server, tls, FiveTuple { client: peer, server: local, transport: Transport::Tls }, closed).await,
                    Ok(Err(e)) => tracing::debug!(client = %peer, error = %e, "TURN TLS handshake failed"),
                    Err(_) => tracing::debug!(client = %peer, "TURN TLS handshake timed out"),
                },
            }
        });
    }
}

/// One stream client: frames in, answers and relayed data out through a writer task.
async fn connection<S>(server: Arc<Server>, io: S, five: FiveTuple, mut closed: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(STREAM_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let link = Link::Stream(tx);
    loop {
        let mut head = [0u8; 4];
        let read = tokio::select! {
            r = tokio::time::timeout(STREAM_IDLE, rd.read_exact(&mut head)) => r,
            _ = closed.changed() => break,
        };
        if !matches!(read, Ok(Ok(_))) {
            break;
        }
        // Anything but STUN or ChannelData means the stream is lost: nothing can be resynced.
        let Some(len) = wire::frame_len(head) else { break };
        let mut frame = vec![0u8; len];
        frame[..4].copy_from_slice(&head);
        if !matches!(tokio::time::timeout(STREAM_IDLE, rd.read_exact(&mut frame[4..])).await, Ok(Ok(_))) {
            break;
        }
        server.handle(&frame, five, &link).await;
    }
    // RFC 8656 section 3.1: the allocation of a stream goes with its connection.
    server.allocations.remove(&five);
    drop(link);
    let abort = writer.abort_handle();
    if tokio::time::timeout(Duration::from_secs(5), writer).await.is_err() {
        abort.abort();
    }
}
