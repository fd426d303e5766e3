//! What the supervisors know about the actors under them: a directory of every named actor with
//! its kind, parent, start time and restart count, for the operator API and the logs. Restart
//! policies themselves live with each supervisor (`tree.rs`, `connection/supervisor.rs`,
//! `call/supervisor.rs`); this module only keeps the books, so a restarted actor keeps its name
//! and its count.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};

use serde::Serialize;

use crate::protocol::rfc3339;
use crate::store::now_ms;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Supervisor,
    Registry,
    Connection,
    Call,
}

/// One entry of `GET /api/admin/actors`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActorInfo {
    /// Stable across restarts: `registry`, `conn:<connectionId>`, `call:<callId>`, ...
    pub name: String,
    pub kind: Kind,
    /// Its supervisor; none for the root.
    pub parent: Option<String>,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub restarts: u32,
}

static DIRECTORY: LazyLock<Mutex<BTreeMap<String, ActorInfo>>> = LazyLock::new(|| Mutex::new(BTreeMap::new()));

fn directory() -> std::sync::MutexGuard<'static, BTreeMap<String, ActorInfo>> {
    DIRECTORY.lock().unwrap_or_else(|p| p.into_inner())
}

/// An actor started (or restarted: its restart count is kept).
pub fn started(name: &str, kind: Kind, parent: Option<&str>) {
    let mut d = directory();
    let restarts = d.get(name).map_or(0, |i| i.restarts);
    d.insert(
        name.to_string(),
        ActorInfo { name: name.to_string(), kind, parent: parent.map(str::to_string), started_at: rfc3339(now_ms()), restarts },
    );
}

/// A supervisor is restarting `name`; returns its restart count so far, this one included.
pub fn restarting(name: &str) -> u32 {
    let mut d = directory();
    match d.get_mut(name) {
        Some(info) => {
            info.restarts += 1;
            info.restarts
        }
        None => 1,
    }
}

/// An actor ended for good.
pub fn gone(name: &str) {
    directory().remove(name);
}

/// Every actor that is alive now, supervisors first, then by name.
pub fn list() -> Vec<ActorInfo> {
    let alive: std::collections::HashSet<String> = ractor::registry::registered().into_iter().collect();
    let mut list: Vec<ActorInfo> = directory().values().filter(|i| alive.contains(&i.name)).cloned().collect();
    list.sort_by_key(|i| (i.kind != Kind::Supervisor, i.kind != Kind::Registry, i.name.clone()));
    list
}

/// The kind of a named actor, if it is in the directory.
pub fn kind_of(name: &str) -> Option<Kind> {
    directory().get(name).map(|i| i.kind)
}

/// Why an actor stopped, as its supervisor reads it. ractor carries stop reasons as text; this is
/// the one place that text is written and read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The server is stopping: nothing is restarted.
    Shutdown,
    /// Killed (`ActorCell::kill`, or its parent's death): no cleanup ran.
    Killed,
    /// Stopped by itself with no reason: its work is done (a call that ended).
    Done,
    /// Stopped by itself for a reason of its own that is no failure: a connection whose peer
    /// closed, went silent or was too slow. Logged at debug, never counted as a failure.
    Ended(String),
    /// Anything else: a failure, a panic, or an unexplained stop.
    Failed(String),
}

/// The text of [`StopReason::Shutdown`] given to `stop`.
const SHUTDOWN: &str = "shutdown";

/// What starts the text of an [`StopReason::Ended`].
const ENDED: &str = "ended: ";

impl StopReason {
    /// What to hand to ractor's `stop` for a graceful shutdown.
    pub fn shutdown() -> Option<String> {
        Some(SHUTDOWN.to_string())
    }

    /// What to hand to ractor's `stop` for an end that is no failure (the peer closed, say).
    pub fn ended(why: &str) -> Option<String> {
        Some(format!("{ENDED}{why}"))
    }

    /// Reads a supervision event's reason.
    pub fn of(event: &ractor::SupervisionEvent) -> Option<(ractor::ActorCell, StopReason)> {
        match event {
            ractor::SupervisionEvent::ActorTerminated(cell, _, reason) => Some((cell.clone(), StopReason::parse(reason.as_deref()))),
            ractor::SupervisionEvent::ActorFailed(cell, err) => Some((cell.clone(), StopReason::Failed(err.to_string()))),
            _ => None,
        }
    }

    fn parse(reason: Option<&str>) -> StopReason {
        match reason {
            None => StopReason::Done,
            Some(SHUTDOWN) => StopReason::Shutdown,
            // ractor's own text for a kill signal.
            Some("killed") => StopReason::Killed,
            Some(other) => match other.strip_prefix(ENDED) {
                Some(why) => StopReason::Ended(why.to_string()),
                None => StopReason::Failed(other.to_string()),
            },
        }
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Shutdown => f.write_str(SHUTDOWN),
            StopReason::Killed => f.write_str("killed"),
            StopReason::Done => f.write_str("done"),
            StopReason::Ended(why) => f.write_str(why),
            StopReason::Failed(why) => f.write_str(why),
        }
    }
}

/// OTP's restart intensity: at most `max` restarts within `period`; one more escalates.
#[derive(Clone, Debug)]
pub struct Intensity {
    pub max: usize,
    pub period: std::time::Duration,
    recent: std::collections::VecDeque<std::time::Instant>,
}

impl Intensity {
    pub fn new(max: usize, period: std::time::Duration) -> Intensity {
        Intensity { max, period, recent: std::collections::VecDeque::new() }
    }

    /// Counts a restart now; false when it is one too many for the period (escalate).
    pub fn allow(&mut self) -> bool {
        self.allow_at(std::time::Instant::now())
    }

    fn allow_at(&mut self, now: std::time::Instant) -> bool {
        while self.recent.front().is_some_and(|t| now.duration_since(*t) >= self.period) {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        self.recent.len() <= self.max
    }
}

/// Names of actors an operator killed through the API and whose supervisor has not yet seen them
/// end. Those deaths are restarted at once and never count toward an intensity: a chaos test
/// kills at whatever rate it likes, while intensity guards against a crash loop.
static OPERATOR_KILLS: LazyLock<Mutex<std::collections::HashSet<String>>> = LazyLock::new(Default::default);

/// The operator API is about to kill `name`.
pub fn operator_kill(name: &str) {
    OPERATOR_KILLS.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string());
}

/// Whether `name`'s death was an operator's kill (and forgets it).
pub fn was_operator_kill(name: &str) -> bool {
    OPERATOR_KILLS.lock().unwrap_or_else(|p| p.into_inner()).remove(name)
}

/// Starts a child, again if an operator's kill lands while it starts (that is not a failure to
/// start), up to a bound. Any other failure to start is returned at once.
pub async fn start_despite_kills<T, E, F>(name: &str, mut start: impl FnMut() -> F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    let mut tries = 0;
    loop {
        match start().await {
            Ok(v) => return Ok(v),
            Err(e) if tries < 1000 && was_operator_kill(name) => {
                tries += 1;
                let _ = e;
                name_free(name, std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Waits (at most `within`) until no actor is registered as `name`. When a supervisor dies, its
/// children are killed after it, one signal each: a new supervisor must not start a child under
/// a name the old one still holds.
pub async fn name_free(name: &str, within: std::time::Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while ractor::registry::where_is(name).is_some() {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn intensity_allows_max_restarts_per_period_then_escalates() {
        let mut i = Intensity::new(3, Duration::from_secs(10));
        let t = Instant::now();
        assert!(i.allow_at(t));
        assert!(i.allow_at(t + Duration::from_secs(1)));
        assert!(i.allow_at(t + Duration::from_secs(2)));
        assert!(!i.allow_at(t + Duration::from_secs(3)), "the fourth within 10 s escalates");
        // Once the period has passed, old restarts no longer count.
        let mut j = Intensity::new(3, Duration::from_secs(10));
        for s in [0, 4, 8, 12, 16, 20] {
            assert!(j.allow_at(t + Duration::from_secs(s)), "at {s} s");
        }
    }

    #[test]
    fn stop_reasons_read_back_as_written() {
        assert_eq!(StopReason::parse(StopReason::shutdown().as_deref()), StopReason::Shutdown);
        assert_eq!(StopReason::parse(Some("killed")), StopReason::Killed);
        assert_eq!(StopReason::parse(None), StopReason::Done);
        assert_eq!(StopReason::parse(Some("boom")), StopReason::Failed("boom".into()));
        assert_eq!(StopReason::parse(StopReason::ended("peer closed").as_deref()), StopReason::Ended("peer closed".into()));
    }
}
