//! The actor tree: the root supervisor and its children, started once by `serve` and stopped on
//! shutdown.
//!
//! ```text
//! root-supervisor
//! ├── registry-supervisor ── registry
//! ├── connection-supervisor ── conn:<id> ...
//! └── call-supervisor ── call:<callId> ...
//! ```
//!
//! Restart policy, per kind of child (ractor has none built in; each supervisor decides):
//! - `registry`: always restarted, from the presence snapshot it kept, rebuilt against the live
//!   connections; more than [`REGISTRY_MAX_RESTARTS`] in [`REGISTRY_RESTART_WINDOW`] escalates.
//! - `conn:<id>`: never restarted (its socket died with it; the client reconnects); its end is
//!   reported to the registry and to the call it was bound to.
//! - `call:<callId>`: restarted from the last state it reported, with its timers re-armed, unless
//!   it had ended; after [`crate::call::supervisor::MAX_RESTARTS`] the call ends `server_error`.
//! - the supervisors: not restarted; one failing escalates to the root, which stops the process
//!   so that an orchestrator restarts it (live calls are restored from the database).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::call::supervisor::SupArgs;
use crate::call::{self, CallSupervisor, Timing};
use crate::connection::{self, ConnectionSupervisor};
use crate::call::recorder::Recorder;
use crate::presence::registry::RegistryArgs;
use crate::presence::{self, Presence, Registry};
use crate::store::Store;
use crate::turn::RelayStats;
use crate::supervision::{self, Kind};

pub const ROOT: &str = "root-supervisor";
pub const REGISTRY_SUPERVISOR: &str = "registry-supervisor";

/// Registry restarts tolerated within [`REGISTRY_RESTART_WINDOW`] before escalating.
pub const REGISTRY_MAX_RESTARTS: usize = 20;
pub const REGISTRY_RESTART_WINDOW: Duration = Duration::from_secs(10);

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
    pub relay: Option<Arc<RelayStats>>,
    pub presence: Presence,
    pub recorder: Recorder,
}

impl Actor for Root {
    type Msg = RootMsg;
    type State = ();
    type Arguments = RootArgs;

    async fn pre_start(&self, myself: ActorRef<RootMsg>, args: RootArgs) -> Result<(), ActorProcessingErr> {
        supervision::started(ROOT, Kind::Supervisor, None);
        let me = myself.get_cell();
        Actor::spawn_linked(Some(REGISTRY_SUPERVISOR.into()), RegistrySupervisor, args.presence.clone(), me.clone()).await?;
        supervision::started(REGISTRY_SUPERVISOR, Kind::Supervisor, Some(ROOT));
        Actor::spawn_linked(Some(connection::SUPERVISOR.into()), ConnectionSupervisor, (), me.clone()).await?;
        supervision::started(connection::SUPERVISOR, Kind::Supervisor, Some(ROOT));
        let calls = SupArgs { store: args.store, recorder: args.recorder, presence: args.presence, timing: args.timing, relay: args.relay };
        Actor::spawn_linked(Some(call::SUPERVISOR.into()), CallSupervisor, calls, me).await?;
        supervision::started(call::SUPERVISOR, Kind::Supervisor, Some(ROOT));
        Ok(())
    }

    async fn handle_supervisor_evt(&self, _myself: ActorRef<RootMsg>, event: SupervisionEvent, _state: &mut ()) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (cell, reason.unwrap_or_else(|| "stopped".into())),
            _ => return Ok(()),
        };
        // Supervisors end only at shutdown; any other end leaves part of the server unmanaged.
        let name = cell.get_name().unwrap_or_default();
        if why != "shutdown" {
            tracing::error!(actor = %name, reason = %why, "a supervisor ended; stopping the server so it can be restarted whole");
            std::process::exit(70);
        }
        Ok(())
    }
}

/// Parent of the registry: restarts it whenever it ends, and keeps the presence snapshot the
/// registry writes, so the new one can tell clients only what really changed.
struct RegistrySupervisor;

pub struct RegistrySupState {
    presence: Presence,
    recent: Vec<Instant>,
}

async fn spawn_registry(myself: &ActorRef<()>, presence: &Presence) -> Result<(), ActorProcessingErr> {
    let args = RegistryArgs { snapshot: presence.view.clone(), directory: presence.directory.clone() };
    Actor::spawn_linked(Some(presence::REGISTRY.into()), Registry, args, myself.get_cell()).await?;
    supervision::started(presence::REGISTRY, Kind::Registry, Some(REGISTRY_SUPERVISOR));
    Ok(())
}

impl Actor for RegistrySupervisor {
    type Msg = ();
    type State = RegistrySupState;
    type Arguments = Presence;

    async fn pre_start(&self, myself: ActorRef<()>, presence: Presence) -> Result<RegistrySupState, ActorProcessingErr> {
        spawn_registry(&myself, &presence).await?;
        Ok(RegistrySupState { presence, recent: Vec::new() })
    }

    async fn handle_supervisor_evt(&self, myself: ActorRef<()>, event: SupervisionEvent, state: &mut RegistrySupState) -> Result<(), ActorProcessingErr> {
        let reason = match event {
            SupervisionEvent::ActorFailed(_, err) => err.to_string(),
            SupervisionEvent::ActorTerminated(_, _, reason) => reason.unwrap_or_else(|| "stopped".into()),
            _ => return Ok(()),
        };
        if reason == "shutdown" {
            return Ok(());
        }
        let now = Instant::now();
        state.recent.retain(|t| now.duration_since(*t) < REGISTRY_RESTART_WINDOW);
        state.recent.push(now);
        if state.recent.len() > REGISTRY_MAX_RESTARTS {
            return Err(format!("registry restarted {} times in {:?}: {reason}", state.recent.len(), REGISTRY_RESTART_WINDOW).into());
        }
        let count = supervision::restarting(presence::REGISTRY);
        metrics::counter!(crate::telemetry::names::ACTOR_RESTARTS, "kind" => "registry").increment(1);
        tracing::warn!(actor = presence::REGISTRY, restarts = count, %reason, "registry ended; restarting it");
        spawn_registry(&myself, &state.presence).await
    }
}

impl Tree {
    pub async fn start(args: RootArgs) -> anyhow::Result<Tree> {
        let (root, _) = Actor::spawn(Some(ROOT.into()), Root, args).await?;
        let connections = ractor::registry::where_is(connection::SUPERVISOR)
            .ok_or_else(|| anyhow::anyhow!("connection supervisor did not start"))?;
        Ok(Tree { root, connections })
    }

    /// Graceful stop: 10021 and close 1001 to every connection, a moment for the frames to leave,
    /// then the whole tree, children before parents.
    pub async fn stop(&self, reconnect_after_ms: u64) {
        presence::tell(presence::RegistryMsg::GoingAway { reconnect_after_ms });
        for _ in 0..20 {
            if self.connections.get_children().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for sup in [REGISTRY_SUPERVISOR, connection::SUPERVISOR, call::SUPERVISOR] {
            if let Some(cell) = ractor::registry::where_is(sup) {
                cell.stop_children(Some("shutdown".into()));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.root.stop_children(Some("shutdown".into()));
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.root.stop(Some("shutdown".into()));
    }
}
