//! The actor tree: the root supervisor and its children, started once by `serve` and stopped on
//! shutdown.
//!
//! ```text
//! root-supervisor
//! ├── registry-supervisor ── registry
//! ├── connection-supervisor ── conn:<id> ...
//! └── call-supervisor ── call:<callId> ...
//! ```

use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::call::supervisor::SupArgs;
use crate::call::{self, CallSupervisor, Timing};
use crate::connection::{self, ConnectionSupervisor};
use crate::store::Store;
use crate::presence::{self, Registry};

pub const ROOT: &str = "root-supervisor";
pub const REGISTRY_SUPERVISOR: &str = "registry-supervisor";

/// Handles to the running tree.
pub struct Tree {
    pub root: ActorRef<RootMsg>,
    /// Parent of connection actors; the WebSocket handler links new connections to it.
    pub connections: ActorCell,
}

pub enum RootMsg {}

struct Root;

/// What the tree needs from the server.
pub struct RootArgs {
    pub store: Store,
    pub timing: Timing,
}

impl Actor for Root {
    type Msg = RootMsg;
    type State = ();
    type Arguments = RootArgs;

    async fn pre_start(&self, myself: ActorRef<RootMsg>, args: RootArgs) -> Result<(), ActorProcessingErr> {
        Actor::spawn_linked(Some(REGISTRY_SUPERVISOR.into()), RegistrySupervisor, (), myself.get_cell()).await?;
        Actor::spawn_linked(Some(connection::SUPERVISOR.into()), ConnectionSupervisor, (), myself.get_cell()).await?;
        let calls = SupArgs { store: args.store, timing: args.timing };
        Actor::spawn_linked(Some(call::SUPERVISOR.into()), CallSupervisor, calls, myself.get_cell()).await?;
        Ok(())
    }

    async fn handle_supervisor_evt(&self, _myself: ActorRef<RootMsg>, event: SupervisionEvent, _state: &mut ()) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, err) = event {
            // A supervisor failing is beyond repair here: stop the tree, and serve exits.
            return Err(format!("{} failed: {err}", cell.get_name().unwrap_or_default()).into());
        }
        Ok(())
    }
}

/// Parent of the registry: restarts it when it dies; the new one rebuilds its table from the
/// live connections.
struct RegistrySupervisor;

impl Actor for RegistrySupervisor {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Actor::spawn_linked(Some(presence::REGISTRY.into()), Registry, (), myself.get_cell()).await?;
        Ok(())
    }

    async fn handle_supervisor_evt(&self, myself: ActorRef<()>, event: SupervisionEvent, _state: &mut ()) -> Result<(), ActorProcessingErr> {
        let reason = match event {
            SupervisionEvent::ActorFailed(_, err) => err.to_string(),
            SupervisionEvent::ActorTerminated(_, _, reason) => reason.unwrap_or_else(|| "killed".into()),
            _ => return Ok(()),
        };
        tracing::warn!(actor = presence::REGISTRY, %reason, "registry ended; restarting it");
        Actor::spawn_linked(Some(presence::REGISTRY.into()), Registry, (), myself.get_cell()).await?;
        Ok(())
    }
}

impl Tree {
    pub async fn start(store: Store, timing: Timing) -> anyhow::Result<Tree> {
        let (root, _) = Actor::spawn(Some(ROOT.into()), Root, RootArgs { store, timing }).await?;
        let connections = ractor::registry::where_is(connection::SUPERVISOR)
            .ok_or_else(|| anyhow::anyhow!("connection supervisor did not start"))?;
        Ok(Tree { root, connections })
    }

    /// Graceful stop: 10021 and close 1001 to every connection, a moment for the frames to leave,
    /// then the whole tree.
    pub async fn stop(&self, reconnect_after_ms: u64) {
        presence::tell(presence::RegistryMsg::GoingAway { reconnect_after_ms });
        for _ in 0..20 {
            if self.connections.get_children().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.root.stop(Some("shutdown".into()));
    }
}
