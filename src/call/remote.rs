//! The call side of a cluster: an event for a call another node owns is forwarded there, with
//! where its answer goes; an event another node forwards arrives here as an [`Event`] for the
//! call's session. Both as values Redis can carry.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::machine::{Event, Signal};
use super::session::{CallMsg, ReplyTo};
use crate::protocol::{RawData, WsError};

/// The events a party's node forwards to the call's owner.
#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Forward {
    Accept { user: i64, conn: String },
    Reject { user: i64, conn: String },
    Cancel { user: i64, conn: String },
    Hangup { user: i64, conn: String },
    Glare { user: i64, to: i64, conn: String },
    /// `data` is the client's JSON as text: a raw value cannot sit inside the tagged messages.
    Signal { kind: SignalKind, user: i64, conn: String, to: Option<i64>, implicit: bool, data: Option<String> },
    Report { user: i64, stats: Value },
    Lost { conn: String, logout: bool },
    Resume { user: i64, conn: String },
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Offer,
    Answer,
    Candidate,
}

impl Forward {
    /// The forwardable form of an event a connection or the call supervisor made.
    pub fn of(event: &Event) -> Option<Forward> {
        Some(match event {
            Event::Accept { user, conn } => Forward::Accept { user: *user, conn: conn.to_string() },
            Event::Reject { user, conn } => Forward::Reject { user: *user, conn: conn.to_string() },
            Event::Cancel { user, conn } => Forward::Cancel { user: *user, conn: conn.to_string() },
            Event::Hangup { user, conn } => Forward::Hangup { user: *user, conn: conn.to_string() },
            Event::Glare { user, to, conn } => Forward::Glare { user: *user, to: *to, conn: conn.to_string() },
            Event::Signal { kind, user, conn, to, implicit, data } => Forward::Signal {
                kind: match kind {
                    Signal::Offer => SignalKind::Offer,
                    Signal::Answer => SignalKind::Answer,
                    Signal::Candidate => SignalKind::Candidate,
                },
                user: *user,
                conn: conn.to_string(),
                to: *to,
                implicit: *implicit,
                data: data.as_ref().map(|d| d.0.get().to_string()),
            },
            Event::Report { user, stats } => Forward::Report { user: *user, stats: stats.clone() },
            Event::ConnectionLost { conn, logout } => Forward::Lost { conn: conn.to_string(), logout: *logout },
            Event::Resume { user, conn } => Forward::Resume { user: *user, conn: conn.to_string() },
            _ => return None,
        })
    }

    pub fn into_event(self) -> Event {
        let id = |s: String| -> crate::protocol::conn::ConnId { s.into() };
        match self {
            Forward::Accept { user, conn } => Event::Accept { user, conn: id(conn) },
            Forward::Reject { user, conn } => Event::Reject { user, conn: id(conn) },
            Forward::Cancel { user, conn } => Event::Cancel { user, conn: id(conn) },
            Forward::Hangup { user, conn } => Event::Hangup { user, conn: id(conn) },
            Forward::Glare { user, to, conn } => Event::Glare { user, to, conn: id(conn) },
            Forward::Signal { kind, user, conn, to, implicit, data } => Event::Signal {
                kind: match kind {
                    SignalKind::Offer => Signal::Offer,
                    SignalKind::Answer => Signal::Answer,
                    SignalKind::Candidate => Signal::Candidate,
                },
                user,
                conn: id(conn),
                to,
                implicit,
                data: data.and_then(|d| RawValue::from_string(d).ok()).map(|d| RawData(Arc::from(d))),
            },
            Forward::Report { user, stats } => Event::Report { user, stats },
            Forward::Lost { conn, logout } => Event::ConnectionLost { conn: id(conn), logout },
            Forward::Resume { user, conn } => Event::Resume { user, conn: id(conn) },
        }
    }
}

/// Where the answer to a forwarded event goes.
#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Answer {
    Nobody,
    /// To the client, on its connection (on its own node).
    Conn { conn: String, method: String, seq: Option<i64> },
    /// Back to the asking node, which waits for it under `req`.
    Ask { node: String, req: u64 },
}

/// The methods whose answers a session sends to a connection (`ReplyTo::Conn` holds static
/// names).
const METHODS: [&str; 10] = [
    "Call/Invite",
    "Call/Accept",
    "Call/Reject",
    "Call/Cancel",
    "Call/Hangup",
    "Call/Report",
    "Message/Offer",
    "Message/Answer",
    "Message/Candidate",
    "Call",
];

impl Answer {
    /// The owner's side: a `ReplyTo` for the session. An asking node gets the answer's value
    /// (the `activeCall` of a resume) on its channel.
    pub fn into_reply(self, cluster: &Arc<crate::cluster::Cluster>) -> ReplyTo {
        match self {
            Answer::Nobody => ReplyTo::Nobody,
            Answer::Conn { conn, method, seq } => {
                let method = METHODS.into_iter().find(|m| *m == method).unwrap_or("Call");
                ReplyTo::Conn { conn: conn.into(), method, seq }
            }
            Answer::Ask { node, req } => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let cluster = cluster.clone();
                tokio::spawn(async move {
                    let value = match tokio::time::timeout(super::ASK_TIMEOUT, rx).await {
                        Ok(Ok(Ok(v))) => v,
                        _ => Value::Null,
                    };
                    cluster.answer(&node, req, value);
                });
                ReplyTo::Port(tx.into())
            }
        }
    }
}

/// How long a node waits for the owner's answer to a forwarded question.
const REMOTE_ASK: Duration = Duration::from_secs(3);

/// Sends an event for a call this node does not hold to the node that owns it, if another node
/// does; gives it back otherwise. While Redis is away the sender hears a clear 10003 at once.
pub fn forward(call_id: &str, event: Event, reply: ReplyTo) -> Result<(), (Event, ReplyTo)> {
    let Some(cluster) = crate::cluster::current() else { return Err((event, reply)) };
    let Some(entry) = cluster.directory.get(call_id).filter(|e| e.owner != cluster.node) else { return Err((event, reply)) };
    let Some(fwd) = Forward::of(&event) else { return Err((event, reply)) };
    if !cluster.healthy() {
        reply.send(Err(WsError::NodeUnreachable));
        return Ok(());
    }
    let answer = match reply {
        ReplyTo::Nobody => Answer::Nobody,
        ReplyTo::Conn { conn, method, seq } => Answer::Conn { conn: conn.to_string(), method: method.to_string(), seq },
        ReplyTo::Port(port) => {
            let (req, rx) = cluster.expect_answer();
            tokio::spawn(async move {
                let value = tokio::time::timeout(REMOTE_ASK, rx).await.ok().and_then(Result::ok);
                let _ = port.send(value.ok_or(WsError::NodeUnreachable));
            });
            Answer::Ask { node: cluster.node.clone(), req }
        }
    };
    cluster.send_event(&entry.owner, call_id, fwd, answer);
    Ok(())
}

/// The call another node owns that `user_id` is in, if any.
pub fn call_elsewhere(user_id: i64) -> Option<String> {
    let cluster = crate::cluster::current()?;
    cluster.directory.of_user(user_id).filter(|(_, e)| e.owner != cluster.node).map(|(id, _)| id)
}

/// Whether another node owns this call.
pub fn owned_elsewhere(call_id: &str) -> bool {
    crate::cluster::current().is_some_and(|c| c.directory.get(call_id).is_some_and(|e| e.owner != c.node))
}

/// On the owner: a forwarded event, to the call's session; a call that has ended meanwhile is
/// answered `bad_state`, as on one node.
pub fn deliver(call_id: &str, event: Event, reply: ReplyTo) {
    match super::session(call_id) {
        Some(s) => {
            if let Err(ractor::MessagingErr::SendErr(CallMsg::Event { reply, .. })) = s.cast(CallMsg::Event { event, reply }) {
                reply.send(Err(WsError::BadState));
            }
        }
        None => reply.send(Err(WsError::BadState)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_crosses_as_json_and_comes_back_the_same() {
        let data = RawData(Arc::from(RawValue::from_string(r#"{"sdp":"v=0\r\n","type":"offer"}"#.to_string()).unwrap()));
        let event = Event::Signal { kind: Signal::Offer, user: 7, conn: "7-ab@n2".into(), to: Some(9), implicit: false, data: Some(data) };
        // Inside a tagged message, as it crosses.
        let text = serde_json::to_string(&serde_json::json!({"t": "call_event", "event": Forward::of(&event).unwrap()})).unwrap();
        let back: Forward = serde_json::from_value(serde_json::from_str::<Value>(&text).unwrap()["event"].take()).unwrap();
        match back.into_event() {
            Event::Signal { kind: Signal::Offer, user: 7, conn, to: Some(9), implicit: false, data: Some(d) } => {
                assert_eq!(&*conn, "7-ab@n2");
                assert_eq!(d.0.get(), r#"{"sdp":"v=0\r\n","type":"offer"}"#);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timers_and_restarts_never_cross_nodes() {
        assert!(Forward::of(&Event::Start).is_none());
        assert!(Forward::of(&Event::Revived).is_none());
    }
}
