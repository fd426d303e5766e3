//! duet: a self-hosted, one-to-one video calling server.
//!
//! ```text
//! browser ──HTTP── axum (http/) ── handlers ── Store (store/: diesel-async + bb8, SQLite)
//! ```
//!
//! The layout, one folder or file per concern:
//!
//! - `config.rs`: settings from flags, `DUET_*` environment variables and a TOML file.
//! - `protocol.rs`: the wire types of PROTOCOL.md.
//! - `auth/`: password hashing, session tokens, the failed-login limiter.
//! - `http/`: the router, the application state, handlers grouped by resource.
//! - `store/`: the only place that knows SQL; one `Store` whatever the backend.
//!
//! The real-time half (connection actors, the presence registry, call sessions under
//! supervisors) arrives with its own issues; see DESIGN.md beside the repository.

pub mod auth;
pub mod config;
pub mod http;
pub mod protocol;
pub mod store;
