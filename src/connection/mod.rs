//! Connections: one actor per WebSocket, owning the socket's writer, fed by a reader task that
//! decodes frames. It validates, rate-limits and routes frames; it reaches presence through the
//! registry's messages and data through the store, never another actor's state.

pub mod actor;
pub mod limiter;
pub mod reader;
pub mod supervisor;
pub mod writer;

use std::sync::Arc;

use crate::protocol::{ClientFrame, Refused};

pub use actor::{ConnArgs, Connection};
pub use supervisor::{ConnectionSupervisor, SUPERVISOR};

/// A connection's id: the `connectionId` of 10001, and `conn:<id>` as an actor name.
pub type ConnId = Arc<str>;

/// The actor name of a connection.
pub fn actor_name(id: &str) -> String {
    format!("conn:{id}")
}

/// A new connection id. It starts with the user's id, so that whoever sees a connection end,
/// even by a kill that leaves no state behind, knows whose it was.
pub fn new_id(user_id: i64) -> ConnId {
    format!("{user_id}-{}", uuid::Uuid::new_v4().simple()).into()
}

/// The user a connection id belongs to.
pub fn user_of(conn_id: &str) -> Option<i64> {
    conn_id.split_once('-')?.0.parse().ok()
}

/// What the reader task saw on the socket.
pub enum Inbound {
    /// A text frame, decoded as far as its envelope.
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

pub enum ConnMsg {
    /// From the reader task.
    Inbound(Inbound),
    /// A frame to write, already serialized.
    Send(crate::presence::Text),
    /// Close the socket with this code and stop.
    Close { code: u16, reason: &'static str },
    /// Heartbeat: ping the peer, or drop it if it has been silent too long.
    Tick,
    /// A (re)starting registry asks who this connection is.
    Describe(ractor::RpcReplyPort<crate::presence::registry::JoinInfo>),
}
