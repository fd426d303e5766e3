//! The store: the only place that knows SQL. It owns the database pool and offers one method per
//! query; handlers, actors and the CLI call those methods and never see a backend type.
//!
//! diesel-async has no `MultiConnection`, so [`Store`] holds an enum of pools and every query is
//! written once inside [`with_conn!`], which expands it per backend. SQLite is the only backend of
//! this build; PostgreSQL and MySQL slot in as further variants with their own migration sets.

mod schema;
pub mod calls;
pub mod contacts;
pub mod messages;
pub mod server_settings;
pub mod sessions;
pub mod users;

use std::path::PathBuf;
use std::time::Duration;

use diesel::SqliteConnection;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub use sessions::SessionRow;
pub use users::{AccountRow, NewUser, UserRow};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Pragmas every SQLite connection gets: WAL lets readers run beside the one writer, the busy
/// timeout makes a second writer wait instead of failing, and foreign keys are off by default.
const SQLITE_PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

type SqliteAsync = SyncConnectionWrapper<SqliteConnection>;

/// A parsed `DUET_DATABASE_URL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A file path; its folder is created at start.
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    /// Parses a database URL, or says in words what is wrong with it.
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() || path.starts_with(":memory:") {
                return Err(format!("{url:?} needs a file path, like sqlite://data/duet.db"));
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("mysql://") {
            return Err(format!("{url:?}: this build of duet supports only sqlite:// for now"));
        }
        Err(format!("{url:?} must start with sqlite://"))
    }
}

/// Why a store call failed, in the three kinds callers treat differently.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (pool timeout, broken connection): callers answer 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint refused the write (a taken username, say).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Any other query failure: a bug or a corrupt database.
    #[error("query failed: {0}")]
    Query(diesel::result::Error),
}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => StoreError::Conflict(info.message().to_string()),
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, info) => {
                StoreError::Unavailable(info.message().to_string())
            }
            other => StoreError::Query(other),
        }
    }
}

impl<E: std::error::Error + 'static> From<bb8::RunError<E>> for StoreError {
    fn from(e: bb8::RunError<E>) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The pool of the configured backend.
#[derive(Clone)]
enum Backend {
    Sqlite(Pool<SqliteAsync>),
}

/// Cheap to clone; every clone shares the pool.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

/// Runs `$body` with `$conn` bound to a pooled connection of whichever backend the store uses.
/// The body is compiled once per backend, so one query text serves every backend.
macro_rules! with_conn {
    ($store:expr, |$conn:ident| $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite(pool) => {
                let mut guard = pool.get().await?;
                let $conn = &mut *guard;
                $body
            }
        }
    };
}
pub(crate) use with_conn;

impl Store {
    /// Opens the database, runs pending migrations and builds the pool.
    pub async fn open(url: &str) -> anyhow::Result<Store> {
        let parsed = DatabaseUrl::parse(url).map_err(anyhow::Error::msg)?;
        match parsed {
            DatabaseUrl::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| anyhow::anyhow!("cannot create the database folder {}: {e}", dir.display()))?;
                }
                let path_text = path.to_string_lossy().into_owned();
                let migrate_path = path_text.clone();
                // Migrations use diesel's sync harness, so they run on a blocking thread with a
                // plain connection before the async pool exists.
                tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                    let mut conn = SqliteConnection::establish(&migrate_path)?;
                    conn.batch_execute(SQLITE_PRAGMAS)?;
                    conn.run_pending_migrations(SQLITE_MIGRATIONS)
                        .map_err(|e| anyhow::anyhow!("migrating {migrate_path}: {e}"))?;
                    Ok(())
                })
                .await??;

                let mut config = ManagerConfig::<SqliteAsync>::default();
                config.custom_setup = Box::new(|url| {
                    let url = url.to_string();
                    Box::pin(async move {
                        let mut conn = SqliteConnection::establish(&url)?;
                        conn.batch_execute(SQLITE_PRAGMAS).map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(SyncConnectionWrapper::new(conn))
                    })
                });
                let manager = AsyncDieselConnectionManager::<SqliteAsync>::new_with_config(path_text, config);
                let pool = Pool::builder()
                    .max_size(8)
                    .connection_timeout(Duration::from_secs(5))
                    .build(manager)
                    .await?;
                Ok(Store { backend: Backend::Sqlite(pool) })
            }
        }
    }

    /// A trivial query, for readiness: fails while the database is unreachable.
    pub async fn ping(&self) -> StoreResult<()> {
        use diesel_async::RunQueryDsl;
        with_conn!(self, |conn| {
            diesel::sql_query("SELECT 1").execute(conn).await?;
            Ok(())
        })
    }
}

/// Milliseconds since the Unix epoch: how every time is stored, the same on every backend.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
