//! The scale-out backend: several `llmgate` replicas share one PostgreSQL database.

mod lease_batch;
mod lease_charges;
mod lease_entries;
mod lease_step;
mod usage_rows;

use std::str::FromStr;
use std::time::Duration;

use llmgate_core::Result;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::error::database_error;
use crate::sql::{invalid_url, sql_credit_store, sql_store_pool};

/// The migrations of this build, run at connect and checked by [`ready`](PostgresCreditStore::ready).
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// How long a request waits for a free connection before the database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: u32 = 16;
/// The ledger queue writes through one connection at a time; a few more serve writes made
/// without it (releases of abandoned holds, tests).
const LEDGER_CONNECTIONS: u32 = 4;

/// A [`CreditStore`](llmgate_core::credits::CreditStore) in PostgreSQL. Every step is one
/// read-committed transaction whose conditional `UPDATE`/`DELETE … RETURNING` statements
/// decide races between replicas; the migrations run under sqlx's advisory lock, so replicas
/// may start together.
#[derive(Debug, Clone)]
pub struct PostgresCreditStore {
    pool: PgPool,
    /// Ledger writes: see [`write_pool`](Self::write_pool).
    ledger: PgPool,
    replica: crate::sql::Replica,
}

impl PostgresCreditStore {
    /// Connect to `postgres://user@host/db` and run the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url).map_err(invalid_url("PostgreSQL"))?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(database_error("connect"))?;
        Self::from_pool(pool).await
    }

    /// Use an existing pool and run the migrations.
    pub async fn from_pool(pool: PgPool) -> Result<Self> {
        Self::run_migrations(pool).await
    }

    /// The ledger's own pool goes to the same database with `synchronous_commit = off`.
    fn with_pool(pool: PgPool) -> Self {
        let options = (*pool.connect_options())
            .clone()
            .options([("synchronous_commit", "off")]);
        let ledger = PgPoolOptions::new()
            .max_connections(LEDGER_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // No ping before each use: it would double the round trips of every hold. A
            // connection that died fails its statement and is dropped; settles are retried.
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Self {
            pool,
            ledger,
            replica: crate::sql::Replica::new(),
        }
    }

    /// A hold and a settle are one statement each (one round trip), through data-modifying
    /// CTEs.
    const HOLD_STATEMENT: Option<&'static str> = Some(crate::sql::statements::PG_HOLD);
    const SETTLE_STATEMENT: Option<&'static str> = Some(crate::sql::statements::PG_SETTLE);
    /// A lease charge is one statement too.
    const LEASE_CHARGE_STATEMENT: Option<&'static str> =
        Some(crate::sql::statements::PG_CHARGE_LEASE);
    /// A whole take (locks, sizing, balance, lease row, entry) is one statement.
    const TAKE_STATEMENT: Option<&'static str> = Some(crate::sql::statements::PG_TAKE_LEASE);

    /// Ledger writes (holds, settles, releases, usage) go through connections that commit
    /// without waiting for PostgreSQL's WAL flush (`synchronous_commit = off`): the commit is
    /// visible to every replica at once and survives any crash of `llmgate`; only a crash of
    /// the database server itself can take back its last few hundred milliseconds of ledger
    /// commits — requests served then go uncharged, nothing is charged twice or overspent.
    /// A hold alone is then one round trip: one statement, its own transaction.
    fn write_pool(&self) -> &PgPool {
        &self.ledger
    }

    /// A ledger transaction, on the [`write_pool`](Self::write_pool).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.ledger.begin().await
    }

    /// A credit's transaction: money coming in waits for the WAL flush as usual.
    async fn begin_credit(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// Nothing to restore: `synchronous_commit` was set for one transaction only.
    async fn credit_done(&self) {}
}

sql_store_pool!(PostgresCreditStore, sqlx::Postgres, MIGRATOR);
sql_credit_store!(PostgresCreditStore, sqlx::Postgres);
