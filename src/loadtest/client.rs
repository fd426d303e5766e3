//! One load-generator connection: a real WebSocket client (tokio-tungstenite) speaking one of the
//! three servers' protocols, with a reader task that answers "ready", records relay latency, and
//! hands other frames to whoever listens.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::stats::Latencies;

/// The server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// duet: bearer-token upgrade, ready after 10001 and 10000.
    Duet,
    /// bench/bare_relay.rs: `/ws?id=N`, ready after its one welcome frame; frames routed by `toId`.
    Bare,
    /// The PeerJS server: `/peerjs?key=peerjs&id=..&token=..`, ready after `OPEN`; frames routed by `dst`.
    Peerjs,
}

/// Who a connection is: the user id (duet's, or the id the other servers route by) and, for
/// duet, the session token it authenticates with.
#[derive(Clone, Debug)]
pub struct Identity {
    pub id: i64,
    pub token: String,
}

/// What the shared reader tasks record.
pub struct Shared {
    pub start: Instant,
    pub relay: Latencies,
}

/// An open connection; dropping it closes the socket.
pub struct Conn {
    pub who: Identity,
    out: mpsc::UnboundedSender<Message>,
    /// Frames other than relayed candidates, while someone listens (`listen`).
    inbox: Option<mpsc::UnboundedReceiver<Value>>,
    listening: Arc<AtomicBool>,
}

/// The URL to upgrade at, from the server's base URL (`http://host:port`).
fn ws_url(base: &str, target: Target, who: &Identity) -> String {
    let ws = base.replacen("http://", "ws://", 1).replacen("https://", "wss://", 1);
    let ws = ws.trim_end_matches('/');
    match target {
        Target::Duet => format!("{ws}/ws"),
        Target::Bare => format!("{ws}/ws?id={}", who.id),
        Target::Peerjs => format!("{ws}/peerjs?key=peerjs&id={}&token=lt", who.id),
    }
}

/// Why a connection did not get ready.
#[derive(Debug)]
pub enum ConnectError {
    /// The upgrade was answered with this HTTP status.
    Status(u16),
    /// TCP or TLS failed, or the socket closed before the first frames.
    Io(String),
    Timeout,
}

impl ConnectError {
    pub fn name(&self) -> String {
        match self {
            ConnectError::Status(s) => format!("http_{s}"),
            ConnectError::Io(e) if e.contains("refused") => "io_refused".into(),
            ConnectError::Io(e) if e.contains("reset") => "io_reset".into(),
            ConnectError::Io(e) if e.contains("closed") => "io_closed".into(),
            ConnectError::Io(_) => "io".into(),
            ConnectError::Timeout => "timeout".into(),
        }
    }
}

impl Conn {
    /// Connects and waits until the server has said what it says first (duet: 10001, then 10000).
    pub async fn open(base: &str, target: Target, who: Identity, shared: Arc<Shared>, within: Duration) -> Result<Conn, ConnectError> {
        let mut request = ws_url(base, target, &who).into_client_request().map_err(|e| ConnectError::Io(e.to_string()))?;
        if target == Target::Duet {
            let value = format!("Bearer {}", who.token).parse().map_err(|_| ConnectError::Io("bad token".into()))?;
            request.headers_mut().insert("authorization", value);
        }
        // The generator holds thousands of sockets: small buffers, as the server's.
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
        let (socket, _) = match tokio::time::timeout(within, connect).await {
            Err(_) => return Err(ConnectError::Timeout),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(r))) => return Err(ConnectError::Status(r.status().as_u16())),
            Ok(Err(e)) => return Err(ConnectError::Io(e.to_string())),
            Ok(Ok(s)) => s,
        };
        let (mut sink, mut stream) = socket.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let mut batch = vec![m];
                while let Ok(m) = out_rx.try_recv() {
                    batch.push(m);
                }
                for m in batch {
                    if sink.feed(m).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            let _ = sink.close().await;
        });
        let (ready_tx, ready_rx) = oneshot::channel::<()>();
        let (inbox_tx, inbox) = mpsc::unbounded_channel();
        let listening = Arc::new(AtomicBool::new(false));
        let listen = listening.clone();
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            while let Some(Ok(m)) = stream.next().await {
                let Message::Text(text) = m else { continue };
                let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                if let Some(t) = relay_stamp(target, &v) {
                    let now = shared.start.elapsed().as_micros() as u64;
                    shared.relay.record_us(now.saturating_sub(t));
                    continue;
                }
                if let Some(tx) = ready.take() {
                    match (target, v["code"].as_u64(), v["type"].as_str()) {
                        (Target::Duet, Some(10000), _) | (Target::Bare, Some(10001), _) | (Target::Peerjs, _, Some("OPEN")) => {
                            let _ = tx.send(());
                        }
                        _ => ready = Some(tx),
                    }
                    continue;
                }
                if listen.load(Ordering::Relaxed) {
                    let _ = inbox_tx.send(v);
                }
            }
        });
        match tokio::time::timeout(within, ready_rx).await {
            Ok(Ok(())) => Ok(Conn { who, out, inbox: Some(inbox), listening }),
            Ok(Err(_)) => Err(ConnectError::Io("closed before its first frames".into())),
            Err(_) => Err(ConnectError::Timeout),
        }
    }

    /// Another handle on the same socket, to send from a second task.
    pub fn clone_handle(&self) -> Conn {
        Conn { who: self.who.clone(), out: self.out.clone(), inbox: None, listening: self.listening.clone() }
    }

    /// From now on, frames other than relayed candidates are kept, in the receiver returned.
    pub fn listen(&mut self) -> mpsc::UnboundedReceiver<Value> {
        self.listening.store(true, Ordering::Relaxed);
        self.inbox.take().unwrap_or_else(|| mpsc::unbounded_channel().1)
    }

    pub fn send(&self, frame: &Value) {
        let _ = self.out.send(Message::text(frame.to_string()));
    }

    /// A relayed candidate to `to`, stamped with the send time for the receiver to measure.
    pub fn send_candidate(&self, target: Target, to: i64, call_id: Option<&str>, stamp_us: u64) {
        let candidate = json!({"candidate": "candidate:1 1 udp 2122260223 10.0.0.1 50000 typ host", "sdpMid": "0", "sdpMLineIndex": 0});
        let frame = match target {
            Target::Duet => json!({"method": "Message/Candidate", "toId": to, "data": {"callId": call_id, "candidate": candidate, "t": stamp_us}}),
            Target::Bare => json!({"method": "Message/Candidate", "toId": to, "data": {"candidate": candidate, "t": stamp_us}}),
            Target::Peerjs => json!({"type": "CANDIDATE", "dst": to.to_string(), "payload": {"candidate": candidate, "t": stamp_us}}),
        };
        self.send(&frame);
    }
}

/// The send stamp of a relayed candidate, if `v` is one.
fn relay_stamp(target: Target, v: &Value) -> Option<u64> {
    match target {
        Target::Duet if v["code"] == 10009 => v["data"]["data"]["t"].as_u64(),
        Target::Bare => v["data"]["t"].as_u64(),
        Target::Peerjs if v["type"] == "CANDIDATE" => v["payload"]["t"].as_u64(),
        _ => None,
    }
}

/// Waits for a frame with `code` (duet), or a 10003 answering the frame sent with `seq`,
/// skipping others (late refusals of an earlier call's frames among them), up to `within`.
pub async fn wait_code(inbox: &mut mpsc::UnboundedReceiver<Value>, code: u64, seq: Option<i64>, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let v = tokio::time::timeout_at(deadline, inbox.recv()).await.ok()??;
        if v["code"] == code {
            return Some(v);
        }
        if v["code"] == 10003 && seq.is_some() && v["data"]["seq"].as_i64() == seq {
            return Some(v);
        }
    }
}
