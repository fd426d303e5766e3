//! duet: a self-hosted, one-to-one video calling server.
//!
//! ```text
//! browser ──HTTP── axum (http/) ── handlers ── Store (store/: diesel-async + bb8, SQLite)
//!    │                 │
//!    └──── /ws ────────┘ upgrade
//!                      ▼
//! root-supervisor (tree.rs)
//! ├── registry-supervisor ── registry (presence/) ... who is online on which connections
//! ├── connection-supervisor
//! │   └── conn:<id> (connection/) ... owns the socket's writer; a reader task feeds it
//! └── call-supervisor (call/) ........ admits invites, restores live calls after a restart
//!     └── call:<callId> .............. one call: the state machine, its timers and record
//! ```
//!
//! The layout, one folder or file per concern:
//!
//! - `config.rs`: settings from flags, `DUET_*` environment variables and a TOML file.
//! - `protocol/`: the wire types of PROTOCOL.md, the typed client methods (`methods.rs`) and what
//!   every folder may say to a connection (`conn.rs`: ids, its message enum, its outbox).
//! - `auth/`: password hashing, session tokens, the failed-login limiter.
//! - `http/`: the router, the application state, handlers grouped by resource, the upgrade.
//! - `connection/`: the connection actor, its reader task (rate limit, decode, signaling fast
//!   path), its writer task behind a bounded queue, admission, and `methods/`, one handler module
//!   per group of methods.
//! - `presence/`: the registry actor, and the directory of accounts and contacts in memory.
//! - `call/`: the call state machine (pure), the session actor, the call supervisor, the
//!   recorder that writes call records off the path of the frames.
//! - `tree.rs`: the supervisors, started and stopped with the server.
//! - `loadtest/`: the load generator behind `duet loadtest`.
//! - `store/`: the only place that knows SQL; one `Store` whatever the backend.
//!
//! Dependencies point down: http -> connection -> call -> presence -> store, with `protocol/`
//! below them all. Actors talk only through their message enums; only `store/` knows SQL.

pub mod auth;
pub mod call;
pub mod cidr;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod doctor;
pub mod http;
pub mod limits;
pub mod loadtest;
pub mod presence;
pub mod protocol;
pub mod quota;
pub mod store;
pub mod supervision;
pub mod telemetry;
pub mod tree;
pub mod turn;
