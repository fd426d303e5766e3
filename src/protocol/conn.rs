//! What every folder may say to a connection actor, kept below them all so that the registry and
//! the calls reach connections without importing `connection/` (and `connection/` imports them):
//! the connection id, the connection actor's message enum, and the serialized frame type.

use std::sync::Arc;

use super::User;
use super::methods::ClientMethod;

/// A connection's id: the `connectionId` of 10001, and `conn:<id>` as an actor name. In a
/// cluster it ends `@<node>`, so a call owned by one node can address a party on another.
pub type ConnId = Arc<str>;

/// This node's id, when it is part of a cluster: the suffix of its connection ids.
static NODE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// How a frame for a connection on another node leaves this one: `(node, conn, text)`, true if
/// it was handed on. Set once by the cluster, which sits above this module.
pub type RemoteDelivery = Box<dyn Fn(&str, &str, &str) -> bool + Send + Sync>;
static REMOTE: std::sync::OnceLock<RemoteDelivery> = std::sync::OnceLock::new();

/// Makes this process a cluster node: its connection ids name it, and frames for another
/// node's connections go through `remote`.
pub fn join_cluster(node: &str, remote: RemoteDelivery) {
    let _ = NODE.set(node.to_string());
    let _ = REMOTE.set(remote);
}

/// The node suffix for new connection ids (empty outside a cluster).
pub fn node_suffix() -> String {
    NODE.get().map(|n| format!("@{n}")).unwrap_or_default()
}

/// The node a connection id belongs to, when it is not this one.
pub fn remote_node(id: &str) -> Option<&str> {
    let (_, node) = id.rsplit_once('@')?;
    (NODE.get().map(String::as_str) != Some(node)).then_some(node)
}

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
    /// The client broke RFC 6455 (a bad frame, a bad opcode, text that is not UTF-8): the
    /// connection closes with `code`, 1002 or 1007.
    Violation { code: u16, reason: &'static str },
    /// The writer could not write for its whole timeout: a client that stopped reading. The
    /// writer closed the socket (1008); the connection ends like any lost one.
    StoppedReading,
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
/// that queue is full (the actor waits for room, or closes a client that does not read); to its
/// node when it is another node's. False if the connection is gone (or its node out of reach).
pub fn deliver(id: &str, text: Text) -> bool {
    if let Some(node) = remote_node(id) {
        return REMOTE.get().is_some_and(|send| send(node, id, text.as_str()));
    }
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
