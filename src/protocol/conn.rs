//! What every folder may say to a connection actor, kept below them all so that the registry and
//! the calls reach connections without importing `connection/` (and `connection/` imports them):
//! the connection id, the connection actor's message enum, and the serialized frame type.

use std::sync::Arc;

use super::{ClientFrame, Refused, User};

/// A connection's id: the `connectionId` of 10001, and `conn:<id>` as an actor name.
pub type ConnId = Arc<str>;

/// A frame already serialized, shared by every connection it goes to (a cheap, reference-counted
/// clone of the same bytes).
pub type Text = axum::extract::ws::Utf8Bytes;

/// The connection supervisor's stable actor name (PROTOCOL.md section 5).
pub const CONNECTION_SUPERVISOR: &str = "connection-supervisor";

/// The actor name of a connection.
pub fn actor_name(id: &str) -> String {
    format!("conn:{id}")
}

/// The live connection actor with this id, if any.
pub fn find(id: &str) -> Option<ractor::ActorRef<ConnMsg>> {
    ractor::ActorRef::where_is(actor_name(id))
}

/// The user a connection id belongs to (ids start with it, see `connection::new_id`).
pub fn user_of(conn_id: &str) -> Option<i64> {
    conn_id.split_once('-')?.0.parse().ok()
}

/// What the reader task saw on the socket.
pub enum Inbound {
    /// A text frame, decoded.
    Frame(Result<ClientFrame, Refused>),
    /// A binary frame: not part of the protocol.
    Binary,
    /// A frame over the size limit: the connection closes with 1009.
    TooBig,
    /// A ping or pong: the peer is alive.
    Heard,
    /// The socket closed or failed.
    Closed,
}

/// What a live connection tells a (re)starting registry about itself.
pub struct JoinInfo {
    pub conn_id: ConnId,
    pub session_id: i64,
    pub user: User,
}

pub enum ConnMsg {
    /// From the reader task.
    Inbound(Inbound),
    /// A frame to write, already serialized.
    Send(Text),
    /// Several frames at once, in order, for one wake-up and one flush.
    SendMany(Vec<Text>),
    /// Close the socket with this code and stop.
    Close { code: u16, reason: &'static str },
    /// Heartbeat: ping the peer, or drop it if it has been silent too long.
    Tick,
    /// A (re)starting registry asks who this connection is.
    Describe(ractor::RpcReplyPort<JoinInfo>),
}
