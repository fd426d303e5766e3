//! Connections: one actor per WebSocket and two tasks beside it. The reader rate-limits, decodes
//! and checks every frame, routes signaling straight to the call and hands other methods to the
//! actor; the writer owns the socket's sending half behind a bounded queue (the outbox others
//! deliver to). The actor reaches presence and calls only through their messages and data
//! through the store, never another actor's state.

pub mod actor;
pub mod admission;
pub mod limiter;
pub mod methods;
pub mod reader;
pub mod supervisor;
pub mod writer;

pub use actor::{ConnArgs, Connection};
pub use supervisor::{ConnSupMsg, ConnectionSupervisor};

pub use crate::protocol::conn::{CONNECTION_SUPERVISOR as SUPERVISOR, ConnId, ConnMsg, Inbound, actor_name, id_of_actor, user_of};

/// A new connection id. It starts with the user's id, so that whoever sees a connection end,
/// even by a kill that leaves no state behind, knows whose it was.
pub fn new_id(user_id: i64) -> ConnId {
    format!("{user_id}-{}{}", uuid::Uuid::new_v4().simple(), crate::protocol::conn::node_suffix()).into()
}
