//! The store: the only place that knows SQL. It owns the database pool and offers one method per
//! query; handlers, actors and the CLI call those methods and never see a backend type.
//!
//! diesel-async has no `MultiConnection`, so [`Store`] holds an enum of pools (SQLite, PostgreSQL,
//! MySQL/MariaDB) and every query is written once inside [`with_conn!`], which expands it per
//! backend. The few places where the SQL dialects differ go through [`Dialect`]. Each backend has
//! its own migration set (`migrations/<backend>`), the same schema with types chosen per backend.
//!
//! Every call is bounded by the query timeout, and a database that cannot be reached surfaces as
//! [`StoreError::Unavailable`], which HTTP answers with 503 and the WebSocket with `unavailable`.

mod schema;
pub mod calls;
pub mod contacts;
pub mod messages;
mod migrate;
pub mod server_settings;
pub mod sessions;
mod url;
pub mod users;

use std::time::Duration;

use diesel::SqliteConnection;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncMysqlConnection, AsyncPgConnection};

pub use migrate::{Inspection, inspect};
pub use sessions::SessionRow;
pub use url::{DatabaseUrl, redact};
pub use users::{AccountRow, NewUser, UserRow};

/// Pragmas every SQLite connection gets: WAL lets readers run beside the one writer, the busy
/// timeout makes a second writer wait instead of failing, and foreign keys are off by default.
const SQLITE_PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

/// MySQL sessions are strict, so that a value too long for its column is refused rather than cut
/// short, whatever the server's default mode.
const MYSQL_SESSION: &str = "SET sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'";

type SqliteAsync = SyncConnectionWrapper<SqliteConnection>;

/// How the pool behaves (PROTOCOL.md section 6: `DUET_DATABASE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Connections kept to PostgreSQL or MySQL (SQLite has its own small pool).
    pub pool_size: u32,
    /// A connection not made, or not free, within this long fails the call as unavailable.
    pub connect_timeout: Duration,
    /// A call (checkout and query) not answered within this long fails as unavailable.
    pub query_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { pool_size: 16, connect_timeout: Duration::from_secs(3), query_timeout: Duration::from_secs(5) }
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
    /// The row to change is not there (deleted meanwhile, say): callers answer 404.
    #[error("no such {0}")]
    NotFound(&'static str),
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
            Error::DatabaseError(DatabaseErrorKind::Unknown, info) if is_connection_failure(info.message()) => {
                StoreError::Unavailable(info.message().to_string())
            }
            // A connection left inside a transaction whose future was dropped (a timeout).
            Error::BrokenTransactionManager | Error::AlreadyInTransaction => StoreError::Unavailable(e.to_string()),
            other => StoreError::Query(other),
        }
    }
}

/// Whether a driver's error text describes a lost or refused connection rather than a bad query.
/// The MySQL driver reports I/O failures and server shutdowns as `Unknown`, so the text decides.
fn is_connection_failure(message: &str) -> bool {
    const SIGNS: [&str; 11] = [
        "input/output error",
        "connection reset",
        "connection refused",
        "connection closed",
        "connection to the server is closed",
        "broken pipe",
        "server has gone away",
        "lost connection",
        "terminating connection",
        "unexpected eof",
        "too many connections",
    ];
    let message = message.to_ascii_lowercase();
    SIGNS.iter().any(|s| message.contains(s))
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
    Postgres(Pool<AsyncPgConnection>),
    Mysql(Pool<AsyncMysqlConnection>),
}

/// Cheap to clone; every clone shares the pool.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    query_timeout: Duration,
}

/// Runs `$body` with `$conn` bound to a pooled connection of whichever backend the store uses,
/// within the query timeout. The body is compiled once per backend, so one query text serves
/// every backend; `return` and `?` in it leave the body with a `StoreResult`.
macro_rules! with_conn {
    ($store:expr, |$conn:ident| $body:expr) => {{
        let store: &$crate::store::Store = &$store;
        store
            .bounded(async {
                match &store.backend {
                    $crate::store::Backend::Sqlite(pool) => {
                        let mut guard = pool.get().await?;
                        let $conn = &mut *guard;
                        $body
                    }
                    $crate::store::Backend::Postgres(pool) => {
                        let mut guard = pool.get().await?;
                        let $conn = &mut *guard;
                        $body
                    }
                    $crate::store::Backend::Mysql(pool) => {
                        let mut guard = pool.get().await?;
                        let $conn = &mut *guard;
                        $body
                    }
                }
            })
            .await
    }};
}
pub(crate) use with_conn;

/// What differs between the SQL dialects, named once per backend's connection type so that the
/// queries using it are still written once.
pub(crate) trait Dialect {
    /// A `SELECT` of the id the last `INSERT` on this connection generated, as `id` (MySQL has no
    /// `RETURNING`).
    const LAST_INSERT_ID: &'static str;
}

impl Dialect for SqliteAsync {
    const LAST_INSERT_ID: &'static str = "SELECT last_insert_rowid() AS id";
}

impl Dialect for AsyncPgConnection {
    const LAST_INSERT_ID: &'static str = "SELECT lastval() AS id";
}

impl Dialect for AsyncMysqlConnection {
    const LAST_INSERT_ID: &'static str = "SELECT CAST(LAST_INSERT_ID() AS SIGNED) AS id";
}

/// The dialect's text for a connection, picked by its type.
pub(crate) fn last_insert_id_sql<C: Dialect>(_conn: &C) -> &'static str {
    C::LAST_INSERT_ID
}

/// The row [`Dialect::LAST_INSERT_ID`] reads.
#[derive(diesel::QueryableByName)]
pub(crate) struct InsertedId {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub id: i64,
}

impl Store {
    /// Opens the database, runs pending migrations (logging each one) and builds the pool.
    pub async fn open(url: &str) -> anyhow::Result<Store> {
        Store::open_with(url, StoreOptions::default()).await
    }

    /// [`Store::open`] with the pool's size and timeouts.
    pub async fn open_with(url: &str, options: StoreOptions) -> anyhow::Result<Store> {
        let store = Store::connect(url, options, Access::ReadWrite).await?;
        for name in store.migrate().await? {
            tracing::info!(migration = %name, backend = store.backend_name(), "migration applied");
        }
        Ok(store)
    }

    /// Builds the pool and checks the database answers, without migrating (`duet migrate` runs
    /// and lists the migrations itself).
    pub async fn connect_only(url: &str, options: StoreOptions) -> anyhow::Result<Store> {
        Store::connect(url, options, Access::ReadWrite).await
    }

    /// Builds the pool without touching the schema. `ReadOnly` opens SQLite read-only and never
    /// creates its file (`duet doctor`).
    pub(crate) async fn connect(url: &str, options: StoreOptions, access: Access) -> anyhow::Result<Store> {
        let parsed = DatabaseUrl::parse(url).map_err(anyhow::Error::msg)?;
        let shown = redact(url);
        fn builder<M: bb8::ManageConnection>(max: u32, options: StoreOptions) -> bb8::Builder<M> {
            bb8::Pool::builder()
                .max_size(max)
                .connection_timeout(options.connect_timeout)
                // A connection that sat idle through an outage is checked before it is handed out.
                .test_on_check_out(true)
        }
        let backend = match parsed {
            DatabaseUrl::Sqlite(path) => {
                let path_text = path.to_string_lossy().into_owned();
                let target = match access {
                    Access::ReadWrite => {
                        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                            std::fs::create_dir_all(dir)
                                .map_err(|e| anyhow::anyhow!("cannot create the database folder {}: {e}", dir.display()))?;
                        }
                        path_text
                    }
                    Access::ReadOnly => {
                        if !path.is_file() {
                            anyhow::bail!("{} does not exist yet (duet serve or duet migrate creates it)", path.display());
                        }
                        format!("file:{path_text}?mode=ro")
                    }
                };
                let pragmas = match access {
                    Access::ReadWrite => SQLITE_PRAGMAS,
                    Access::ReadOnly => "PRAGMA busy_timeout = 5000;",
                };
                let mut config = ManagerConfig::<SqliteAsync>::default();
                config.custom_setup = Box::new(move |url| {
                    let url = url.to_string();
                    Box::pin(async move {
                        let mut conn = SqliteConnection::establish(&url)?;
                        conn.batch_execute(pragmas).map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(SyncConnectionWrapper::new(conn))
                    })
                });
                let manager = AsyncDieselConnectionManager::<SqliteAsync>::new_with_config(target, config);
                Backend::Sqlite(builder(8, options).build(manager).await.map_err(|e| anyhow::anyhow!("opening {shown}: {e}"))?)
            }
            DatabaseUrl::Postgres(url) => {
                let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
                Backend::Postgres(builder(options.pool_size, options).build(manager).await.map_err(|e| anyhow::anyhow!("connecting to {shown}: {e}"))?)
            }
            DatabaseUrl::Mysql(url) => {
                let mut config = ManagerConfig::<AsyncMysqlConnection>::default();
                config.custom_setup = Box::new(|url| {
                    let url = url.to_string();
                    Box::pin(async move {
                        use diesel_async::{AsyncConnection, SimpleAsyncConnection};
                        let mut conn = AsyncMysqlConnection::establish(&url).await?;
                        conn.batch_execute(MYSQL_SESSION).await.map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
                    })
                });
                let manager = AsyncDieselConnectionManager::<AsyncMysqlConnection>::new_with_config(url, config);
                Backend::Mysql(builder(options.pool_size, options).build(manager).await.map_err(|e| anyhow::anyhow!("connecting to {shown}: {e}"))?)
            }
        };
        let store = Store { backend, query_timeout: options.query_timeout };
        // The pool connects lazily: make a dead database fail the start with its own words.
        store.ping().await.map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        Ok(store)
    }

    /// `sqlite`, `postgres` or `mysql`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
            Backend::Mysql(_) => "mysql",
        }
    }

    /// Runs `call` within the query timeout; past it the database counts as unavailable.
    async fn bounded<T>(&self, call: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        let result = match tokio::time::timeout(self.query_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!("the database did not answer within {} ms", self.query_timeout.as_millis()))),
        };
        if let Err(StoreError::Unavailable(_)) = &result {
            metrics::counter!(crate::telemetry::names::DATABASE_UNAVAILABLE, "backend" => self.backend_name()).increment(1);
        }
        result
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

/// Whether a store may change the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    ReadWrite,
    ReadOnly,
}

/// Milliseconds since the Unix epoch: how every time is stored, the same on every backend.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
