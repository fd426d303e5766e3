//! Why a call ended, as one named failure class, joining what the server saw (status, reason)
//! with what the clients reported (`Call/Report`) and what the embedded relay saw. It is what
//! operators ask for when "calls don't connect". Pure: tested without any call.

use serde_json::Value;

use super::machine::{CallStatus, EndReason};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    Ok,
    NoAnswer,
    Declined,
    Busy,
    SignalingLost,
    /// ICE failed and the party gathered no relay candidate (never allocated on the relay).
    IceFailedNoRelay,
    /// The embedded relay refused the party's credentials.
    TurnAuthFailed,
    IceFailed,
    /// ICE connected, but no media flowed.
    MediaFailed,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Ok => "ok",
            FailureClass::NoAnswer => "no_answer",
            FailureClass::Declined => "declined",
            FailureClass::Busy => "busy",
            FailureClass::SignalingLost => "signaling_lost",
            FailureClass::IceFailedNoRelay => "ice_failed_no_relay",
            FailureClass::TurnAuthFailed => "turn_auth_failed",
            FailureClass::IceFailed => "ice_failed",
            FailureClass::MediaFailed => "media_failed",
        }
    }
}

/// What the embedded relay saw of one party during the call.
#[derive(Clone, Copy, Debug, Default)]
pub struct RelayFacts {
    /// The embedded relay is what the clients were told to use.
    pub embedded: bool,
    /// It refused this party's credentials during the call.
    pub auth_refused: bool,
    /// This party allocated on it during the call (so a relay candidate was gathered).
    pub allocated: bool,
}

fn ice_state(report: Option<&Value>) -> Option<&str> {
    report?.get("iceState")?.as_str()
}

/// The class of an ended call from its status, end reason, the two parties' last reports and
/// what the relay saw of each.
pub fn classify(status: CallStatus, reason: Option<EndReason>, reports: [Option<&Value>; 2], relay: [RelayFacts; 2]) -> FailureClass {
    match status {
        CallStatus::Missed | CallStatus::Cancelled => return FailureClass::NoAnswer,
        CallStatus::Rejected => return FailureClass::Declined,
        CallStatus::Busy => return FailureClass::Busy,
        _ => {}
    }
    // ICE failed on a side: say why, as precisely as the evidence allows.
    let failed: Vec<usize> = (0..2).filter(|i| ice_state(reports[*i]) == Some("failed")).collect();
    if !failed.is_empty() {
        if failed.iter().any(|i| relay[*i].embedded && relay[*i].auth_refused) {
            return FailureClass::TurnAuthFailed;
        }
        if failed.iter().any(|i| relay[*i].embedded && !relay[*i].allocated) {
            return FailureClass::IceFailedNoRelay;
        }
        return FailureClass::IceFailed;
    }
    let connected = |r: Option<&Value>| matches!(ice_state(r), Some("connected" | "completed"));
    let no_media = |r: Option<&Value>| r.and_then(|r| r.get("bitrateKbps")).and_then(Value::as_f64).is_some_and(|b| b <= 0.0);
    let reported: Vec<Option<&Value>> = reports.iter().copied().filter(Option::is_some).collect();
    if !reported.is_empty() && reported.iter().all(|r| connected(*r) && no_media(*r)) {
        return FailureClass::MediaFailed;
    }
    match (status, reason) {
        (CallStatus::Failed, Some(EndReason::PeerLost | EndReason::ServerError)) => FailureClass::SignalingLost,
        (CallStatus::Failed, _) => FailureClass::SignalingLost,
        _ => FailureClass::Ok,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NONE: [RelayFacts; 2] = [RelayFacts { embedded: true, auth_refused: false, allocated: true }; 2];

    #[test]
    fn what_the_server_saw_alone() {
        assert_eq!(classify(CallStatus::Missed, Some(EndReason::Timeout), [None, None], NONE), FailureClass::NoAnswer);
        assert_eq!(classify(CallStatus::Cancelled, Some(EndReason::Cancelled), [None, None], NONE), FailureClass::NoAnswer);
        assert_eq!(classify(CallStatus::Rejected, Some(EndReason::Rejected), [None, None], NONE), FailureClass::Declined);
        assert_eq!(classify(CallStatus::Busy, None, [None, None], NONE), FailureClass::Busy);
        assert_eq!(classify(CallStatus::Failed, Some(EndReason::PeerLost), [None, None], NONE), FailureClass::SignalingLost);
        assert_eq!(classify(CallStatus::Completed, Some(EndReason::Hangup), [None, None], NONE), FailureClass::Ok);
    }

    #[test]
    fn joined_with_the_clients_reports_and_the_relay() {
        let ok = json!({"iceState": "connected", "bitrateKbps": 800});
        let failed = json!({"iceState": "failed", "bitrateKbps": 0});
        let silent = json!({"iceState": "connected", "bitrateKbps": 0});
        assert_eq!(classify(CallStatus::Completed, Some(EndReason::Hangup), [Some(&ok), Some(&ok)], NONE), FailureClass::Ok);
        assert_eq!(classify(CallStatus::Completed, Some(EndReason::Hangup), [Some(&failed), Some(&ok)], NONE), FailureClass::IceFailed);
        let no_alloc = [RelayFacts { embedded: true, auth_refused: false, allocated: false }, NONE[1]];
        assert_eq!(classify(CallStatus::Completed, Some(EndReason::Hangup), [Some(&failed), None], no_alloc), FailureClass::IceFailedNoRelay);
        let refused = [RelayFacts { embedded: true, auth_refused: true, allocated: false }, NONE[1]];
        assert_eq!(classify(CallStatus::Failed, Some(EndReason::PeerLost), [Some(&failed), None], refused), FailureClass::TurnAuthFailed);
        let external = [RelayFacts::default(); 2];
        assert_eq!(classify(CallStatus::Completed, Some(EndReason::Hangup), [Some(&failed), None], external), FailureClass::IceFailed);
        assert_eq!(classify(CallStatus::Completed, Some(EndReason::Hangup), [Some(&silent), Some(&silent)], NONE), FailureClass::MediaFailed);
        assert_eq!(classify(CallStatus::Completed, Some(EndReason::Hangup), [Some(&silent), Some(&ok)], NONE), FailureClass::Ok);
    }
}
