//! Between a call's state and its row, and from a row to the `CallRecord` of the HTTP API.

use serde_json::{Value, json};

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

/// `CallRecord` of PROTOCOL.md section 2, seen from `viewer`; the parties' last link reports
/// come along as `reports`.
pub fn to_record(row: &CallRow, viewer: i64) -> Value {
    let time = |t: Option<i64>| t.map(rfc3339);
    let report = |r: &Option<String>| r.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok());
    json!({
        "id": row.id,
        "callerId": row.caller_id,
        "calleeId": row.callee_id,
        "direction": if row.caller_id == viewer { "outgoing" } else { "incoming" },
        "status": row.status,
        "media": { "audio": row.media_audio, "video": row.media_video },
        "createdAt": rfc3339(row.created_at),
        "answeredAt": time(row.answered_at),
        "endedAt": time(row.ended_at),
        "durationMs": row.duration_ms,
        "endReason": row.end_reason,
        "endedBy": row.ended_by,
        "failureClass": row.failure_class,
        "reports": { "caller": report(&row.caller_report), "callee": report(&row.callee_report) },
    })
}
