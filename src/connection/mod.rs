//! Connections: one actor per WebSocket, owning the socket's writer, fed by a reader task that
//! decodes frames. It validates, rate-limits and routes frames; it reaches presence through the
//! registry's messages and data through the store, never another actor's state.

pub mod actor;
pub mod admission;
pub mod limiter;
pub mod methods;
pub mod reader;
pub mod supervisor;
pub mod writer;

pub use actor::{ConnArgs, Connection};
pub use supervisor::ConnectionSupervisor;

pub use crate::protocol::conn::{CONNECTION_SUPERVISOR as SUPERVISOR, ConnId, ConnMsg, Inbound, actor_name, user_of};

/// A new connection id. It starts with the user's id, so that whoever sees a connection end,
/// even by a kill that leaves no state behind, knows whose it was.
pub fn new_id(user_id: i64) -> ConnId {
    format!("{user_id}-{}", uuid::Uuid::new_v4().simple()).into()
}
