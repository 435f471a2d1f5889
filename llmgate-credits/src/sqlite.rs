//! The embedded default: a SQLite file beside the server.

mod lease_rows;

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

/// A [`CreditStore`](llmgate_core::credits::CreditStore) in a SQLite database (WAL mode, foreign keys
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
    replica: crate::sql::Replica,
}

/// Create a missing database file readable and writable by its owner only (0600): it holds the
/// ledger, users and sealed keys. SQLite creates the WAL and shared-memory files with the
/// database file's mode, so they are private too. An existing file keeps its mode; a file that
/// cannot be created here is left for SQLite to report.
fn create_private(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
    }
    #[cfg(not(unix))]
    let _ = path;
}

impl SqliteCreditStore {
    /// Open (creating it if missing) the database at `url` — `sqlite://llmgate.db`,
    /// `sqlite:///abs/path.db` or `sqlite::memory:` — and run the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(invalid_url("SQLite"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Users, keys and everything else written outside the ledger writer survive a power
            // cut, not just a crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory {
            create_private(options.get_filename());
        }
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
                .idle_timeout(None)
                .max_lifetime(None)
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
            let options = (*pool.connect_options()).clone();
            SqlitePoolOptions::new()
                .max_connections(1)
                // A file does not hang up: no ping (a hop to SQLite's thread) before each use.
                .test_before_acquire(false)
                // Nor does it need recycling: without an idle timeout or a lifetime the pool
                // runs no maintenance task, whose rare spin at shutdown (sqlx issue 3645) once
                // hung a test here.
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_lazy_with(options.synchronous(SqliteSynchronous::Normal))
        };
        Self {
            pool,
            writer,
            replica: crate::sql::Replica::new(),
        }
    }

    /// A pool of one connection writes through that connection with the pool's own settings
    /// (an in-memory database, or a pool handed to [`from_pool`](Self::from_pool)).
    fn shared_writer(&self) -> bool {
        self.pool.options().get_max_connections() <= 1
    }

    /// SQLite has no data-modifying CTEs: holds and settles take a few statements (each a
    /// call into the embedded library, no network round trip).
    const HOLD_STATEMENT: Option<&'static str> = None;
    const SETTLE_STATEMENT: Option<&'static str> = None;
    const LEASE_CHARGE_STATEMENT: Option<&'static str> = None;
    const TAKE_STATEMENT: Option<&'static str> = None;

    /// No path of its own for a batch of lease writes: one writer connection, no row locks
    /// to order; its charges go in runs (see `lease_runs`).
    #[allow(clippy::unused_async)]
    async fn lease_batch(
        &self,
        _writes: &[llmgate_core::credits::LedgerWrite],
    ) -> Result<Option<Vec<llmgate_core::credits::Written>>> {
        Ok(None)
    }

    fn write_pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// The ledger's write connection, for background writes that are not money (the request
    /// log): they take turns with the ledger on its one connection (`synchronous=NORMAL`)
    /// instead of contending for SQLite's write lock from a connection of their own, whose
    /// busy waits and fsyncs under the lock stalled paid requests.
    pub fn background_write_pool(&self) -> SqlitePool {
        self.writer.clone()
    }

    /// A ledger transaction (holds, settles, releases, usage). `BEGIN IMMEDIATE` takes the
    /// write lock up front (waiting up to the busy timeout), so a transaction never fails
    /// half-way when it turns from reading to writing.
    ///
    /// The write connection runs `synchronous=NORMAL`: in WAL mode a commit is then written to
    /// the operating system (it survives the process being killed) without waiting for an
    /// fsync, which on a virtual disk costs milliseconds per commit. Only a power cut or a
    /// kernel crash can take back the commits since the last checkpoint: held or charged
    /// requests that were served then go uncharged; nothing is charged twice or overspent.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    /// A credit's transaction: money coming in waits for its fsync (`synchronous=FULL` on the
    /// write connection until [`credit_done`](Self::credit_done)), so a top-up that
    /// was answered survives a power cut. The whole transaction runs on the one connection the
    /// pragma was set on.
    async fn begin_credit(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        if self.shared_writer() {
            return self.begin_write().await;
        }
        let mut connection = self.writer.acquire().await?;
        sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *connection)
            .await?;
        sqlx::Transaction::begin(
            connection,
            Some(sqlx::SqlSafeStr::into_sql_str("BEGIN IMMEDIATE")),
        )
        .await
    }

    /// Back to the ledger's `synchronous=NORMAL` once a credit is committed. Another credit
    /// holds the connection from its pragma to its commit, so this cannot weaken it; a ledger
    /// batch that runs first is merely synced too.
    async fn credit_done(&self) {
        if self.shared_writer() {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&self.writer)
            .await
        {
            tracing::debug!(%error, "restoring synchronous=NORMAL after a credit failed");
        }
    }
}

impl SqliteCreditStore {
    /// Give back every open hold. Only for a database no other process writes, before it
    /// serves: its holds then belong to a run that ended without settling them (a crash, a
    /// `kill -9`), and waiting for their expiry would keep that money from its owners.
    pub async fn release_every_hold(&self) -> Result<u64> {
        let open: Vec<i64> = sqlx::query_scalar("SELECT id FROM credit_holds ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(database_error("release open holds"))?;
        self.release_abandoned(open).await
    }
}

sql_store_pool!(SqliteCreditStore, sqlx::Sqlite, MIGRATOR);
sql_credit_store!(SqliteCreditStore, sqlx::Sqlite);

#[cfg(test)]
mod tests {
    use super::*;
    use llmgate_core::credits::{Credit, CreditKind, CreditStore};

    async fn synchronous_level(
        connection: impl sqlx::Executor<'_, Database = sqlx::Sqlite>,
    ) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(connection)
            .await
            .unwrap()
    }

    /// Ledger commits skip the fsync (NORMAL = 1); a credit's commit waits for it (FULL = 2),
    /// and the write connection goes back to NORMAL afterwards.
    #[tokio::test]
    async fn credits_commit_durably_and_ledger_work_does_not_wait_for_the_disk() {
        let dir = std::env::temp_dir().join(format!("llmgate-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("ledger.db").display());
        let store = SqliteCreditStore::connect(&url).await.unwrap();
        assert_eq!(synchronous_level(store.write_pool()).await, 1);
        assert_eq!(synchronous_level(store.pool()).await, 2);

        let mut credit = store.begin_credit().await.unwrap();
        assert_eq!(synchronous_level(&mut *credit).await, 2);
        credit.rollback().await.unwrap();
        store.credit_done().await;
        assert_eq!(synchronous_level(store.write_pool()).await, 1);

        let outcome = store
            .credit(Credit {
                user_id: "ann".into(),
                kind: CreditKind::TopUp,
                amount_micros: 5,
                idempotency_key: "k".into(),
                reason: "test".into(),
            })
            .await
            .unwrap();
        assert!(outcome.applied);
        assert_eq!(synchronous_level(store.write_pool()).await, 1);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The request log writes through the ledger's own connection: no second writer to wait
    /// for SQLite's lock, no fsync under it.
    #[tokio::test]
    async fn background_writes_share_the_ledger_write_connection() {
        let dir = std::env::temp_dir().join(format!("llmgate-bg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("ledger.db").display());
        let store = SqliteCreditStore::connect(&url).await.unwrap();
        let background = store.background_write_pool();
        assert_eq!(background.options().get_max_connections(), 1);
        assert_eq!(synchronous_level(&background).await, 1);
        let held = background.acquire().await.unwrap();
        // One connection between them: the ledger's writer waits for the background write.
        assert!(store.write_pool().try_acquire().is_none());
        drop(held);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

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
