//! The floor of `bench/compare`: a minimal WebSocket relay, written as the field would write it
//! with tokio + tokio-tungstenite, with duet's shape and none of its logic.
//!
//!   bare-relay [ADDR]                     (default 127.0.0.1:9100)
//!   BARE_RELAY_SMALL_BUFFERS=1 bare-relay  (4 KiB read/write buffers instead of the 128 KiB defaults)
//!
//! Protocol: `GET /ws?id=<integer>` upgrades (anything else gets 400); the server sends one text
//! frame `{"code":10001,"data":{"id":<id>}}`; every text frame received is forwarded, unchanged,
//! to the connection registered under its integer field `toId`, if there is one. Nothing else: no
//! auth, no presence, no validation beyond reading `toId`, no logging per connection.
//!
//! Built as a cargo example of the duet crate: `cargo build --release --example bare-relay`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// id -> the sending half of that connection's writer queue. A std mutex: never held across an await.
type Peers = Arc<Mutex<HashMap<i64, mpsc::UnboundedSender<Message>>>>;

/// The only field the relay reads; serde skips every other field of the frame.
#[derive(Deserialize)]
struct Target {
    #[serde(rename = "toId")]
    to_id: i64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9100".to_owned());
    // None = tungstenite's defaults (128 KiB read buffer, allocated per connection; 128 KiB write
    // buffer target). WebSocketConfig is non_exhaustive: build it with its setter methods.
    let config = match std::env::var("BARE_RELAY_SMALL_BUFFERS").as_deref() {
        Ok("1") => Some(WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(4096)),
        _ => None,
    };
    // The same listen backlog as duet's (4096), so a connect storm measures the relay, not SYN
    // retries of an overflowing accept queue.
    let addr: std::net::SocketAddr = addr.parse().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener: TcpListener = socket.listen(4096)?;
    eprintln!("bare-relay: listening on {} (small buffers: {})", listener.local_addr()?, config.is_some());
    let peers: Peers = Arc::default();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, Arc::clone(&peers), config));
            }
            // EMFILE and friends: back off briefly instead of spinning on the error.
            Err(e) => {
                eprintln!("bare-relay: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// The integer `id` of `/ws?id=<integer>`, or None for any other path or query.
fn requested_id(req: &Request) -> Option<i64> {
    if req.uri().path() != "/ws" {
        return None;
    }
    req.uri().query()?.split('&').find_map(|kv| kv.strip_prefix("id=")).and_then(|v| v.parse().ok())
}

async fn serve(stream: TcpStream, peers: Peers, config: Option<WebSocketConfig>) {
    let _ = stream.set_nodelay(true);
    // The handshake callback reads the id from the request URI and refuses anything else.
    let mut id = None;
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        id = requested_id(req);
        if id.is_some() {
            return Ok(resp);
        }
        let mut refusal = ErrorResponse::new(Some("expected GET /ws?id=<integer>".to_owned()));
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        Err(refusal)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, config).await else {
        return;
    };
    let Some(id) = id else { return };

    // Split the socket: this task reads; a writer task owns the sink and drains the queue.
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let _ = tx.send(Message::Text(format!(r#"{{"code":10001,"data":{{"id":{id}}}}}"#).into()));
    peers.lock().unwrap_or_else(PoisonError::into_inner).insert(id, tx.clone());
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if sink.send(msg).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });

    // Read until the client closes or errors; forward each text frame to its `toId`.
    while let Some(Ok(msg)) = source.next().await {
        let Message::Text(text) = msg else { continue };
        let Ok(target) = serde_json::from_str::<Target>(&text) else { continue };
        if let Some(dst) = peers.lock().unwrap_or_else(PoisonError::into_inner).get(&target.to_id) {
            // Utf8Bytes is reference-counted: forwarding does not copy the text.
            let _ = dst.send(Message::Text(text));
        }
    }

    // Unregister, unless a newer connection has taken the same id meanwhile.
    {
        let mut map = peers.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(&id).is_some_and(|cur| cur.same_channel(&tx)) {
            map.remove(&id);
        }
    }
    // Dropping the last sender ends the writer's loop; it then closes the socket.
    drop(tx);
    let _ = writer.await;
}
