//! The connection actor: one per WebSocket, its lifecycle: the welcome, joining presence, the
//! methods the reader hands it (run by `methods/`), closing, and what a stuck client costs.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocket;
use futures_util::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::admission::Slot;
use super::limiter::FrameLimiter;
use super::writer::{SLOW_CONSUMER, SocketWriter, WriteFailed, WriterTiming};
use super::{ConnId, ConnMsg, Inbound, methods, reader};
use crate::call::{self, CallSupMsg};
use crate::config::Settings;
use crate::presence::{self, Presence, RegistryMsg, Text};
use crate::protocol::conn::JoinInfo;
use crate::protocol::methods::ClientMethod;
use crate::protocol::{Code, ServerFrame, Status, User};
use crate::store::{Store, UserRow};
use crate::supervision::StopReason;
use crate::turn::IceConfig;

/// How long a closing connection waits for the peer's close reply.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Close code of a logout (PROTOCOL.md section 7).
pub const LOGGED_OUT: u16 = 4001;

pub struct Connection;

/// What a connection starts from.
pub struct ConnArgs {
    pub conn_id: ConnId,
    /// The login session the socket authenticated with (logout closes it).
    pub session_id: i64,
    pub user: UserRow,
    pub socket: WebSocket,
    pub store: Store,
    pub presence: Presence,
    pub settings: Arc<Settings>,
    pub ice: IceConfig,
    pub limits: Arc<crate::limits::Limits>,
    /// This connection's place under the per-user cap, given back when the state is dropped.
    pub slot: Slot,
    /// And under the per-address cap (none for the machine itself).
    pub address_slot: Option<Slot<std::net::IpAddr>>,
}

pub struct ConnState {
    pub(super) conn_id: ConnId,
    pub(super) session_id: i64,
    pub(super) user: UserRow,
    pub(super) writer: SocketWriter,
    /// Aborted when the state is dropped, however the actor ends.
    reader: AbortOnDrop,
    pub(super) store: Store,
    pub(super) presence: Presence,
    pub(super) settings: Arc<Settings>,
    pub(super) ice: IceConfig,
    pub(super) limits: Arc<crate::limits::Limits>,
    pub(super) _slot: Slot,
    pub(super) _address_slot: Option<Slot<std::net::IpAddr>>,
    /// Set once the writer's queue overflowed: the connection is being closed.
    pub(super) stuck: bool,
}

struct AbortOnDrop(Option<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}


impl ConnState {
    pub(super) fn wire_user(&self, status: Status) -> User {
        User::from_row(&self.user, status)
    }

    /// Queues a frame for the client. A queue that stays full for the stall time means a client
    /// that does not read: it is closed (after this handler).
    async fn queue(&mut self, text: Text) {
        if self.stuck {
            return;
        }
        let stall = Duration::from_millis(self.settings.ws_send_stall_ms);
        match self.writer.send_text(text, stall).await {
            Ok(()) => {}
            Err(WriteFailed::Full) => self.stuck = true,
            Err(WriteFailed::Gone) => {}
        }
    }

    pub(super) async fn write(&mut self, frame: &ServerFrame) -> Result<(), ActorProcessingErr> {
        self.queue(frame.to_text()).await;
        Ok(())
    }

    fn join_message(&self, myself: &ActorRef<ConnMsg>) -> RegistryMsg {
        RegistryMsg::Join {
            conn_id: self.conn_id.clone(),
            session_id: self.session_id,
            user: self.wire_user(Status::Available),
            actor: myself.clone(),
        }
    }
}

impl Actor for Connection {
    type Msg = ConnMsg;
    type State = ConnState;
    type Arguments = ConnArgs;

    async fn pre_start(&self, myself: ActorRef<ConnMsg>, args: ConnArgs) -> Result<ConnState, ActorProcessingErr> {
        let (sink, stream) = args.socket.split();
        let s = &args.settings;
        let front = reader::Front {
            conn_id: args.conn_id.clone(),
            user_id: args.user.id,
            limiter: FrameLimiter::with_rate(s.ws_rate_per_sec as f64, s.ws_rate_burst as f64, Duration::from_millis(s.ws_abuse_close_ms)),
            idle: Duration::from_millis(s.ws_idle_timeout_ms),
        };
        let timing = WriterTiming { ping_every: Duration::from_millis(s.ws_ping_interval_ms), write_timeout: Duration::from_millis(s.ws_write_timeout_ms) };
        let writer = SocketWriter::spawn(args.conn_id.clone(), sink, myself.clone(), timing, s.ws_send_queue);
        let reader = tokio::spawn(reader::run(stream, myself.clone(), front));
        Ok(ConnState {
            conn_id: args.conn_id,
            session_id: args.session_id,
            user: args.user,
            writer,
            reader: AbortOnDrop(Some(reader)),
            store: args.store,
            presence: args.presence,
            settings: args.settings,
            ice: args.ice,
            limits: args.limits,
            _slot: args.slot,
            _address_slot: args.address_slot,
            stuck: false,
        })
    }

    async fn post_start(&self, myself: ActorRef<ConnMsg>, state: &mut ConnState) -> Result<(), ActorProcessingErr> {
        presence::tell(state.join_message(&myself));
        // A call waiting for this user (a reload, a network change, a server restart) is bound
        // to this connection before it hears anything else.
        let active_call = match call::supervisor() {
            Some(sup) => {
                let (user_id, conn_id) = (state.user.id, state.conn_id.clone());
                call::ask(&sup, |reply| CallSupMsg::Resume { user_id, conn_id, reply }).await.unwrap_or(Value::Null)
            }
            None => Value::Null,
        };
        let welcome = json!({
            "connectionId": state.conn_id.as_ref(),
            "user": state.wire_user(Status::Available),
            "iceServers": state.ice.ice_servers(state.user.id),
            "ringTimeoutMs": state.settings.ring_timeout_ms,
            "reconnectGraceMs": state.settings.reconnect_grace_ms,
            "activeCall": active_call,
        });
        let welcome = ServerFrame::event(Code::Welcome, format!("welcome, {}", state.user.display_name), welcome);
        // The registry may not have taken in the join told above yet: this user is online, here.
        let mut contacts = state.presence.contact_list(state.user.id);
        for u in contacts.iter_mut().filter(|u| u.id == state.user.id && u.status == Status::Offline) {
            u.status = Status::Available;
        }
        let list = ServerFrame::event(Code::UserList, "users", json!(contacts));
        // Ahead of anything already queued for this connection.
        state.writer.send_first(vec![welcome.to_text(), list.to_text()]);
        tracing::debug!(conn = %state.conn_id, user.id = state.user.id, "connection open");
        Ok(())
    }

    async fn post_stop(&self, _myself: ActorRef<ConnMsg>, state: &mut ConnState) -> Result<(), ActorProcessingErr> {
        presence::tell(RegistryMsg::Leave { conn_id: state.conn_id.clone() });
        tracing::debug!(conn = %state.conn_id, user.id = state.user.id, "connection closed");
        Ok(())
    }

    async fn handle(&self, myself: ActorRef<ConnMsg>, msg: ConnMsg, state: &mut ConnState) -> Result<(), ActorProcessingErr> {
        match msg {
            ConnMsg::Inbound(inbound) => {
                match inbound {
                    // Boxed: a method's future (a database query inside) is large, and an actor's
                    // task holds its handler's future inline for its whole life; boxing keeps
                    // that cost to the moment a frame is handled, not on every idle connection.
                    Inbound::Method { method, seq } => Box::pin(on_method(state, method, seq)).await?,
                    Inbound::Flooding => {
                        tracing::warn!(conn = %state.conn_id, user.id = state.user.id, "closing a connection that kept flooding");
                        close(&myself, state, 1008, "rate limit").await;
                    }
                    Inbound::TooBig => close(&myself, state, 1009, "frame too big").await,
                    Inbound::Silent => {
                        tracing::info!(conn = %state.conn_id, user.id = state.user.id, "dropping a silent peer");
                        close(&myself, state, 1001, "ping timeout").await;
                    }
                    Inbound::Violation { code, reason } => {
                        tracing::debug!(conn = %state.conn_id, user.id = state.user.id, code, reason, "closing a connection that broke the WebSocket protocol");
                        close(&myself, state, code, reason).await;
                    }
                    Inbound::StoppedReading => {
                        // The writer gave the socket up (1008) already.
                        tracing::info!(conn = %state.conn_id, user.id = state.user.id, "dropped a client that stopped reading (a write timed out)");
                        metrics::counter!(crate::telemetry::names::SLOW_CONSUMERS).increment(1);
                        myself.stop(StopReason::ended("stopped reading"));
                    }
                    Inbound::Closed => myself.stop(StopReason::ended("peer closed")),
                }
            }
            ConnMsg::Send(text) => state.queue(text).await,
            ConnMsg::Close { code, reason } => close(&myself, state, code, reason).await,
            ConnMsg::Describe(reply) => {
                let _ = reply.send(JoinInfo { conn_id: state.conn_id.clone(), session_id: state.session_id, user: state.wire_user(Status::Available) });
            }
        }
        if state.stuck {
            state.stuck = false;
            tracing::warn!(conn = %state.conn_id, user.id = state.user.id, queued = state.settings.ws_send_queue, "closing a client that does not read what it is sent");
            metrics::counter!(crate::telemetry::names::SLOW_CONSUMERS).increment(1);
            state.writer.abandon(SLOW_CONSUMER, "too slow to read").await;
            myself.stop(StopReason::ended("slow consumer"));
        }
        Ok(())
    }
}

async fn close(myself: &ActorRef<ConnMsg>, state: &mut ConnState, code: u16, reason: &'static str) {
    if code == LOGGED_OUT {
        // Said before the socket ends, so the call hears "logout" before "connection lost".
        call::tell(CallSupMsg::ConnectionClosed { conn_id: state.conn_id.clone(), user_id: state.user.id, logout: true });
    }
    state.writer.close(code, reason).await;
    // Give the peer a moment to answer the close: dropping a socket with unread data resets
    // it, and a reset can swallow the close frame (and its code) on the way.
    if let Some(reader) = state.reader.0.as_mut() {
        let _ = tokio::time::timeout(CLOSE_GRACE, reader).await;
    }
    myself.stop(StopReason::ended(reason));
}

/// One method, from a frame the reader already rate-limited, decoded and checked.
async fn on_method(state: &mut ConnState, method: ClientMethod, seq: Option<i64>) -> Result<(), ActorProcessingErr> {
    let name = method.name();
    match methods::run(state, method, seq).await {
        Ok(Some(ack)) => match seq {
            Some(seq) => state.write(&ServerFrame::ack(name, seq, ack)).await,
            None => Ok(()),
        },
        Ok(None) => Ok(()),
        Err(error) => {
            tracing::debug!(conn = %state.conn_id, user.id = state.user.id, method = name, ?error, "frame refused");
            state.write(&ServerFrame::error(Some(name), seq, error)).await
        }
    }
}
