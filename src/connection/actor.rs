//! The connection actor: one per WebSocket. It writes every frame the client receives, and
//! handles every frame the client sends: rate limit, envelope checks, then the method.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocket;
use futures_util::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::admission::Slot;
use super::limiter::FrameLimiter;
use super::signal::Routed;
use super::writer::{SLOW_CONSUMER, SocketWriter, WriteFailed};
use super::{ConnId, ConnMsg, Inbound, reader};
use crate::protocol::conn::JoinInfo;
use crate::call::machine::Signal;
use crate::call::{self, CallMsg, CallSupMsg, Event, Media, ReplyTo};
use crate::config::Settings;
use crate::presence::{self, Presence, RegistryMsg, Text};
use crate::protocol::{ChatMessage, ClientFrame, Code, ServerFrame, Status, User, WsError, rfc3339};
use crate::store::messages::LOBBY;
use crate::store::{Store, UserRow, now_ms};
use crate::turn::IceConfig;

/// How long a closing connection waits for the peer's close reply.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Close code of a logout (PROTOCOL.md section 7).
pub const LOGGED_OUT: u16 = 4001;

/// Longest chat message, in characters (PROTOCOL.md section 3.2).
pub const MAX_MESSAGE_CHARS: usize = 4000;

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
    /// This connection's place under the per-user cap, given back when the state is dropped.
    pub slot: Slot,
}

pub struct ConnState {
    conn_id: ConnId,
    session_id: i64,
    user: UserRow,
    writer: SocketWriter,
    /// Aborted when the state is dropped, however the actor ends.
    reader: AbortOnDrop,
    store: Store,
    presence: Presence,
    settings: Arc<Settings>,
    ice: IceConfig,
    _slot: Slot,
    /// Set once the writer's queue overflowed: the connection is being closed.
    stuck: bool,
}

struct AbortOnDrop(Option<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

/// A frame handled without error, and what to acknowledge with.
type Handled = Result<Option<Value>, WsError>;

impl ConnState {
    fn wire_user(&self, status: Status) -> User {
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

    async fn write(&mut self, frame: &ServerFrame) -> Result<(), ActorProcessingErr> {
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
        let writer = SocketWriter::spawn(args.conn_id.clone(), sink, s.ws_send_queue, Duration::from_millis(s.ws_ping_interval_ms));
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
            _slot: args.slot,
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
        let list = ServerFrame::event(Code::UserList, "users", json!(state.presence.contact_list(state.user.id)));
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
                    Inbound::Frame(frame) => on_frame(state, frame).await?,
                    Inbound::Flooding => {
                        tracing::warn!(conn = %state.conn_id, user.id = state.user.id, "closing a connection that kept flooding");
                        close(&myself, state, 1008, "rate limit").await;
                    }
                    Inbound::TooBig => close(&myself, state, 1009, "frame too big").await,
                    Inbound::Silent => {
                        tracing::info!(conn = %state.conn_id, user.id = state.user.id, "dropping a silent peer");
                        close(&myself, state, 1001, "ping timeout").await;
                    }
                    Inbound::Closed => myself.stop(Some("peer closed".into())),
                }
            }
            ConnMsg::Send(text) => state.queue(text).await,
            ConnMsg::SendMany(texts) => {
                for text in texts {
                    state.queue(text).await;
                }
            }
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
            myself.stop(Some("slow consumer".into()));
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
    myself.stop(Some(reason.into()));
}

/// One frame for a method, already rate-limited, decoded and checked by the reader.
async fn on_frame(state: &mut ConnState, frame: ClientFrame) -> Result<(), ActorProcessingErr> {
    let result = dispatch(state, &frame).await;
    match result {
        Ok(Some(ack)) => match frame.seq {
            Some(seq) => state.write(&ServerFrame::ack(&frame.method, seq, ack)).await,
            None => Ok(()),
        },
        Ok(None) => Ok(()),
        Err(error) => {
            tracing::debug!(conn = %state.conn_id, user.id = state.user.id, method = %frame.method, ?error, "frame refused");
            state.write(&ServerFrame::error(Some(&frame.method), frame.seq, error)).await
        }
    }
}

/// Runs one method. `Ok(Some(v))` is acknowledged with `v` when the frame carried a `seq`.
async fn dispatch(state: &mut ConnState, frame: &ClientFrame) -> Handled {
    match frame.method.as_str() {
        "User/Connect" => Ok(Some(json!({}))),
        "User/Ping" => Ok(Some(json!({ "serverTime": rfc3339(now_ms()) }))),
        "User/List" => {
            let list = json!(state.presence.contact_list(state.user.id));
            state.write(&ServerFrame::event(Code::UserList, "users", list)).await.map_err(|_| WsError::Internal)?;
            Ok(Some(json!({})))
        }
        "Message/Send" => send_message(state, frame).await,
        "Message/Read" => {
            let from = frame.to_id()?;
            if from == LOBBY || state.presence.directory.active(from).is_none() {
                return Err(WsError::UnknownUser);
            }
            let n = state.store.mark_read(state.user.id, from, now_ms()).await.map_err(internal)?;
            Ok(Some(json!({ "read": n })))
        }
        "Call/Invite" => invite(state, frame).await,
        "Call/Accept" => call_request(state, frame, "Call/Accept", |user, conn| Event::Accept { user, conn }).await,
        "Call/Reject" => call_request(state, frame, "Call/Reject", |user, conn| Event::Reject { user, conn }).await,
        "Call/Cancel" => call_request(state, frame, "Call/Cancel", |user, conn| Event::Cancel { user, conn }).await,
        "Call/Hangup" => call_request(state, frame, "Call/Hangup", |user, conn| Event::Hangup { user, conn }).await,
        "Message/Offer" => signal(state, frame, Signal::Offer).await,
        "Message/Answer" => signal(state, frame, Signal::Answer).await,
        "Message/Candidate" => signal(state, frame, Signal::Candidate).await,
        "Call/Report" => report(state, frame).await,
        _ => Err(WsError::UnknownMethod),
    }
}

/// `Call/Invite` (rules 1 and 2): checked here as far as the callee's account, then admitted by
/// the call supervisor, which alone knows who is in which call.
async fn invite(state: &mut ConnState, frame: &ClientFrame) -> Handled {
    let to = frame.to_id()?;
    let data = frame.data();
    let media = match data.get("media") {
        None | Some(Value::Null) => Media { audio: true, video: true },
        Some(m) => {
            let flag = |k: &str| match m.get(k) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(WsError::MissingField),
            };
            Media { audio: flag("audio")?, video: flag("video")? }
        }
    };
    if to == state.user.id {
        return Err(WsError::SelfCall);
    }
    let callee = match state.presence.directory.active(to) {
        Some(a) if to != LOBBY => User { id: to, username: a.username, display_name: a.display_name, status: Status::Available },
        _ => return Err(WsError::UnknownUser),
    };
    let sup = call::supervisor().ok_or(WsError::Internal)?;
    // Calling someone, answered or not, makes the two contacts (PROTOCOL.md section 2.1).
    presence::meet(&state.presence, &state.store, state.user.id, to);
    let caller = state.wire_user(Status::Available);
    let conn = state.conn_id.clone();
    let reply = ReplyTo::Conn { conn: conn.clone(), method: "Call/Invite", seq: frame.seq };
    // Cast: the supervisor (or the new call's session) answers the client, ahead of 10013.
    sup.cast(CallSupMsg::Invite { caller, conn, callee, media, reply }).map_err(|_| WsError::Internal)?;
    Ok(None)
}

/// `data.callId`, or `missing_field`.
fn call_id(frame: &ClientFrame) -> Result<String, WsError> {
    match frame.data_call_id() {
        Some(Value::String(id)) if !id.is_empty() => Ok(id),
        _ => Err(WsError::MissingField),
    }
}

/// Casts an event to a live call's session, which answers the client itself (an ack for a
/// `seq`, a 10003 always) ahead of the frames the event causes. A call with no session has
/// ended (or never was): answered here from its record.
async fn to_session(state: &ConnState, id: &str, event: Event, method: &'static str, seq: Option<i64>) -> Handled {
    let reply = ReplyTo::Conn { conn: state.conn_id.clone(), method, seq };
    match call::session(id).map(|s| s.cast(CallMsg::Event { event, reply })) {
        Some(Ok(())) => Ok(None),
        _ => no_session(state, id).await,
    }
}

async fn call_request(state: &mut ConnState, frame: &ClientFrame, method: &'static str, event: impl FnOnce(i64, ConnId) -> Event) -> Handled {
    let id = call_id(frame)?;
    to_session(state, &id, event(state.user.id, state.conn_id.clone()), method, frame.seq).await
}

/// Signaling the reader found no live session for: routed once more (the session may have
/// been restarted meanwhile), else answered from the call's record.
async fn signal(state: &mut ConnState, frame: &ClientFrame, kind: Signal) -> Handled {
    match super::signal::route(&state.conn_id, state.user.id, frame, kind) {
        Routed::Sent => Ok(None),
        Routed::Refused(e) => Err(e),
        Routed::NoSession(id) => no_session(state, &id).await,
    }
}

/// The answer for a call with no live session: it has ended (or never was). `bad_state` to its
/// parties, `not_a_party` to others, else `unknown_call`.
async fn no_session(state: &ConnState, id: &str) -> Handled {
    match state.store.call_by_id(id).await.map_err(internal)? {
        Some(row) if row.caller_id == state.user.id || row.callee_id == state.user.id => Err(WsError::BadState),
        Some(_) => Err(WsError::NotAParty),
        None => Err(WsError::UnknownCall),
    }
}

/// `Call/Report`: kept on the live call, or on the record of one that just ended (clients send
/// a last report after hanging up).
async fn report(state: &mut ConnState, frame: &ClientFrame) -> Handled {
    let id = call_id(frame)?;
    let stats = match frame.data().get_mut("stats").map(Value::take) {
        Some(s @ Value::Object(_)) => s,
        _ => return Err(WsError::MissingField),
    };
    if call::session(&id).is_some() {
        return to_session(state, &id, Event::Report { user: state.user.id, stats }, "Call/Report", frame.seq).await;
    }
    match state.store.call_by_id(&id).await.map_err(internal)? {
        Some(row) if row.caller_id == state.user.id || row.callee_id == state.user.id => {
            let caller = row.caller_id == state.user.id;
            state.store.set_call_report(&id, caller, &stats.to_string()).await.map_err(internal)?;
            Ok(Some(json!({ "callId": id })))
        }
        Some(_) => Err(WsError::NotAParty),
        None => Err(WsError::UnknownCall),
    }
}

/// `Message/Send`: stored first, then delivered (PROTOCOL.md section 3.2).
async fn send_message(state: &mut ConnState, frame: &ClientFrame) -> Handled {
    let to = frame.to_id()?;
    let text = match &frame.message {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err(WsError::MissingField),
    };
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(WsError::TooLong);
    }
    if to != LOBBY && state.presence.directory.active(to).is_none() {
        return Err(WsError::UnknownUser);
    }
    let row = state.store.insert_message(state.user.id, to, &text, now_ms()).await.map_err(internal)?;
    if to != LOBBY && to != state.user.id {
        // Chatting one to one makes the two contacts (PROTOCOL.md section 2.1).
        presence::meet(&state.presence, &state.store, state.user.id, to);
    }
    let chat = ChatMessage { id: row.id, from_id: row.from_id, to_id: row.to_id, message: row.body, sent_at: rfc3339(row.sent_at) };
    let mut data = json!(chat);
    data["username"] = json!(state.user.username);
    let out = ServerFrame::event(Code::Text, chat.message.clone(), data).to_text();
    let except = Some(state.conn_id.clone());
    if to == LOBBY {
        presence::tell(RegistryMsg::SendToAll { text: out, except });
    } else {
        if to != state.user.id {
            presence::tell(RegistryMsg::SendToUser { user_id: to, text: out.clone(), except: None });
        }
        presence::tell(RegistryMsg::SendToUser { user_id: state.user.id, text: out, except });
    }
    Ok(Some(json!({ "id": chat.id, "sentAt": chat.sent_at })))
}

fn internal(e: crate::store::StoreError) -> WsError {
    tracing::error!(error = %e, "store error on a connection");
    WsError::Internal
}
