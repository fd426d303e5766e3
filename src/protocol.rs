//! The wire types of PROTOCOL.md: what clients read and write, with the exact field names. Server
//! internals convert to these at the edge; nothing here knows of actors or SQL.

use serde::{Deserialize, Serialize};

use crate::store::UserRow;

/// A user's presence (PROTOCOL.md section 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Offline,
    Available,
    InCall,
}

/// `User` = `{id, username, displayName, status}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub status: Status,
}

impl User {
    pub fn from_row(row: &UserRow, status: Status) -> Self {
        User { id: row.id, username: row.username.clone(), display_name: row.display_name.clone(), status }
    }
}

/// An entry of `GET /api/users`: a `User` plus unread chat messages from them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContactEntry {
    #[serde(flatten)]
    pub user: User,
    pub unread: i64,
}
