//! Presence: the registry actor, the one source of who is online on which connections. It
//! broadcasts online/offline once per user and fans frames out to a user's connections. It owns
//! no socket and no SQL; connections and handlers reach it only through [`RegistryMsg`].

pub mod directory;
pub mod registry;

use std::sync::{Arc, Mutex};

use ractor::ActorRef;

use crate::protocol::{Status, User};
pub use directory::Directory;
pub use registry::{Registry, RegistryMsg, Snapshot};

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

/// What the registry publishes for everyone to read without asking it (an `ask` per connect
/// would put the registry's mailbox on the path of every login): who is online and in a call,
/// and the directory that decides who sees whom.
#[derive(Clone)]
pub struct Presence {
    /// Written by the registry one entry at a time, read by handlers and connections.
    pub view: Arc<Mutex<Snapshot>>,
    pub directory: Arc<Directory>,
    /// Who is in a live call, as the calls themselves last reported it: what a restarted
    /// registry believes over its snapshot (a call may have ended while no registry listened).
    pub in_calls: InCalls,
    /// The other nodes, when this one is part of a cluster.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// Reads the users in live calls.
pub type InCalls = Arc<dyn Fn() -> std::collections::HashSet<i64> + Send + Sync>;

impl Presence {
    pub fn new(directory: Arc<Directory>, in_calls: InCalls, cluster: Option<Arc<crate::cluster::Cluster>>) -> Presence {
        Presence { view: Arc::new(Mutex::new(Snapshot::default())), directory, in_calls, cluster }
    }

    /// Whether a frame for `user_id` reaches all their connections: not while the cluster is
    /// degraded and they are on another node.
    pub fn reachable(&self, user_id: i64) -> bool {
        self.cluster.as_ref().is_none_or(|c| c.reachable(user_id))
    }

    /// Online on other nodes only (so a call to them cannot ring from here).
    pub fn elsewhere_only(&self, user_id: i64) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.remote_user(user_id).is_some() && !c.is_local(user_id))
    }

    fn view(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A user's presence.
    pub fn status(&self, user_id: i64) -> Status {
        status_in(&self.view(), user_id)
    }

    pub fn is_online(&self, user_id: i64) -> bool {
        self.view().online.contains_key(&user_id)
    }

    /// The contact list of `user_id` (PROTOCOL.md section 2.1) with presence: `/api/users` and
    /// the 10000 frame.
    pub fn contact_list(&self, user_id: i64) -> Vec<User> {
        let view = self.view();
        self.directory.contact_list(user_id, |id| status_in(&view, id))
    }

    /// Directory search (`GET /api/users?q=`), with presence.
    pub fn search(&self, q: &str, limit: usize) -> Vec<User> {
        let view = self.view();
        self.directory.search(q, limit, |id| status_in(&view, id))
    }
}

/// `a` and `b` called or chatted: contacts both ways (PROTOCOL.md section 2.1). Free when they
/// already are. Otherwise the directory learns it now and the store in the background, and in a
/// scoped directory each newly made contact hears the other's presence at once.
pub fn meet(presence: &Presence, store: &crate::store::Store, a: i64, b: i64) {
    if a == b || presence.directory.have_met(a, b) {
        return;
    }
    let (a_new, b_new) = presence.directory.meet(a, b);
    let store = store.clone();
    tokio::spawn(async move {
        if let Err(e) = store.mark_met(a, b).await {
            tracing::warn!(error = %e, user.a = a, user.b = b, "storing that two users met");
        }
    });
    if !presence.directory.is_full() {
        if a_new {
            tell(RegistryMsg::Introduce { watcher: a, user: b });
        }
        if b_new {
            tell(RegistryMsg::Introduce { watcher: b, user: a });
        }
    }
}

fn status_in(view: &Snapshot, id: i64) -> Status {
    Status::of(view.online.contains_key(&id), view.in_call.contains(&id))
}

pub use crate::protocol::conn::Text;
