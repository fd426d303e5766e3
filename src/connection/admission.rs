//! Admission: at most `DUET_WS_MAX_PER_USER` open connections per user (PROTOCOL.md section 7).
//! A slot is taken before the upgrade and held by the connection until it ends, however it ends
//! (the slot is given back when dropped; see `crate::quota`).

pub use crate::quota::{Quota as Admission, Slot};
