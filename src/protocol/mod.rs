//! The wire types of PROTOCOL.md: what clients read and write, with the exact field names. Server
//! internals convert to these at the edge; nothing here knows of actors or SQL.

use serde::{Deserialize, Serialize};

use crate::store::UserRow;

pub mod conn;
pub mod methods;

/// A user's presence (PROTOCOL.md section 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Offline,
    Available,
    InCall,
}

impl Status {
    /// A user's presence from whether they are online and whether they are in a call.
    pub fn of(online: bool, in_call: bool) -> Status {
        match (online, in_call) {
            (false, _) => Status::Offline,
            (true, true) => Status::InCall,
            (true, false) => Status::Available,
        }
    }
}

/// `User` = `{id, username, displayName, status}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub status: Status,
}

impl User {
    pub fn from_row(row: &UserRow, status: Status) -> Self {
        User { id: row.id, username: row.username.clone(), display_name: row.display_name.clone(), status }
    }
}

/// An entry of `GET /api/users`: a `User` plus unread chat messages from them.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContactEntry {
    #[serde(flatten)]
    pub user: User,
    /// Chat messages from this user not read yet.
    pub unread: i64,
}

/// `ChatMessage` = `{id, fromId, toId (0 = lobby), message, sentAt}`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub id: i64,
    pub from_id: i64,
    /// The recipient, or 0 for the lobby.
    pub to_id: i64,
    pub message: String,
    /// RFC 3339 UTC.
    pub sent_at: String,
}

/// Formats stored milliseconds as RFC 3339 UTC, as every time on the wire is.
pub fn rfc3339(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// Event codes of PROTOCOL.md section 3.1, with the `method` name the server puts beside each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    UserList = 10000,
    Welcome = 10001,
    Ack = 10002,
    Error = 10003,
    StatusChanged = 10004,
    Text = 10005,
    UserOnline = 10006,
    UserOffline = 10008,
    Candidate = 10009,
    Offer = 10010,
    Answer = 10011,
    IncomingCall = 10012,
    Ringing = 10013,
    CallAccepted = 10014,
    CallRejected = 10015,
    CallEnded = 10016,
    CalleeBusy = 10017,
    AnsweredElsewhere = 10018,
    PeerLink = 10019,
    CallResumed = 10020,
    GoingAway = 10021,
}

impl Code {
    /// The `method` of a server frame with this code, when it is not an answer to a client frame.
    pub fn method(self) -> &'static str {
        match self {
            Code::UserList => "User/List",
            Code::Welcome => "User/Welcome",
            Code::Ack | Code::Error => "",
            Code::StatusChanged => "User/Status",
            Code::Text => "Message/Send",
            Code::UserOnline => "User/Online",
            Code::UserOffline => "User/Offline",
            Code::Candidate => "Message/Candidate",
            Code::Offer => "Message/Offer",
            Code::Answer => "Message/Answer",
            Code::IncomingCall => "Call/Invite",
            Code::Ringing => "Call/Ringing",
            Code::CallAccepted => "Call/Accept",
            Code::CallRejected => "Call/Reject",
            Code::CallEnded => "Call/End",
            Code::CalleeBusy => "Call/Busy",
            Code::AnsweredElsewhere => "Call/AnsweredElsewhere",
            Code::PeerLink => "Call/PeerLink",
            Code::CallResumed => "Call/Resumed",
            Code::GoingAway => "Server/GoingAway",
        }
    }
}

/// Error names of 10003 (PROTOCOL.md section 3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WsError {
    BadJson,
    UnknownMethod,
    MissingField,
    Forbidden,
    UnknownUser,
    SelfCall,
    Offline,
    Busy,
    AlreadyInCall,
    UnknownCall,
    NotAParty,
    BadState,
    RateLimited,
    /// Over `DUET_CHAT_PER_MINUTE` (wire name `rate_limited`).
    #[serde(rename = "rate_limited", skip_deserializing)]
    ChatRateLimited,
    /// At `DUET_CHAT_DAILY_MAX` (wire name `rate_limited`).
    #[serde(rename = "rate_limited", skip_deserializing)]
    ChatDailyCap,
    /// Over `DUET_INVITES_PER_MINUTE` to one person (wire name `rate_limited`).
    #[serde(rename = "rate_limited", skip_deserializing)]
    InviteRateLimited,
    /// Over `DUET_CALL_REPORTS_PER_MINUTE` (wire name `rate_limited`).
    #[serde(rename = "rate_limited", skip_deserializing)]
    ReportRateLimited,
    TooLong,
    /// The database does not answer: nothing was stored (a chat message was not sent).
    Unavailable,
    /// The recipient is on another node and Redis is away: nothing was sent (wire name
    /// `unavailable`).
    #[serde(rename = "unavailable", skip_deserializing)]
    NodeUnreachable,
    Internal,
}

impl WsError {
    /// The wire name (`bad_state`, ...).
    pub fn name(self) -> &'static str {
        match self {
            WsError::BadJson => "bad_json",
            WsError::UnknownMethod => "unknown_method",
            WsError::MissingField => "missing_field",
            WsError::Forbidden => "forbidden",
            WsError::UnknownUser => "unknown_user",
            WsError::SelfCall => "self_call",
            WsError::Offline => "offline",
            WsError::Busy => "busy",
            WsError::AlreadyInCall => "already_in_call",
            WsError::UnknownCall => "unknown_call",
            WsError::NotAParty => "not_a_party",
            WsError::BadState => "bad_state",
            WsError::RateLimited | WsError::ChatRateLimited | WsError::ChatDailyCap | WsError::InviteRateLimited | WsError::ReportRateLimited => "rate_limited",
            WsError::TooLong => "too_long",
            WsError::Unavailable | WsError::NodeUnreachable => "unavailable",
            WsError::Internal => "internal",
        }
    }

    /// The human text that goes in `message`.
    pub fn text(self) -> &'static str {
        match self {
            WsError::BadJson => "the frame is not a JSON object of the expected shape",
            WsError::UnknownMethod => "unknown method",
            WsError::MissingField => "a required field is missing or has the wrong type",
            WsError::Forbidden => "fromId is not you",
            WsError::UnknownUser => "no such user",
            WsError::SelfCall => "you cannot call yourself",
            WsError::Offline => "that user is offline",
            WsError::Busy => "that user is busy",
            WsError::AlreadyInCall => "you are already in a call",
            WsError::UnknownCall => "no such call",
            WsError::NotAParty => "you are not a party to that call",
            WsError::BadState => "the call is not in a state that allows this",
            WsError::RateLimited => "too many frames; slow down",
            WsError::ChatRateLimited => "too many chat messages in a minute; nothing was stored, wait a moment",
            WsError::ChatDailyCap => "the day's chat messages are used up; nothing was stored, try again tomorrow (UTC)",
            WsError::InviteRateLimited => "you called this person too often in the last minute; wait a moment",
            WsError::ReportRateLimited => "too many call reports in a minute; this one was not kept",
            WsError::TooLong => "the message is too long",
            WsError::Unavailable => "the database is unavailable; nothing was stored, try again shortly",
            WsError::NodeUnreachable => "that user is on another node, which cannot be reached now (the cluster is degraded); nothing was sent, try again shortly",
            WsError::Internal => "internal error",
        }
    }
}

/// Signaling `data` exactly as the sending client wrote it. It is forwarded to the peer as these
/// bytes, never parsed into a tree and written again.
#[derive(Clone, Debug)]
pub struct RawData(pub std::sync::Arc<serde_json::value::RawValue>);

impl RawData {
    /// Raw data of a value (tests, and frames built by the server).
    pub fn of(v: &serde_json::Value) -> RawData {
        let text = serde_json::to_string(v).unwrap_or_else(|_| "null".into());
        RawData(serde_json::value::RawValue::from_string(text).map(std::sync::Arc::from).unwrap_or_else(|_| null_raw()))
    }

    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The data as a tree, for the methods that read fields of it.
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.get()).unwrap_or(serde_json::Value::Null)
    }
}

fn null_raw() -> std::sync::Arc<serde_json::value::RawValue> {
    std::sync::Arc::from(serde_json::value::RawValue::NULL.to_owned())
}

impl PartialEq for RawData {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Serialize for RawData {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.as_ref().serialize(s)
    }
}

/// The `data` of a server frame: a tree the server built, or a relayed signaling frame whose
/// inner `data` is the sender's bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum FrameData {
    Json(serde_json::Value),
    /// `{fromId, callId, data}` of 10009, 10010 and 10011.
    Relay { from_id: i64, call_id: String, data: Option<RawData> },
}

impl From<serde_json::Value> for FrameData {
    fn from(v: serde_json::Value) -> Self {
        FrameData::Json(v)
    }
}

impl Serialize for FrameData {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        match self {
            FrameData::Json(v) => v.serialize(s),
            FrameData::Relay { from_id, call_id, data } => {
                let mut st = s.serialize_struct("Relay", 3)?;
                st.serialize_field("fromId", from_id)?;
                st.serialize_field("callId", call_id)?;
                st.serialize_field("data", data)?;
                st.end()
            }
        }
    }
}

/// A frame the server sends: `{method, type, code, message, data}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServerFrame {
    pub method: String,
    #[serde(rename = "type")]
    pub kind: u8,
    pub code: u16,
    pub message: String,
    pub data: FrameData,
}

impl ServerFrame {
    /// An event frame: `type` is 1 only for user text (10005).
    pub fn event(code: Code, message: impl Into<String>, data: impl Into<FrameData>) -> Self {
        ServerFrame {
            method: code.method().to_string(),
            kind: u8::from(code == Code::Text),
            code: code as u16,
            message: message.into(),
            data: data.into(),
        }
    }

    /// 10002: `{seq, ...result}` for the client frame `method`.
    pub fn ack(method: &str, seq: i64, result: serde_json::Value) -> Self {
        let mut data = serde_json::json!({ "seq": seq });
        if let (Some(d), serde_json::Value::Object(r)) = (data.as_object_mut(), result) {
            d.extend(r);
        }
        ServerFrame { method: method.to_string(), kind: 0, code: Code::Ack as u16, message: "ok".into(), data: data.into() }
    }

    /// 10003: `{seq, method, error}`. Every 10003 is made here, so it is counted here.
    pub fn error(method: Option<&str>, seq: Option<i64>, error: WsError) -> Self {
        metrics::counter!(crate::telemetry::names::WS_ERRORS, "error" => error.name()).increment(1);
        ServerFrame {
            method: method.unwrap_or_default().to_string(),
            kind: 0,
            code: Code::Error as u16,
            message: error.text().to_string(),
            data: serde_json::json!({ "seq": seq, "method": method, "error": error.name() }).into(),
        }
    }

    /// The frame as the text that goes on the socket, shared by every connection it goes to.
    pub fn to_text(&self) -> conn::Text {
        serde_json::to_string(self).unwrap_or_default().into()
    }
}

/// A frame a client sent, decoded once: the envelope's fields, and `data` kept as the client's
/// bytes (signaling forwards them as they are; other methods parse them with [`Self::data`]).
#[derive(Debug, Clone)]
pub struct ClientFrame {
    pub method: String,
    pub seq: Option<i64>,
    pub to_id: Option<serde_json::Value>,
    pub from_id: Option<serde_json::Value>,
    pub message: Option<serde_json::Value>,
    pub raw_data: Option<RawData>,
}

/// Why a text frame could not even be read as a `ClientFrame`; `method` and `seq` are echoed when
/// they could be read.
#[derive(Debug)]
pub struct Refused {
    pub method: Option<String>,
    pub seq: Option<i64>,
    pub error: WsError,
}

/// The envelope as it is on the wire; unknown fields are skipped without building anything.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    method: Option<serde_json::Value>,
    #[serde(default)]
    seq: Option<serde_json::Value>,
    #[serde(default, rename = "toId")]
    to_id: Option<serde_json::Value>,
    #[serde(default, rename = "fromId")]
    from_id: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<serde_json::Value>,
    #[serde(default, borrow)]
    data: Option<&'a serde_json::value::RawValue>,
}

/// Just the `callId` of a signaling frame's data.
#[derive(Deserialize)]
struct CallRef {
    #[serde(default, rename = "callId")]
    call_id: Option<serde_json::Value>,
}

impl ClientFrame {
    /// Decodes a client frame (PROTOCOL.md section 3 and 7).
    pub fn decode(text: &str) -> Result<ClientFrame, Refused> {
        let refuse = |method: Option<String>, seq, error| Refused { method, seq, error };
        // Only an object is a frame (a derived decoder would also read an array as one).
        if !text.trim_start().starts_with('{') {
            return Err(refuse(None, None, WsError::BadJson));
        }
        let env: Envelope<'_> = serde_json::from_str(text).map_err(|_| refuse(None, None, WsError::BadJson))?;
        let method = match env.method {
            Some(serde_json::Value::String(m)) if !m.is_empty() => Some(m),
            _ => None,
        };
        let seq = match env.seq {
            None => None,
            Some(v) => match v.as_i64() {
                Some(s) => Some(s),
                None => return Err(refuse(method, None, WsError::BadJson)),
            },
        };
        let Some(method) = method else { return Err(refuse(None, seq, WsError::MissingField)) };
        let raw_data = env.data.filter(|d| d.get() != "null").map(|d| RawData(std::sync::Arc::from(d.to_owned())));
        Ok(ClientFrame { to_id: env.to_id, from_id: env.from_id, message: env.message, raw_data, method, seq })
    }

    /// `data` as a tree (`Null` when absent).
    pub fn data(&self) -> serde_json::Value {
        self.raw_data.as_ref().map_or(serde_json::Value::Null, RawData::value)
    }

    /// `data.callId` as given, read without building the rest of `data`.
    pub fn data_call_id(&self) -> Option<serde_json::Value> {
        let raw = self.raw_data.as_ref()?;
        serde_json::from_str::<CallRef>(raw.get()).ok()?.call_id.filter(|v| !v.is_null())
    }

    /// `toId` as a user id (0 is the lobby), or `missing_field`.
    pub fn to_id(&self) -> Result<i64, WsError> {
        self.to_id.as_ref().and_then(id_of).ok_or(WsError::MissingField)
    }

    /// `fromId` as given, if any; `Err` if present but not an id.
    pub fn from_id(&self) -> Result<Option<i64>, WsError> {
        match &self.from_id {
            None => Ok(None),
            Some(v) => id_of(v).map(Some).ok_or(WsError::MissingField),
        }
    }
}

/// The envelope's checks on a decoded frame from `sender`, then its method's own: `fromId`, if
/// given, must be the sender (`forbidden`), and the method must be known and well-formed.
pub fn envelope(frame: &ClientFrame, sender: i64) -> Result<methods::ClientMethod, WsError> {
    match frame.from_id() {
        Ok(None) => {}
        Ok(Some(id)) if id == sender => {}
        _ => return Err(WsError::Forbidden),
    }
    methods::ClientMethod::parse(frame)
}

/// A user id as JSON: a non-negative integer, or a string of digits (old clients sent strings).
fn id_of(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64().filter(|i| *i >= 0),
        serde_json::Value::String(s) => s.parse::<i64>().ok().filter(|i| *i >= 0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes() {
        let f = ClientFrame::decode(r#"{"method":"User/Ping","seq":3,"type":1,"extra":true}"#).unwrap();
        assert_eq!((f.method.as_str(), f.seq), ("User/Ping", Some(3)));
        assert_eq!(ClientFrame::decode("nope").unwrap_err().error, WsError::BadJson);
        assert_eq!(ClientFrame::decode("[1,2]").unwrap_err().error, WsError::BadJson);
        let r = ClientFrame::decode(r#"{"seq":9}"#).unwrap_err();
        assert_eq!((r.error, r.seq), (WsError::MissingField, Some(9)));
        assert_eq!(ClientFrame::decode(r#"{"method":5}"#).unwrap_err().error, WsError::MissingField);
        assert_eq!(ClientFrame::decode(r#"{"method":"x","seq":"a"}"#).unwrap_err().error, WsError::BadJson);
        let f = ClientFrame::decode(r#"{"method":"Message/Send","toId":"7","fromId":null}"#).unwrap();
        assert_eq!(f.to_id(), Ok(7));
        assert_eq!(f.from_id(), Ok(None));
        let f = ClientFrame::decode(r#"{"method":"Message/Send","toId":[7]}"#).unwrap();
        assert_eq!(f.to_id(), Err(WsError::MissingField));
        // Signaling data keeps the client's bytes; the call id is read on its own.
        let f = ClientFrame::decode(r#"{"method":"Message/Candidate","data":{"candidate":{"sdpMid":"0"}, "callId":"c1"}}"#).unwrap();
        assert_eq!(f.raw_data.as_ref().map(RawData::get), Some(r#"{"candidate":{"sdpMid":"0"}, "callId":"c1"}"#));
        assert_eq!(f.data_call_id(), Some(serde_json::json!("c1")));
        assert_eq!(f.data()["candidate"]["sdpMid"], "0");
    }

    #[test]
    fn server_frames_have_the_protocol_shape() {
        let v: serde_json::Value = serde_json::from_str(&ServerFrame::ack("User/Ping", 4, serde_json::json!({"serverTime": 1})).to_text()).unwrap();
        assert_eq!(v["code"], 10002);
        assert_eq!(v["data"]["seq"], 4);
        assert_eq!(v["data"]["serverTime"], 1);
        assert_eq!(v["type"], 0);
        let v: serde_json::Value = serde_json::from_str(&ServerFrame::error(None, None, WsError::BadJson).to_text()).unwrap();
        assert_eq!(v["data"]["error"], "bad_json");
        assert!(v["data"]["seq"].is_null());
        let relay = FrameData::Relay { from_id: 7, call_id: "c1".into(), data: Some(RawData::of(&serde_json::json!({"sdp": {"type": "offer"}}))) };
        let v: serde_json::Value = serde_json::from_str(&ServerFrame::event(Code::Offer, "offer", relay).to_text()).unwrap();
        assert_eq!(v["data"], serde_json::json!({"fromId": 7, "callId": "c1", "data": {"sdp": {"type": "offer"}}}));
        let v: serde_json::Value = serde_json::from_str(&ServerFrame::event(Code::Text, "hi", serde_json::json!({})).to_text()).unwrap();
        assert_eq!((v["type"].as_u64(), v["code"].as_u64()), (Some(1), Some(10005)));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
