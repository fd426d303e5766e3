//! The reader task: the front of a connection. It reads the socket and, for every text frame:
//! the rate limit, the decode, the identity check (`fromId`), answering refusals itself; then
//! signaling goes straight to the call (`signal.rs`) and every other method to the connection
//! actor. It also keeps the idle timeout: a peer that sends nothing, not even the pong to the
//! writer's pings, for that long is reported silent. It ends when the socket closes or the actor
//! is gone.

use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use ractor::ActorRef;

use super::limiter::{FrameLimiter, Verdict};
use super::methods::signal::{self, Routed, Signaling};
use super::{ConnId, ConnMsg, Inbound};
use crate::protocol::methods::ClientMethod;
use crate::protocol::{ClientFrame, ServerFrame, WsError, conn};

/// Largest frame the protocol accepts (PROTOCOL.md section 7); larger ones close with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// What the WebSocket layer itself will buffer; frames between this and `MAX_FRAME_BYTES` are
/// read whole and refused cleanly, larger ones fail the read, which ends the same way.
pub const MAX_READ_BYTES: usize = 1024 * 1024;

/// Who reads, and the limit on how fast they may send.
pub struct Front {
    pub conn_id: ConnId,
    pub user_id: i64,
    pub limiter: FrameLimiter,
    pub idle: Duration,
}

impl Front {
    /// A 10003 to this connection, straight to its writer.
    fn refuse(&self, method: Option<&str>, seq: Option<i64>, error: WsError) {
        conn::deliver(&self.conn_id, ServerFrame::error(method, seq, error).to_text());
    }

    /// Everything but the method itself; `Some` is a frame for the actor.
    fn check(&mut self, text: &str) -> Option<Inbound> {
        let decoded = ClientFrame::decode(text);
        let (method, seq) = match &decoded {
            Ok(f) => (Some(f.method.as_str()), f.seq),
            Err(r) => (r.method.as_deref(), r.seq),
        };
        match self.limiter.check(Instant::now()) {
            Verdict::Allow => {}
            Verdict::Refuse => {
                self.refuse(method, seq, WsError::RateLimited);
                return None;
            }
            Verdict::Close => {
                self.refuse(method, seq, WsError::RateLimited);
                return Some(Inbound::Flooding);
            }
        }
        let frame = match decoded {
            Ok(f) => f,
            Err(r) => {
                self.refuse(r.method.as_deref(), r.seq, r.error);
                return None;
            }
        };
        let method = match crate::protocol::envelope(&frame, self.user_id) {
            Ok(m) => m,
            Err(e) => {
                if e == WsError::Forbidden {
                    tracing::debug!(conn = %self.conn_id, user.id = self.user_id, method = %frame.method, "frame refused: fromId is not the sender");
                }
                self.refuse(Some(&frame.method), frame.seq, e);
                return None;
            }
        };
        let ClientMethod::Signal { kind, to, call_id, data } = method else { return Some(Inbound::Method { method, seq: frame.seq }) };
        let s = Signaling { kind, to, call_id, data, seq: frame.seq };
        match signal::route(&self.conn_id, self.user_id, &s) {
            Routed::Sent => None,
            Routed::Refused(e) => {
                self.refuse(Some(&frame.method), frame.seq, e);
                None
            }
            // The actor looks the call up to say why (it may read the database).
            Routed::NoSession(_) => {
                let Signaling { kind, to, call_id, data, seq } = s;
                Some(Inbound::Method { method: ClientMethod::Signal { kind, to, call_id, data }, seq })
            }
        }
    }
}

pub async fn run(mut stream: SplitStream<WebSocket>, conn: ActorRef<ConnMsg>, mut front: Front) {
    loop {
        let read = match tokio::time::timeout(front.idle, stream.next()).await {
            Err(_) => {
                let _ = conn.cast(ConnMsg::Inbound(Inbound::Silent));
                return;
            }
            Ok(None) => break,
            Ok(Some(read)) => read,
        };
        let inbound = match read {
            Ok(Message::Text(text)) if text.len() > MAX_FRAME_BYTES => Inbound::TooBig,
            Ok(Message::Text(text)) => match front.check(text.as_str()) {
                Some(inbound) => inbound,
                None => continue,
            },
            Ok(Message::Binary(bytes)) if bytes.len() > MAX_FRAME_BYTES => Inbound::TooBig,
            Ok(Message::Binary(_)) => {
                // Not part of the protocol; counted like any frame.
                if front.limiter.check(Instant::now()) == Verdict::Close {
                    Inbound::Flooding
                } else {
                    front.refuse(None, None, WsError::BadJson);
                    continue;
                }
            }
            // The peer is alive; the timeout above starts again.
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) => break,
            Err(e) => match violation(e) {
                Some(inbound) => {
                    let _ = conn.cast(ConnMsg::Inbound(inbound));
                    return;
                }
                None => break,
            },
        };
        let stop = matches!(inbound, Inbound::TooBig);
        if conn.cast(ConnMsg::Inbound(inbound)).is_err() || stop {
            return;
        }
    }
    let _ = conn.cast(ConnMsg::Inbound(Inbound::Closed));
}

/// What a failed read means: a frame too big (1009), a violation of RFC 6455 section 7.4.1
/// (1002 for the framing, 1007 for text that is not UTF-8), or `None`, the connection lost.
fn violation(e: axum::Error) -> Option<Inbound> {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    let inner = e.into_inner();
    match inner.downcast_ref::<Error>()? {
        Error::Capacity(_) => Some(Inbound::TooBig),
        Error::Utf8(_) => Some(Inbound::Violation { code: 1007, reason: "text is not UTF-8" }),
        // The peer vanished without a close: nobody to tell.
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        Error::Protocol(p) => Some(Inbound::Violation { code: 1002, reason: protocol_reason(p) }),
        _ => None,
    }
}

/// The close reason for a protocol violation (at most 123 bytes, RFC 6455 section 5.5).
fn protocol_reason(p: &tokio_tungstenite::tungstenite::error::ProtocolError) -> &'static str {
    use tokio_tungstenite::tungstenite::error::ProtocolError as P;
    match p {
        P::NonZeroReservedBits => "reserved bits set",
        P::UnmaskedFrameFromClient => "unmasked client frame",
        P::UnknownControlFrameType(_) | P::UnknownDataFrameType(_) | P::InvalidOpcode(_) => "reserved opcode",
        P::UnexpectedContinueFrame | P::ExpectedFragment(_) => "bad fragmentation",
        P::FragmentedControlFrame | P::ControlFrameTooBig => "bad control frame",
        P::InvalidCloseSequence => "bad close frame",
        _ => "protocol error",
    }
}
