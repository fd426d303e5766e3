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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Supervisor,
    Registry,
    Connection,
    Call,
}

/// One entry of `GET /api/admin/actors`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActorInfo {
    pub name: String,
    pub kind: Kind,
    pub parent: Option<String>,
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
