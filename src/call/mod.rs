//! Calls: the pure state machine (`machine.rs`), one session actor per call that applies its
//! effects (`session.rs`), and the call supervisor that admits invites, knows which user is in
//! which call, and restores live calls after a restart (`supervisor.rs`). Calls reach sockets
//! only through connection and registry messages, and data only through the store.

pub mod machine;
pub mod outcome;
pub mod record;
pub mod recorder;
pub mod remote;
pub mod session;
pub mod supervisor;
pub mod trace;

use std::time::Duration;

use ractor::ActorRef;
use ractor::rpc::CallResult;

pub use machine::{CallState, Event, Media, Timing};
pub use session::{CallMsg, CallSession, ReplyTo};
pub use supervisor::{CallSupMsg, CallSupervisor, SUPERVISOR};

/// The actor name of a call's session.
pub fn actor_name(call_id: &str) -> String {
    format!("call:{call_id}")
}

/// The live call supervisor.
pub fn supervisor() -> Option<ActorRef<CallSupMsg>> {
    ActorRef::where_is(SUPERVISOR)
}

/// The session of a live call, if there is one.
pub fn session(call_id: &str) -> Option<ActorRef<CallMsg>> {
    ActorRef::where_is(actor_name(call_id))
}

/// Casts to the call supervisor.
pub fn tell(msg: CallSupMsg) {
    if let Some(s) = supervisor() {
        let _ = s.cast(msg);
    }
}

/// How long a connection waits for a call actor's answer before giving up with `internal`.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks an actor and unwraps the answer; `None` if it is gone or too slow.
pub async fn ask<M, T>(actor: &ActorRef<M>, msg: impl FnOnce(ractor::RpcReplyPort<T>) -> M) -> Option<T>
where
    M: ractor::Message,
    T: Send + 'static,
{
    match actor.call(msg, Some(ASK_TIMEOUT)).await {
        Ok(CallResult::Success(v)) => Some(v),
        _ => None,
    }
}

/// The parties of every call a session last reported live.
pub fn users_in_live_calls(snapshots: &session::Snapshots) -> std::collections::HashSet<i64> {
    snapshots
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .filter(|c| c.phase != machine::Phase::Ended)
        .flat_map(|c| [c.caller.user.id, c.callee.user.id])
        .collect()
}
