//! The reader task: reads the socket, decodes each text frame's envelope, and casts what it saw
//! to its connection actor. It ends when the socket closes or the actor is gone.

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use ractor::ActorRef;

use super::{ConnMsg, Inbound};
use crate::protocol::ClientFrame;

/// Largest frame the protocol accepts (PROTOCOL.md section 7); larger ones close with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// What the WebSocket layer itself will buffer; frames between this and `MAX_FRAME_BYTES` are
/// read whole and refused cleanly, larger ones fail the read, which ends the same way.
pub const MAX_READ_BYTES: usize = 1024 * 1024;

pub async fn run(mut stream: SplitStream<WebSocket>, conn: ActorRef<ConnMsg>) {
    while let Some(read) = stream.next().await {
        let inbound = match read {
            Ok(Message::Text(text)) if text.len() > MAX_FRAME_BYTES => Inbound::TooBig,
            Ok(Message::Text(text)) => Inbound::Frame(ClientFrame::decode(text.as_str())),
            Ok(Message::Binary(bytes)) if bytes.len() > MAX_FRAME_BYTES => Inbound::TooBig,
            Ok(Message::Binary(_)) => Inbound::Binary,
            Ok(Message::Ping(_) | Message::Pong(_)) => Inbound::Heard,
            Ok(Message::Close(_)) => break,
            Err(e) => {
                if is_too_big(e) {
                    let _ = conn.cast(ConnMsg::Inbound(Inbound::TooBig));
                }
                break;
            }
        };
        let stop = matches!(inbound, Inbound::TooBig);
        if conn.cast(ConnMsg::Inbound(inbound)).is_err() || stop {
            return;
        }
    }
    let _ = conn.cast(ConnMsg::Inbound(Inbound::Closed));
}

fn is_too_big(e: axum::Error) -> bool {
    e.into_inner()
        .downcast_ref::<tokio_tungstenite::tungstenite::Error>()
        .is_some_and(|e| matches!(e, tokio_tungstenite::tungstenite::Error::Capacity(_)))
}
