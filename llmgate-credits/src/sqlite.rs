//! The embedded default: a SQLite file beside the server.

use std::str::FromStr;
use std::time::Duration;

use llmgate_core::Result;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::database_error;
use crate::sql::{invalid_url, sql_credit_store, sql_store_pool};

/// The migrations of this build, run at connect and checked by [`ready`](SqliteCreditStore::ready).
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a writer waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// SQLite runs one writer at a time; a few connections serve concurrent readers.
const MAX_CONNECTIONS: u32 = 8;

/// A [`CreditStore`](llmgate_core::CreditStore) in a SQLite database (WAL mode, foreign keys
/// on). Every step is one `BEGIN IMMEDIATE` transaction.
///
/// Writes go through a pool of their own with one connection: SQLite runs one writer at a
/// time anyway, and writers that queue for that connection are served in order, while
/// writers racing for the file lock on several connections sleep in SQLite's busy handler
/// (milliseconds to tens of milliseconds each time they lose). Reads use the other pool.
#[derive(Debug, Clone)]
pub struct SqliteCreditStore {
    pool: SqlitePool,
    writer: SqlitePool,
}

impl SqliteCreditStore {
    /// Open (creating it if missing) the database at `url` — `sqlite://llmgate.db`,
    /// `sqlite:///abs/path.db` or `sqlite::memory:` — and run the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(invalid_url("SQLite"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Every committed charge survives a power cut, not just a crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            // An in-memory database lives as long as its connections: keep exactly one open.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
        } else {
            SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .connect_with(options)
                .await
        }
        .map_err(database_error("connect"))?;
        Self::from_pool(pool).await
    }

    /// Use an existing pool (its connections should have foreign keys on and a busy timeout)
    /// and run the migrations.
    pub async fn from_pool(pool: SqlitePool) -> Result<Self> {
        Self::run_migrations(pool).await
    }

    /// The write pool: one connection to the same database. An in-memory database (or any
    /// pool of one connection) is its own writer, since another connection would open another
    /// database.
    fn with_pool(pool: SqlitePool) -> Self {
        let single = pool.options().get_max_connections() <= 1;
        let writer = if single {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .connect_lazy_with((*pool.connect_options()).clone())
        };
        Self { pool, writer }
    }

    fn write_pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// `BEGIN IMMEDIATE` takes the write lock up front (waiting up to the busy timeout), so a
    /// transaction never fails half-way when it turns from reading to writing.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }
}

sql_store_pool!(SqliteCreditStore, sqlx::Sqlite, MIGRATOR);
sql_credit_store!(SqliteCreditStore, sqlx::Sqlite);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_needs_every_migration_of_this_build() {
        let store = SqliteCreditStore::connect("sqlite::memory:").await.unwrap();
        store.ready().await.unwrap();
        let first = MIGRATOR.iter().next().unwrap().version;
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
            .bind(first)
            .execute(store.pool())
            .await
            .unwrap();
        store.ping().await.unwrap();
        let error = store.ready().await.unwrap_err();
        assert_eq!(error.status(), 503);
        assert!(
            error.message().contains("not migrated"),
            "{}",
            error.message()
        );
    }
}
