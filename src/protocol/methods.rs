//! The methods of PROTOCOL.md section 3.2 with their payloads, typed: a client frame is decoded
//! once, here, into a [`ClientMethod`], and every handler gets fields of the right type or the
//! frame was already refused with the protocol's error name. Checks that need to know users or
//! calls (`unknown_user`, `self_call`, ...) belong to the handlers.

use serde_json::Value;

use super::{ClientFrame, Code, RawData, WsError};

/// Longest chat message, in characters (PROTOCOL.md section 3.2).
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// What a call is set up for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Media {
    pub audio: bool,
    pub video: bool,
}

/// Kinds of signaling forwarded between the two bound connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Offer,
    Answer,
    Candidate,
}

impl Signal {
    pub fn code(self) -> Code {
        match self {
            Signal::Offer => Code::Offer,
            Signal::Answer => Code::Answer,
            Signal::Candidate => Code::Candidate,
        }
    }
}

/// A request about one call, by its callee or caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallRequest {
    Accept,
    Reject,
    Cancel,
    Hangup,
}

#[derive(Clone, Debug)]
pub enum ClientMethod {
    /// `User/Connect`: a no-op kept for old clients.
    Connect,
    /// `User/Ping`.
    Ping,
    /// `User/List`.
    List,
    /// `Message/Send`: `to` 0 is the lobby; the text is non-blank and within the limit.
    Send { to: i64, text: String },
    /// `Message/Read`: messages from `from`.
    Read { from: i64 },
    /// `Call/Invite`.
    Invite { to: i64, media: Media },
    /// `Call/Accept`, `Call/Reject`, `Call/Cancel`, `Call/Hangup`.
    Call { request: CallRequest, call_id: String },
    /// `Message/Offer`, `Message/Answer`, `Message/Candidate`: `data` stays the sender's bytes.
    Signal { kind: Signal, to: Option<i64>, call_id: Option<String>, data: Option<RawData> },
    /// `Call/Report`.
    Report { call_id: String, stats: Value },
}

impl ClientMethod {
    /// The method of a frame, or the 10003 error name it is refused with.
    pub fn parse(frame: &ClientFrame) -> Result<ClientMethod, WsError> {
        use ClientMethod as M;
        Ok(match frame.method.as_str() {
            "User/Connect" => M::Connect,
            "User/Ping" => M::Ping,
            "User/List" => M::List,
            "Message/Send" => {
                let to = frame.to_id()?;
                let text = match &frame.message {
                    Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
                    _ => return Err(WsError::MissingField),
                };
                if text.chars().count() > MAX_MESSAGE_CHARS {
                    return Err(WsError::TooLong);
                }
                M::Send { to, text }
            }
            "Message/Read" => M::Read { from: frame.to_id()? },
            "Call/Invite" => {
                let to = frame.to_id()?;
                let media = match frame.data().get("media") {
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
                M::Invite { to, media }
            }
            "Call/Accept" => M::Call { request: CallRequest::Accept, call_id: call_id(frame)? },
            "Call/Reject" => M::Call { request: CallRequest::Reject, call_id: call_id(frame)? },
            "Call/Cancel" => M::Call { request: CallRequest::Cancel, call_id: call_id(frame)? },
            "Call/Hangup" => M::Call { request: CallRequest::Hangup, call_id: call_id(frame)? },
            "Message/Offer" => signal(frame, Signal::Offer)?,
            "Message/Answer" => signal(frame, Signal::Answer)?,
            "Message/Candidate" => signal(frame, Signal::Candidate)?,
            "Call/Report" => {
                let call_id = call_id(frame)?;
                let stats = match frame.data().get_mut("stats").map(Value::take) {
                    Some(s @ Value::Object(_)) => s,
                    _ => return Err(WsError::MissingField),
                };
                M::Report { call_id, stats }
            }
            _ => return Err(WsError::UnknownMethod),
        })
    }

    /// The method's wire name, for its ack or 10003.
    pub fn name(&self) -> &'static str {
        match self {
            ClientMethod::Connect => "User/Connect",
            ClientMethod::Ping => "User/Ping",
            ClientMethod::List => "User/List",
            ClientMethod::Send { .. } => "Message/Send",
            ClientMethod::Read { .. } => "Message/Read",
            ClientMethod::Invite { .. } => "Call/Invite",
            ClientMethod::Call { request: CallRequest::Accept, .. } => "Call/Accept",
            ClientMethod::Call { request: CallRequest::Reject, .. } => "Call/Reject",
            ClientMethod::Call { request: CallRequest::Cancel, .. } => "Call/Cancel",
            ClientMethod::Call { request: CallRequest::Hangup, .. } => "Call/Hangup",
            ClientMethod::Signal { kind: Signal::Offer, .. } => "Message/Offer",
            ClientMethod::Signal { kind: Signal::Answer, .. } => "Message/Answer",
            ClientMethod::Signal { kind: Signal::Candidate, .. } => "Message/Candidate",
            ClientMethod::Report { .. } => "Call/Report",
        }
    }
}

/// `data.callId`, or `missing_field`.
fn call_id(frame: &ClientFrame) -> Result<String, WsError> {
    match frame.data_call_id() {
        Some(Value::String(id)) if !id.is_empty() => Ok(id),
        _ => Err(WsError::MissingField),
    }
}

/// A signaling frame: `toId` and `data.callId` are both optional, but one of them is needed.
fn signal(frame: &ClientFrame, kind: Signal) -> Result<ClientMethod, WsError> {
    let to = match &frame.to_id {
        Some(_) => Some(frame.to_id()?),
        None => None,
    };
    let call_id = match frame.data_call_id() {
        None => None,
        Some(Value::String(id)) if !id.is_empty() => Some(id),
        Some(_) => return Err(WsError::MissingField),
    };
    if to.is_none() && call_id.is_none() {
        return Err(WsError::MissingField);
    }
    Ok(ClientMethod::Signal { kind, to, call_id, data: frame.raw_data.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClientMethod, WsError> {
        ClientMethod::parse(&ClientFrame::decode(text).map_err(|r| r.error)?)
    }

    #[test]
    fn methods_are_typed_or_refused_by_name() {
        assert!(matches!(parse(r#"{"method":"Message/Send","toId":"7","message":"hi"}"#), Ok(ClientMethod::Send { to: 7, .. })));
        assert_eq!(parse(r#"{"method":"Message/Send","toId":7,"message":"  "}"#).unwrap_err(), WsError::MissingField);
        let long = format!(r#"{{"method":"Message/Send","toId":7,"message":"{}"}}"#, "x".repeat(MAX_MESSAGE_CHARS + 1));
        assert_eq!(parse(&long).unwrap_err(), WsError::TooLong);
        assert!(matches!(parse(r#"{"method":"Call/Invite","toId":9}"#), Ok(ClientMethod::Invite { to: 9, media: Media { audio: true, video: true } })));
        assert_eq!(parse(r#"{"method":"Call/Invite","toId":9,"data":{"media":{"audio":"yes"}}}"#).unwrap_err(), WsError::MissingField);
        assert_eq!(parse(r#"{"method":"Call/Accept","data":{}}"#).unwrap_err(), WsError::MissingField);
        assert!(matches!(parse(r#"{"method":"Message/Candidate","toId":9,"data":{"candidate":{}}}"#), Ok(ClientMethod::Signal { kind: Signal::Candidate, to: Some(9), call_id: None, .. })));
        assert_eq!(parse(r#"{"method":"Message/Offer","data":{"sdp":{}}}"#).unwrap_err(), WsError::MissingField);
        assert_eq!(parse(r#"{"method":"Call/Report","data":{"callId":"c","stats":3}}"#).unwrap_err(), WsError::MissingField);
        assert_eq!(parse(r#"{"method":"Nope"}"#).unwrap_err(), WsError::UnknownMethod);
        assert_eq!(ClientMethod::parse(&ClientFrame::decode(r#"{"method":"Call/Hangup","data":{"callId":"c"}}"#).unwrap()).unwrap().name(), "Call/Hangup");
    }
}
