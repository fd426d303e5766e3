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
    /// The registry restarted: join it again without announcing.
    Rejoin,
}
