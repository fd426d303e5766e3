//! Schema migrations, one set per backend (`migrations/sqlite`, `migrations/postgres`,
//! `migrations/mysql`), embedded in the binary; and a look at a database's schema that changes
//! nothing, for `duet doctor`.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{Access, Backend, Store, StoreOptions, with_conn};


const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const MYSQL: EmbeddedMigrations = embed_migrations!("migrations/mysql");

// diesel's own bookkeeping table, read (never written) by `inspect`.
diesel::table! {
    __diesel_schema_migrations (version) {
        version -> Text,
    }
}

/// Runs the pending migrations of one backend on one connection; returns their names. The
/// harness is synchronous, so it runs on a blocking thread.
async fn run_pending<C, B>(conn: C, source: EmbeddedMigrations) -> anyhow::Result<Vec<String>>
where
    C: Send + 'static,
    B: diesel::backend::Backend,
    diesel_async::AsyncMigrationHarness<C>: MigrationHarness<B>,
    C: diesel_async::AsyncConnection,
{
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
        let ran = harness.run_pending_migrations(source).map_err(|e| anyhow::anyhow!("migrating: {e}"))?;
        Ok(ran.iter().map(ToString::to_string).collect())
    })
    .await?
}

/// `(version, name)` of every migration in a set, oldest first: diesel records the version
/// (`20261124000001`), people read the name (`2026-11-24-000001_accounts`).
fn catalogue(source: &EmbeddedMigrations) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = diesel::migration::MigrationSource::<diesel::sqlite::Sqlite>::migrations(source)
        .map(|m| m.iter().map(|m| (m.name().version().to_string(), m.name().to_string())).collect())
        .unwrap_or_default();
    all.sort();
    all
}

impl Store {
    /// Runs the pending migrations of this store's backend; returns the versions it ran, oldest
    /// first (empty when the schema was up to date).
    pub async fn migrate(&self) -> anyhow::Result<Vec<String>> {
        let unavailable = |e| anyhow::anyhow!("database unavailable: {e}");
        let ran = match &self.backend {
            Backend::Sqlite(pool) => run_pending(pool.get_owned().await.map_err(unavailable)?, SQLITE).await?,
            Backend::Postgres(pool) => run_pending(pool.get_owned().await.map_err(unavailable)?, POSTGRES).await?,
            Backend::Mysql(pool) => run_pending(pool.get_owned().await.map_err(unavailable)?, MYSQL).await?,
        };
        let known = self.catalogue();
        Ok(ran.iter().map(|v| known.iter().find(|(k, _)| k == v).map_or_else(|| v.clone(), |(_, name)| name.clone())).collect())
    }

    /// Versions recorded as applied in the database.
    async fn applied_versions(&self) -> super::StoreResult<Vec<String>> {
        with_conn!(self, |conn| {
            Ok(__diesel_schema_migrations::table
                .select(__diesel_schema_migrations::version)
                .order(__diesel_schema_migrations::version.asc())
                .load::<String>(conn)
                .await?)
        })
    }

    fn catalogue(&self) -> Vec<(String, String)> {
        catalogue(match self.backend {
            Backend::Sqlite(_) => &SQLITE,
            Backend::Postgres(_) => &POSTGRES,
            Backend::Mysql(_) => &MYSQL,
        })
    }
}

/// What `duet doctor` learns of a database without changing it.
#[derive(Debug)]
pub struct Inspection {
    pub backend: &'static str,
    /// Migrations this binary has and the database has not run yet.
    pub pending: Vec<String>,
    /// Migrations the database ran that this binary does not know (a newer duet wrote them).
    pub unknown: Vec<String>,
    /// Whether the schema exists at all.
    pub has_schema: bool,
}

/// Connects (read-only for SQLite) and compares the database's schema with this binary's.
pub async fn inspect(url: &str, options: StoreOptions) -> anyhow::Result<Inspection> {
    let store = Store::connect(url, options, Access::ReadOnly).await?;
    let known = store.catalogue();
    // A database no duet has migrated has no bookkeeping table: the query fails as a query.
    let (applied, has_schema) = match store.applied_versions().await {
        Ok(v) => (v, true),
        Err(super::StoreError::Query(_)) => (Vec::new(), false),
        Err(e) => return Err(e.into()),
    };
    let pending = known.iter().filter(|(v, _)| !applied.contains(v)).map(|(_, name)| name.clone()).collect();
    let unknown = applied.iter().filter(|a| !known.iter().any(|(v, _)| v == *a)).cloned().collect();
    Ok(Inspection { backend: store.backend_name(), pending, unknown, has_schema })
}
