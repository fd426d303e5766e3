//! The connection supervisor: parent of every connection actor. A connection that ends, however
//! it ends, is dropped from the registry here too, so a killed actor leaves no ghost presence.
//! Connections are not restarted: their socket died with them, and the client reconnects.

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::presence::{self, RegistryMsg};

/// Stable actor name (PROTOCOL.md section 5).
pub const SUPERVISOR: &str = "connection-supervisor";

pub struct ConnectionSupervisor;

impl Actor for ConnectionSupervisor {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _myself: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(&self, _myself: ActorRef<()>, event: SupervisionEvent, _state: &mut ()) -> Result<(), ActorProcessingErr> {
        let (cell, failure) = match &event {
            SupervisionEvent::ActorTerminated(cell, _, _) => (cell, None),
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err.to_string())),
            _ => return Ok(()),
        };
        if let Some(id) = cell.get_name().as_deref().and_then(|n| n.strip_prefix("conn:")) {
            presence::tell(RegistryMsg::Leave { conn_id: id.into() });
            if let Some(err) = failure {
                tracing::warn!(actor = %format!("conn:{id}"), error = %err, "connection actor failed");
            }
        }
        Ok(())
    }
}
