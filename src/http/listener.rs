//! The HTTP connections behind the router: accepting them, TLS, and what bounds a client that
//! never finishes. Each TCP connection takes a place under its peer address's cap (loopback and
//! trusted proxies are exempt: they speak for many), has its TLS handshake and each HTTP/1
//! request head within the header timeout, and is closed after the idle timeout without a byte
//! moved. A WebSocket upgrade leaves all of that behind: the connection actor has limits of its
//! own. On stop, no new connection is accepted and those in flight finish within the drain time.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::cidr::Cidr;
use crate::quota::{Quota, Slot};

/// What bounds one HTTP connection.
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// A TLS handshake or an HTTP/1 request head not complete within this closes it.
    pub header_timeout: Duration,
    /// No byte read or written for this long closes it.
    pub idle_timeout: Duration,
    /// Connections open at once from one peer address.
    pub max_per_address: usize,
    /// Peers the cap does not apply to (trusted proxies; loopback always).
    pub exempt: Vec<Cidr>,
}

impl ConnLimits {
    pub fn from_settings(s: &crate::config::Settings) -> ConnLimits {
        ConnLimits {
            header_timeout: Duration::from_millis(s.http_header_timeout_ms),
            idle_timeout: Duration::from_millis(s.http_idle_timeout_ms),
            max_per_address: s.http_max_per_address,
            exempt: s.trusted_proxies.clone(),
        }
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        crate::cidr::canonical(ip).is_loopback() || self.exempt.iter().any(|c| c.contains(ip))
    }
}

/// Serves `app` on `listener` until `stop` resolves, then lets the connections in flight finish
/// for at most `drain`.
pub async fn serve(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, app: Router, limits: ConnLimits, stop: impl Future<Output = ()>, drain: Duration) {
    let limits = Arc::new(limits);
    let per_address: Arc<Quota<IpAddr>> = Quota::new(limits.max_per_address);
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                // Out of descriptors, say: wait a moment rather than spin; those open go on.
                Err(e) => {
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match limits.exempt(peer.ip()) {
            true => None,
            false => match per_address.take(crate::cidr::canonical(peer.ip())) {
                Some(slot) => Some(slot),
                None => {
                    metrics::counter!(crate::telemetry::names::HTTP_REFUSED, "reason" => "per_address").increment(1);
                    tracing::debug!(client = %peer.ip(), "HTTP connection refused: too many from this address");
                    if tls.is_none() {
                        tokio::spawn(refuse(tcp));
                    }
                    continue;
                }
            },
        };
        // Signaling frames are small and latency-bound: no Nagle delay on any socket.
        let _ = tcp.set_nodelay(true);
        let connection = Connection { peer, app: app.clone(), limits: limits.clone(), _slot: slot };
        tokio::spawn(connection.run(tcp, tls.clone(), graceful.watcher()));
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::info!(within_ms = drain.as_millis() as u64, "shutdown: some HTTP connections were still open; closing them");
    }
}

/// Over the cap, a plain connection is told so (429) and closed; a TLS one is just closed (an
/// answer would need the handshake the cap is there to spare).
async fn refuse(mut tcp: TcpStream) {
    {
        let body = r#"{"error":"too_many_connections","message":"too many open HTTP connections from this address"}"#;
        let answer = format!(
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 10\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = tcp.write_all(answer.as_bytes()).await;
            let _ = tcp.shutdown().await;
            // Read what the client sent before closing: closing on unread bytes resets the
            // connection, and a reset can overtake the answer.
            let mut sink = [0u8; 4096];
            while matches!(tokio::io::AsyncReadExt::read(&mut tcp, &mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

/// One accepted connection.
struct Connection {
    peer: SocketAddr,
    app: Router,
    limits: Arc<ConnLimits>,
    /// Its place under the peer address's cap, given back when the connection ends or upgrades.
    _slot: Option<Slot<IpAddr>>,
}

impl Connection {
    async fn run(self, tcp: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>, watcher: Watcher) {
        let moved = Arc::new(AtomicU64::new(0));
        let io = Counted { inner: tcp, moved: moved.clone() };
        match tls {
            None => self.http(TokioIo::new(io), moved, watcher).await,
            Some(acceptor) => match tokio::time::timeout(self.limits.header_timeout, acceptor.accept(io)).await {
                Ok(Ok(stream)) => self.http(TokioIo::new(stream), moved, watcher).await,
                Ok(Err(e)) => tracing::debug!(client = %self.peer.ip(), error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(client = %self.peer.ip(), "TLS handshake timed out"),
            },
        }
    }

    async fn http<I>(self, io: TokioIo<I>, moved: Arc<AtomicU64>, watcher: Watcher)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let app = self.app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            tower_service::Service::call(&mut app.clone(), req)
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).header_read_timeout(self.limits.header_timeout);
        builder.http2().timer(TokioTimer::new());
        let conn = watcher.watch(builder.serve_connection_with_upgrades(io, service));
        let idle = watch_idle(moved, self.limits.idle_timeout);
        tokio::select! {
            // Served to its end, or handed over to a WebSocket.
            _ = conn => {}
            () = idle => tracing::debug!(client = %peer.ip(), "closing an idle HTTP connection"),
        }
    }
}

/// Resolves once `moved` has not changed for `idle`.
async fn watch_idle(moved: Arc<AtomicU64>, idle: Duration) {
    let step = (idle / 4).max(Duration::from_millis(5));
    let mut seen = moved.load(Ordering::Relaxed);
    let mut still = Duration::ZERO;
    loop {
        tokio::time::sleep(step).await;
        let now = moved.load(Ordering::Relaxed);
        if now == seen {
            still += step;
            if still >= idle {
                return;
            }
        } else {
            seen = now;
            still = Duration::ZERO;
        }
    }
}

/// A socket that counts its reads and writes, for the idle timeout.
struct Counted {
    inner: TcpStream,
    moved: Arc<AtomicU64>,
}

impl Counted {
    fn tick(&self) {
        self.moved.fetch_add(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() != before {
            self.tick();
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.tick();
        }
        polled
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.tick();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
