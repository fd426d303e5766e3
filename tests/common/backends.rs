//! The three database backends a suite runs on. A test written inside [`every_backend!`] runs
//! once per backend: on SQLite always, on PostgreSQL and MySQL when `DUET_TEST_POSTGRES_URL` /
//! `DUET_TEST_MYSQL_URL` name a server (then each test gets a database of its own, created here
//! and dropped when the test ends). Without a URL, that backend's tests are reported `ignored`
//! with the reason, by name (`build.rs` turns the variables into `cfg`s for `#[ignore]`).

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Mysql,
}

impl Backend {
    /// The variable naming the server of this backend.
    pub fn env(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("DUET_TEST_POSTGRES_URL"),
            Backend::Mysql => Some("DUET_TEST_MYSQL_URL"),
        }
    }
}

thread_local! {
    static CURRENT: Cell<Backend> = const { Cell::new(Backend::Sqlite) };
}

/// Makes servers this test thread starts use `backend`. Each test runs on its own thread, and
/// the body of a `#[tokio::test]` runs on that thread, whatever the runtime's flavour.
pub fn use_backend(backend: Backend) {
    CURRENT.with(|c| c.set(backend));
}

pub fn current() -> Backend {
    CURRENT.with(Cell::get)
}

/// Writes each test once per backend, in modules `sqlite`, `postgres` and `mysql`.
#[macro_export]
macro_rules! every_backend {
    ($($(#[$meta:meta])* async fn $name:ident() $body:block)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$meta])*
                async fn $name() {
                    $crate::common::backends::use_backend($crate::common::Backend::Sqlite);
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$meta])*
                #[cfg_attr(not(duet_test_postgres), ignore = "skipped: DUET_TEST_POSTGRES_URL is not set")]
                async fn $name() {
                    $crate::common::backends::use_backend($crate::common::Backend::Postgres);
                    $body
                }
            )*
        }
        mod mysql {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$meta])*
                #[cfg_attr(not(duet_test_mysql), ignore = "skipped: DUET_TEST_MYSQL_URL is not set")]
                async fn $name() {
                    $crate::common::backends::use_backend($crate::common::Backend::Mysql);
                    $body
                }
            )*
        }
    };
}

/// A database for one test: an SQLite file in the test's folder, or a fresh database on the
/// given server, dropped when the last server using it is gone.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    /// The server's own URL and the name of the database made on it.
    made: Option<(String, String)>,
}

static SERIAL: AtomicUsize = AtomicUsize::new(0);

/// `base` with its database name replaced by `name`.
fn with_database(base: &str, name: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (base, None),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let server = match head[scheme_end..].find('/') {
        Some(i) => &head[..scheme_end + i],
        None => head,
    };
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

/// Runs one statement on the server at `url`, on a thread of its own (the caller may be inside
/// a test's runtime, where blocking on another runtime is not allowed).
fn admin(backend: Backend, url: String, sql: String) -> Result<(), String> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            use diesel_async::{AsyncConnection, SimpleAsyncConnection};
            match backend {
                Backend::Postgres => {
                    let mut c = diesel_async::AsyncPgConnection::establish(&url).await.map_err(|e| e.to_string())?;
                    c.batch_execute(&sql).await.map_err(|e| e.to_string())
                }
                Backend::Mysql => {
                    let mut c = diesel_async::AsyncMysqlConnection::establish(&url).await.map_err(|e| e.to_string())?;
                    c.batch_execute(&sql).await.map_err(|e| e.to_string())
                }
                Backend::Sqlite => Ok(()),
            }
        })
    })
    .join()
    .map_err(|_| "the admin thread panicked".to_string())?
}

impl TestDb {
    pub fn create(backend: Backend, dir: &Path) -> TestDb {
        let Some(var) = backend.env() else {
            return TestDb { backend, url: format!("sqlite://{}", dir.join("duet.db").display()), made: None };
        };
        let base = std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| panic!("{var} was set when the tests were built but is not set now"));
        let name = format!("duet_t{}_{}", std::process::id(), SERIAL.fetch_add(1, Ordering::Relaxed));
        let create = match backend {
            Backend::Postgres => format!("CREATE DATABASE {name}"),
            _ => format!("CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"),
        };
        admin(backend, base.clone(), create).unwrap_or_else(|e| panic!("creating a database on {var}: {e}"));
        TestDb { backend, url: with_database(&base, &name), made: Some((base, name)) }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, name)) = self.made.take() {
            let drop = match self.backend {
                Backend::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                _ => format!("DROP DATABASE IF EXISTS {name}"),
            };
            if let Err(e) = admin(self.backend, base, drop) {
                eprintln!("could not drop the test database {name}: {e}");
            }
        }
    }
}
