//! The connection supervisor: parent of every connection actor. A connection that ends, however
//! it ends (a kill leaves no state and runs no cleanup), is reported here to the registry and to
//! the call supervisor, so it leaves no ghost presence and no call bound to a dead socket.
//! Connections are not restarted: their socket died with them, and the client reconnects.
//!
//! When this supervisor itself dies, its connections die with it (their sockets close with 1011
//! and the clients reconnect), and the reports of those deaths are lost with it. So a new
//! supervisor starts by asking the registry to drop the connections that are gone, and tells
//! their calls, which then wait out each party's reconnect grace.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::ConnId;
use crate::call::{self, CallSupMsg};
use crate::presence::{self, RegistryMsg};
use crate::supervision;

pub struct ConnectionSupervisor;

pub enum ConnSupMsg {
    /// Answers once no connection is left (graceful shutdown waits on it).
    WhenEmpty(RpcReplyPort<()>),
}

#[derive(Default)]
pub struct ConnSupState {
    waiting: Vec<RpcReplyPort<()>>,
}

/// Connections of this supervisor still running, but for `leaving`.
fn live_children(myself: &ActorRef<ConnSupMsg>, leaving: Option<ractor::ActorId>) -> usize {
    myself
        .get_children()
        .iter()
        .filter(|c| Some(c.get_id()) != leaving && c.get_status() < ractor::ActorStatus::Stopping)
        .count()
}

impl Actor for ConnectionSupervisor {
    type Msg = ConnSupMsg;
    type State = ConnSupState;
    type Arguments = ();

    async fn pre_start(&self, _myself: ActorRef<ConnSupMsg>, _: ()) -> Result<ConnSupState, ActorProcessingErr> {
        Ok(ConnSupState::default())
    }

    async fn post_start(&self, _myself: ActorRef<ConnSupMsg>, _state: &mut ConnSupState) -> Result<(), ActorProcessingErr> {
        // After a restart: the connections that died with the previous supervisor.
        if let Some(registry) = presence::registry() {
            if let Some(dead) = call::ask(&registry, RegistryMsg::DropDead).await {
                for (conn_id, user_id) in dead {
                    call::tell(CallSupMsg::ConnectionClosed { conn_id, user_id, logout: false });
                }
            }
        }
        Ok(())
    }

    async fn handle(&self, myself: ActorRef<ConnSupMsg>, msg: ConnSupMsg, state: &mut ConnSupState) -> Result<(), ActorProcessingErr> {
        match msg {
            ConnSupMsg::WhenEmpty(reply) if live_children(&myself, None) == 0 => {
                let _ = reply.send(());
            }
            ConnSupMsg::WhenEmpty(reply) => state.waiting.push(reply),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(&self, myself: ActorRef<ConnSupMsg>, event: SupervisionEvent, state: &mut ConnSupState) -> Result<(), ActorProcessingErr> {
        let Some((cell, why)) = supervision::StopReason::of(&event) else { return Ok(()) };
        let Some(name) = cell.get_name() else { return Ok(()) };
        let _ = supervision::was_operator_kill(&name);
        if let Some(id) = super::id_of_actor(&name) {
            let conn_id: ConnId = id.into();
            presence::tell(RegistryMsg::Leave { conn_id: conn_id.clone() });
            if let Some(user_id) = super::user_of(id) {
                call::tell(CallSupMsg::ConnectionClosed { conn_id, user_id, logout: false });
            }
            supervision::gone(&name);
            match &why {
                supervision::StopReason::Failed(err) => {
                    tracing::warn!(actor = %name, error = %err, "connection actor failed");
                    metrics::counter!(crate::telemetry::names::ACTOR_FAILURES, "kind" => "connection").increment(1);
                }
                // A peer's close, a silent or slow client: the normal ends of a connection.
                other => tracing::debug!(actor = %name, reason = %other, "connection ended"),
            }
        }
        if !state.waiting.is_empty() && live_children(&myself, Some(cell.get_id())) == 0 {
            for w in state.waiting.drain(..) {
                let _ = w.send(());
            }
        }
        Ok(())
    }
}
