//! Between a call's state and its row, and from a row to the `CallRecord` of the HTTP API.

use serde_json::Value;

use super::machine::{CallState, CallStatus, Media, Party, Phase};
use crate::protocol::{Status, User, rfc3339};
use crate::store::UserRow;
use crate::store::calls::CallRow;

/// The row that records `state`, with its failure class once ended and its trace context.
pub fn to_row(state: &CallState, failure_class: Option<&str>, trace_parent: Option<String>) -> CallRow {
    let report = |p: &Party| p.report.as_ref().map(Value::to_string);
    CallRow {
        id: state.id.clone(),
        caller_id: state.caller.user.id,
        callee_id: state.callee.user.id,
        status: state.status().as_str().to_string(),
        media_audio: state.media.audio,
        media_video: state.media.video,
        created_at: state.created_at,
        answered_at: state.answered_at,
        ended_at: state.ended_at,
        duration_ms: state.duration_ms(),
        end_reason: state.ending.as_ref().map(|e| e.reason.as_str().to_string()),
        ended_by: state.ending.as_ref().and_then(|e| e.by),
        caller_report: report(&state.caller),
        callee_report: report(&state.callee),
        failure_class: failure_class.map(str::to_string),
        trace_parent,
    }
}

/// A live call's state rebuilt from its row after a restart; no connection is bound yet (the
/// `Restored` event starts the graces).
pub fn from_row(row: &CallRow, caller: &UserRow, callee: &UserRow) -> Option<CallState> {
    let phase = match CallStatus::parse(&row.status)? {
        CallStatus::Ringing => Phase::Ringing,
        CallStatus::Active => Phase::Active,
        _ => return None,
    };
    let party = |u: &UserRow, report: &Option<String>| Party {
        user: User::from_row(u, Status::Offline),
        conn: None,
        lost_since: None,
        report: report.as_deref().and_then(|r| serde_json::from_str(r).ok()),
    };
    Some(CallState {
        id: row.id.clone(),
        caller: party(caller, &row.caller_report),
        callee: party(callee, &row.callee_report),
        media: Media { audio: row.media_audio, video: row.media_video },
        phase,
        created_at: row.created_at,
        answered_at: row.answered_at,
        ended_at: None,
        ending: None,
        timers: Default::default(),
    })
}

/// A call that never rang: refused because the callee was offline or busy.
pub fn refused_row(id: String, caller: i64, callee: i64, media: Media, status: CallStatus, reason: &str, now: i64) -> CallRow {
    let class = super::outcome::classify(status, None, [None, None], Default::default());
    CallRow {
        id,
        caller_id: caller,
        callee_id: callee,
        status: status.as_str().to_string(),
        media_audio: media.audio,
        media_video: media.video,
        created_at: now,
        answered_at: None,
        ended_at: Some(now),
        duration_ms: None,
        end_reason: Some(reason.to_string()),
        ended_by: None,
        caller_report: None,
        callee_report: None,
        failure_class: Some(class.as_str().to_string()),
        trace_parent: None,
    }
}

/// `CallRecord` of PROTOCOL.md section 2, seen from one of its two parties.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    /// The call id (a UUID).
    pub id: String,
    pub caller_id: i64,
    pub callee_id: i64,
    /// Seen from the asking user.
    #[schema(value_type = String, pattern = "^(outgoing|incoming)$")]
    pub direction: &'static str,
    /// `ringing`, `active`, `completed`, `missed`, `rejected`, `busy`, `cancelled` or `failed`.
    #[schema(pattern = "^(ringing|active|completed|missed|rejected|busy|cancelled|failed)$")]
    pub status: String,
    pub media: MediaRecord,
    /// RFC 3339 UTC, as every time on the wire.
    pub created_at: String,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub end_reason: Option<String>,
    /// The user whose request ended the call, if one did.
    pub ended_by: Option<i64>,
    /// `ok`, `no_answer`, `declined`, `busy`, `signaling_lost`, ... once ended.
    pub failure_class: Option<String>,
    /// Each party's last link report (`Call/Report`), as sent.
    pub reports: Reports,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct MediaRecord {
    pub audio: bool,
    pub video: bool,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Reports {
    #[schema(value_type = Option<Object>)]
    pub caller: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub callee: Option<Value>,
}

/// The [`CallRecord`] of `row` seen from `viewer`.
pub fn to_record(row: &CallRow, viewer: i64) -> CallRecord {
    let time = |t: Option<i64>| t.map(rfc3339);
    let report = |r: &Option<String>| r.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok());
    CallRecord {
        id: row.id.clone(),
        caller_id: row.caller_id,
        callee_id: row.callee_id,
        direction: if row.caller_id == viewer { "outgoing" } else { "incoming" },
        status: row.status.clone(),
        media: MediaRecord { audio: row.media_audio, video: row.media_video },
        created_at: rfc3339(row.created_at),
        answered_at: time(row.answered_at),
        ended_at: time(row.ended_at),
        duration_ms: row.duration_ms,
        end_reason: row.end_reason.clone(),
        ended_by: row.ended_by,
        failure_class: row.failure_class.clone(),
        reports: Reports { caller: report(&row.caller_report), callee: report(&row.callee_report) },
    }
}
