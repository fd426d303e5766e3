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
//! Restart policy, per kind of child, in OTP's terms (ractor has none built in; each supervisor
//! decides). *Intensity* is how many restarts a supervisor makes within a *period* before it gives
//! up; giving up *escalates*: the supervisor ends and its parent restarts it, children and all.
//! Deaths an operator causes through the kill API are restarted at once and never counted: a
//! chaos test may kill at any rate, and intensity is there to stop a crash loop.
//!
//! | child | a death means | restart | intensity | escalation |
//! |---|---|---|---|---|
//! | `registry` | presence is unmanaged | always, rebuilt from the live connections and the calls, announcing only real changes | [`REGISTRY_INTENSITY`] | `registry-supervisor` ends |
//! | `conn:<id>` | its socket closed (1011) | never: the client reconnects; the registry and its call hear of it | – | – |
//! | `call:<callId>` | a live call has no session | from its last snapshot, timers re-armed, unless it ended | [`crate::call::supervisor::MAX_RESTARTS`] per call | the call ends `server_error` |
//! | `registry-supervisor` | no registry | fresh, with a fresh registry | [`ROOT_INTENSITY`] | the root gives up |
//! | `connection-supervisor` | every connection closed (1011) | fresh; drops the dead connections from presence, their calls enter the reconnect grace | [`ROOT_INTENSITY`] | the root gives up |
//! | `call-supervisor` | every session gone | fresh; every live call revived from its snapshot with its timers | [`ROOT_INTENSITY`] | the root gives up |
//!
//! The root giving up is the only way the process stops by itself: it asks `serve` to shut down
//! the normal way (10021, close 1001, records flushed, telemetry flushed) and exit non-zero, so an
//! orchestrator restarts it; live calls are restored from the database then. The root cannot be
//! killed through the API (403).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::mpsc;

use crate::call::recorder::Recorder;
use crate::call::supervisor::{SupArgs, Traces};
use crate::call::{self, CallSupervisor, Timing};
use crate::connection::{self, ConnSupMsg, ConnectionSupervisor};
use crate::presence::registry::RegistryArgs;
use crate::presence::{self, Presence, Registry};
use crate::store::Store;
use crate::supervision::{self, Intensity, Kind, StopReason};
use crate::turn::RelayStats;

pub const ROOT: &str = "root-supervisor";
pub const REGISTRY_SUPERVISOR: &str = "registry-supervisor";

/// Registry failures tolerated within the period before the registry supervisor escalates.
pub const REGISTRY_INTENSITY: (usize, Duration) = (20, Duration::from_secs(10));
/// Supervisor failures tolerated within the period before the root gives up.
pub const ROOT_INTENSITY: (usize, Duration) = (10, Duration::from_secs(60));

/// Handles to the running tree.
pub struct Tree {
    pub root: ActorRef<RootMsg>,
    /// Why the root gave up, when it does: `serve` then shuts down and exits non-zero.
    pub gave_up: mpsc::UnboundedReceiver<String>,
}

pub enum RootMsg {}

struct Root;

/// What the tree needs from the server. Cloned into each child the root (re)starts.
#[derive(Clone)]
pub struct RootArgs {
    pub store: Store,
    pub timing: Timing,
    pub relay: Option<Arc<RelayStats>>,
    pub presence: Presence,
    pub recorder: Recorder,
    /// Each live call's last state and trace: above the call supervisor, so a restarted one
    /// picks the calls up where the dead one left them.
    pub call_snapshots: crate::call::session::Snapshots,
    pub call_traces: Traces,
}

/// The root's three children.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Child {
    Registry,
    Connections,
    Calls,
}

impl Child {
    const ALL: [Child; 3] = [Child::Registry, Child::Connections, Child::Calls];

    fn name(self) -> &'static str {
        match self {
            Child::Registry => REGISTRY_SUPERVISOR,
            Child::Connections => connection::SUPERVISOR,
            Child::Calls => call::SUPERVISOR,
        }
    }
}

pub struct RootState {
    args: RootArgs,
    /// The children as started, by reference: which one a death is about.
    children: Vec<(Child, ActorCell)>,
    intensity: Intensity,
    gave_up: mpsc::UnboundedSender<String>,
}

async fn spawn_child(root: &ActorRef<RootMsg>, args: &RootArgs, child: Child, fresh: bool) -> Result<ActorCell, ActorProcessingErr> {
    let me = root.get_cell();
    let name = Some(child.name().to_string());
    let cell = match child {
        Child::Registry => Actor::spawn_linked(name, RegistrySupervisor, args.presence.clone(), me).await?.0.get_cell(),
        Child::Connections => Actor::spawn_linked(name, ConnectionSupervisor, (), me).await?.0.get_cell(),
        Child::Calls => {
            let calls = SupArgs {
                fresh,
                snapshots: args.call_snapshots.clone(),
                traces: args.call_traces.clone(),
                store: args.store.clone(),
                recorder: args.recorder.clone(),
                presence: args.presence.clone(),
                timing: args.timing,
                relay: args.relay.clone(),
            };
            Actor::spawn_linked(name, CallSupervisor, calls, me).await?.0.get_cell()
        }
    };
    supervision::started(child.name(), Kind::Supervisor, Some(ROOT));
    Ok(cell)
}

impl Actor for Root {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = (RootArgs, mpsc::UnboundedSender<String>);

    async fn pre_start(&self, myself: ActorRef<RootMsg>, (args, gave_up): Self::Arguments) -> Result<RootState, ActorProcessingErr> {
        supervision::started(ROOT, Kind::Supervisor, None);
        let mut children = Vec::new();
        for child in Child::ALL {
            children.push((child, spawn_child(&myself, &args, child, true).await?));
        }
        Ok(RootState { args, children, intensity: Intensity::new(ROOT_INTENSITY.0, ROOT_INTENSITY.1), gave_up })
    }

    async fn handle_supervisor_evt(&self, myself: ActorRef<RootMsg>, event: SupervisionEvent, state: &mut RootState) -> Result<(), ActorProcessingErr> {
        let Some((cell, why)) = StopReason::of(&event) else { return Ok(()) };
        let Some(at) = state.children.iter().position(|(_, c)| c.get_id() == cell.get_id()) else { return Ok(()) };
        let (child, _) = state.children.remove(at);
        if why == StopReason::Shutdown {
            return Ok(());
        }
        let by_operator = supervision::was_operator_kill(child.name());
        if !by_operator && !state.intensity.allow() {
            let reason = format!("{} ended ({why}) after {} supervisor restarts within {:?}", child.name(), ROOT_INTENSITY.0, ROOT_INTENSITY.1);
            tracing::error!(actor = child.name(), %reason, "the root supervisor gives up: stopping the server");
            let _ = state.gave_up.send(reason);
            return Ok(());
        }
        let restarts = supervision::restarting(child.name());
        metrics::counter!(crate::telemetry::names::ACTOR_RESTARTS, "kind" => "supervisor").increment(1);
        tracing::warn!(actor = child.name(), restarts, reason = %why, by_operator, "a supervisor ended; restarting it and its subtree");
        let started = supervision::start_despite_kills(child.name(), || spawn_child(&myself, &state.args, child, false)).await;
        match started {
            Ok(cell) => state.children.push((child, cell)),
            Err(e) => {
                let reason = format!("{} could not be restarted: {e}", child.name());
                tracing::error!(actor = child.name(), %reason, "the root supervisor gives up: stopping the server");
                let _ = state.gave_up.send(reason);
            }
        }
        Ok(())
    }
}

/// Parent of the registry: restarts it whenever it ends, and keeps the presence snapshot the
/// registry writes, so the new one can tell clients only what really changed.
struct RegistrySupervisor;

pub struct RegistrySupState {
    presence: Presence,
    registry: Option<ActorCell>,
    intensity: Intensity,
}

async fn spawn_registry(myself: &ActorRef<()>, presence: &Presence) -> Result<ActorCell, ActorProcessingErr> {
    supervision::name_free(presence::REGISTRY, Duration::from_secs(2)).await;
    let args = RegistryArgs {
        snapshot: presence.view.clone(),
        in_calls: presence.in_calls.clone(),
        directory: presence.directory.clone(),
        cluster: presence.cluster.clone(),
    };
    let (registry, _) = Actor::spawn_linked(Some(presence::REGISTRY.into()), Registry, args, myself.get_cell()).await?;
    supervision::started(presence::REGISTRY, Kind::Registry, Some(REGISTRY_SUPERVISOR));
    Ok(registry.get_cell())
}

impl Actor for RegistrySupervisor {
    type Msg = ();
    type State = RegistrySupState;
    type Arguments = Presence;

    async fn pre_start(&self, myself: ActorRef<()>, presence: Presence) -> Result<RegistrySupState, ActorProcessingErr> {
        let registry = Some(spawn_registry(&myself, &presence).await?);
        Ok(RegistrySupState { presence, registry, intensity: Intensity::new(REGISTRY_INTENSITY.0, REGISTRY_INTENSITY.1) })
    }

    async fn handle_supervisor_evt(&self, myself: ActorRef<()>, event: SupervisionEvent, state: &mut RegistrySupState) -> Result<(), ActorProcessingErr> {
        let Some((cell, why)) = StopReason::of(&event) else { return Ok(()) };
        if state.registry.as_ref().is_none_or(|r| r.get_id() != cell.get_id()) {
            return Ok(());
        }
        state.registry = None;
        if why == StopReason::Shutdown {
            return Ok(());
        }
        let by_operator = supervision::was_operator_kill(presence::REGISTRY);
        if !by_operator && !state.intensity.allow() {
            // Escalate: this supervisor ends, and the root starts it afresh.
            return Err(format!("the registry failed more than {} times in {:?}: {why}", REGISTRY_INTENSITY.0, REGISTRY_INTENSITY.1).into());
        }
        let count = supervision::restarting(presence::REGISTRY);
        metrics::counter!(crate::telemetry::names::ACTOR_RESTARTS, "kind" => "registry").increment(1);
        tracing::warn!(actor = presence::REGISTRY, restarts = count, reason = %why, by_operator, "registry ended; restarting it");
        state.registry = Some(supervision::start_despite_kills(presence::REGISTRY, || spawn_registry(&myself, &state.presence)).await?);
        Ok(())
    }
}

impl Tree {
    pub async fn start(args: RootArgs) -> anyhow::Result<Tree> {
        let (tx, gave_up) = mpsc::unbounded_channel();
        let (root, _) = Actor::spawn(Some(ROOT.into()), Root, (args, tx)).await?;
        Ok(Tree { root, gave_up })
    }

    /// Graceful stop, each step waiting for what it waits for, the whole within `within`: 10021
    /// and close 1001 to every connection, until every one has flushed and closed; then every
    /// call session stops (its state is written by the recorder, which `serve` flushes); then
    /// the tree, children before parents. Past `within` it stops anyway and says so.
    pub async fn stop(&self, reconnect_after_ms: u64, within: Duration) {
        let deadline = Instant::now() + within;
        let left = || deadline.saturating_duration_since(Instant::now());
        presence::tell(presence::RegistryMsg::GoingAway { reconnect_after_ms });
        let connections: Option<ActorRef<ConnSupMsg>> = ActorRef::where_is(connection::SUPERVISOR);
        if let Some(sup) = connections {
            if !matches!(sup.call(ConnSupMsg::WhenEmpty, Some(left())).await, Ok(ractor::rpc::CallResult::Success(()))) {
                tracing::warn!(within_ms = within.as_millis() as u64, "shutdown: some connections had not closed in time; stopping anyway");
            }
        }
        for sup in [call::SUPERVISOR, REGISTRY_SUPERVISOR, connection::SUPERVISOR] {
            if let Some(cell) = ractor::registry::where_is(sup) {
                cell.stop_children_and_wait(StopReason::shutdown(), Some(left())).await;
            }
        }
        self.root.stop_children_and_wait(StopReason::shutdown(), Some(left())).await;
        if self.root.stop_and_wait(StopReason::shutdown(), Some(left())).await.is_err() {
            tracing::warn!(within_ms = within.as_millis() as u64, "shutdown: the actor tree had not stopped in time; stopping anyway");
        }
    }
}
