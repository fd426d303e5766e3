//! The connection supervisor: parent of every connection actor. A connection that ends, however
//! it ends (a kill leaves no state and runs no cleanup), is reported here to the registry and to
//! the call supervisor, so it leaves no ghost presence and no call bound to a dead socket.
//! Connections are not restarted: their socket died with them, and the client reconnects.

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::ConnId;
use crate::call::{self, CallSupMsg};
use crate::presence::{self, RegistryMsg};
use crate::supervision;

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
        let Some(name) = cell.get_name() else { return Ok(()) };
        let Some(id) = name.strip_prefix("conn:") else { return Ok(()) };
        let conn_id: ConnId = id.into();
        presence::tell(RegistryMsg::Leave { conn_id: conn_id.clone() });
        if let Some(user_id) = super::user_of(id) {
            call::tell(CallSupMsg::ConnectionClosed { conn_id, user_id, logout: false });
        }
        supervision::gone(&name);
        if let Some(err) = failure {
            tracing::warn!(actor = %name, error = %err, "connection actor failed");
        }
        Ok(())
    }
}
