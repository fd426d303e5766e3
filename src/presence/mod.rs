//! Presence: the registry actor, the one source of who is online on which connections. It
//! broadcasts online/offline once per user and fans frames out to a user's connections. It owns
//! no socket and no SQL; connections and handlers reach it only through [`RegistryMsg`].

pub mod registry;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;

use crate::protocol::Status;
pub use registry::{Registry, RegistryMsg};

/// The registry's stable actor name (PROTOCOL.md section 5).
pub const REGISTRY: &str = "registry";

/// The live registry, found by name so a restarted one is found too.
pub fn registry() -> Option<ActorRef<RegistryMsg>> {
    ActorRef::where_is(REGISTRY)
}

/// Casts to the registry; a registry between restarts loses the message, which presence
/// rebuilding makes good.
pub fn tell(msg: RegistryMsg) {
    match registry() {
        Some(r) => {
            let _ = r.cast(msg);
        }
        None => tracing::warn!("registry is not running; a presence message was dropped"),
    }
}

/// Every online user's status; users absent from the map are offline.
pub async fn statuses() -> HashMap<i64, Status> {
    let Some(r) = registry() else { return HashMap::new() };
    match r.call(RegistryMsg::Statuses, Some(Duration::from_secs(2))).await {
        Ok(ractor::rpc::CallResult::Success(map)) => map,
        _ => {
            tracing::warn!("registry did not answer a status query");
            HashMap::new()
        }
    }
}

/// Every active account with its presence, oldest first: the contact list of `/api/users` and of
/// the 10000 frame.
pub async fn directory(store: &crate::store::Store) -> crate::store::StoreResult<Vec<crate::protocol::User>> {
    let rows = store.list_users().await?;
    let statuses = statuses().await;
    Ok(rows
        .iter()
        .filter(|r| !r.disabled)
        .map(|r| crate::protocol::User::from_row(r, statuses.get(&r.id).copied().unwrap_or(Status::Offline)))
        .collect())
}

/// A frame already serialized, shared by every connection it goes to.
pub type Text = Arc<str>;
