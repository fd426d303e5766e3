//! What every folder may say to a connection actor, kept below them all so that the registry and
//! the calls reach connections without importing `connection/` (and `connection/` imports them):
//! the connection id, the connection actor's message enum, and the serialized frame type.

use std::sync::Arc;

use super::User;
use super::methods::ClientMethod;

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

/// The connection id of an actor name made by [`actor_name`].
pub fn id_of_actor(name: &str) -> Option<&str> {
    name.strip_prefix("conn:")
}

/// The live connection actor with this id, if any.
pub fn find(id: &str) -> Option<ractor::ActorRef<ConnMsg>> {
    ractor::ActorRef::where_is(actor_name(id))
}

/// The user a connection id belongs to (ids start with it, see `connection::new_id`).
pub fn user_of(conn_id: &str) -> Option<i64> {
    conn_id.split_once('-')?.0.parse().ok()
}

/// What the reader task passes on to the connection actor.
pub enum Inbound {
    /// A method for the actor, from a frame already rate-limited, decoded and checked (`fromId`).
    Method { method: ClientMethod, seq: Option<i64> },
    /// Over its frame rate for the whole abuse window: close with 1008.
    Flooding,
    /// A frame over the size limit: the connection closes with 1009.
    TooBig,
    /// Nothing at all (not even a pong) for the idle timeout: the peer is gone.
    Silent,
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
    /// Close the socket with this code and stop.
    Close { code: u16, reason: &'static str },
    /// A (re)starting registry asks who this connection is.
    Describe(ractor::RpcReplyPort<JoinInfo>),
}

/// What a connection's writer task takes from its queue.
pub enum Out {
    Text(Text),
    Ping,
}

/// Every open connection's writer queue, by connection id: where the registry and the call
/// sessions put frames for a connection directly, without a hop through its actor (the path of
/// a relayed candidate is reader, session, writer). Registered when the writer starts (it writes
/// nothing before the welcome, see `connection::writer`), removed when it goes.
static OUTBOXES: std::sync::LazyLock<std::sync::RwLock<std::collections::HashMap<ConnId, tokio::sync::mpsc::Sender<Out>>>> =
    std::sync::LazyLock::new(Default::default);

pub fn open_outbox(id: ConnId, queue: tokio::sync::mpsc::Sender<Out>) {
    OUTBOXES.write().unwrap_or_else(|p| p.into_inner()).insert(id, queue);
}

pub fn close_outbox(id: &str) {
    OUTBOXES.write().unwrap_or_else(|p| p.into_inner()).remove(id);
}

/// Delivers a frame to a connection: straight into its writer's queue; through its actor when
/// that queue is full (the actor waits for room, or closes a client that does not read). False
/// if the connection is gone.
pub fn deliver(id: &str, text: Text) -> bool {
    let queue = OUTBOXES.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
    let text = match queue {
        Some(q) => match q.try_send(Out::Text(text)) {
            Ok(()) => return true,
            Err(tokio::sync::mpsc::error::TrySendError::Full(Out::Text(t))) => t,
            Err(_) => return false,
        },
        None => text,
    };
    find(id).is_some_and(|a| a.cast(ConnMsg::Send(text)).is_ok())
}
