//! The SQL ledger, written once for both backends.
//!
//! The statements are plain SQL that SQLite and PostgreSQL both run unchanged; the Rust around
//! them is the same too, but sqlx's per-database types make a generic version unreadable, so
//! [`sql_credit_store!`] stamps the one implementation out for each store type. It is made of
//! smaller macros, one job each: `steps` (the steps inside a transaction), `writes` (writes
//! that own their transaction: batches, credits, releases, the replica beat), `reads`
//! (balances, the ledger, usage); this module keeps the shared helpers, the pool and
//! readiness checks ([`sql_store_pool!`]) and the `CreditStore` implementation itself.

pub(crate) mod lease_runs;
pub(crate) mod leases;
pub(crate) mod reads;
pub(crate) mod run_statements;
pub(crate) mod statements;
pub(crate) mod steps;
mod usage;
pub(crate) mod writes;

pub(crate) use usage::{UsageTotals, tokens_from_sql, tokens_to_sql};

use llmgate_core::{
    Error, Result,
    credits::{KeySource, TransactionKind, UsageRecord},
};

/// How long a replica may go without a beat before the others reclaim its holds. The server
/// beats every 10 s from a task of its own (and with every reclaim), so a replica that is
/// merely slow is never taken for stopped.
pub const DEFAULT_REPLICA_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(50);

/// Which replica a store is (holds carry it), and when another replica counts as stopped.
#[derive(Debug, Clone)]
pub(crate) struct Replica {
    pub id: std::sync::Arc<str>,
    pub dead_after_secs: i64,
}

impl Replica {
    /// A new replica: a random id for each store connected.
    pub fn new() -> Self {
        Self {
            id: format!(
                "{:016x}{:016x}",
                rand::random::<u64>(),
                rand::random::<u64>()
            )
            .into(),
            dead_after_secs: i64::try_from(DEFAULT_REPLICA_TIMEOUT.as_secs()).unwrap_or(50),
        }
    }

    pub fn set_timeout(&mut self, timeout: std::time::Duration) {
        self.dead_after_secs = i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX);
    }
}

/// One ledger entry about to be written (every kind except credits, which carry an
/// idempotency key and go through their own statement).
pub(crate) struct Entry<'a> {
    pub user_id: &'a str,
    pub kind: TransactionKind,
    pub amount_micros: i64,
    pub balance_after_micros: i64,
    /// The request a charge was for.
    pub usage: Option<&'a UsageRecord>,
    pub request_id: Option<&'a str>,
    pub reason: String,
    pub at: i64,
}

impl<'a> Entry<'a> {
    /// The release of hold `hold` giving `held` back to `user_id`, for the request
    /// `request_id` when a settle closes it.
    pub fn release(
        user_id: &'a str,
        held: i64,
        balance_after_micros: i64,
        request_id: Option<&'a str>,
        hold: impl std::fmt::Display,
        at: i64,
    ) -> Self {
        Self {
            user_id,
            kind: TransactionKind::Release,
            amount_micros: held,
            balance_after_micros,
            usage: None,
            request_id,
            reason: format!("hold {hold}"),
            at,
        }
    }
}

pub(crate) fn kind_name(kind: TransactionKind) -> &'static str {
    match kind {
        TransactionKind::Grant => "grant",
        TransactionKind::TopUp => "top_up",
        TransactionKind::Hold => "hold",
        TransactionKind::Charge => "charge",
        TransactionKind::Release => "release",
        TransactionKind::Refund => "refund",
    }
}

pub(crate) fn parse_kind(name: &str) -> Result<TransactionKind> {
    Ok(match name {
        "grant" => TransactionKind::Grant,
        "top_up" => TransactionKind::TopUp,
        "hold" => TransactionKind::Hold,
        "charge" => TransactionKind::Charge,
        "release" => TransactionKind::Release,
        "refund" => TransactionKind::Refund,
        _ => return Err(Error::internal("unknown ledger entry kind")),
    })
}

pub(crate) fn parse_key_source(name: &str) -> Result<KeySource> {
    match name {
        "platform" => Ok(KeySource::Platform),
        "byok" => Ok(KeySource::Byok),
        _ => Err(Error::internal("unknown key source in the ledger")),
    }
}

/// The migrations this build embeds that `applied` (versions read from the database) lacks.
pub(crate) fn missing_migrations(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> Vec<i64> {
    migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .filter(|version| !applied.contains(version))
        .collect()
}

/// The readiness verdict on a database whose migrations table says `applied`.
pub(crate) fn migrations_verdict(
    migrator: &sqlx::migrate::Migrator,
    applied: &[i64],
) -> Result<()> {
    let missing = missing_migrations(migrator, applied);
    if missing.is_empty() {
        Ok(())
    } else {
        tracing::warn!(?missing, "the database lacks migrations this build needs");
        Err(Error::unavailable(
            "database not migrated: restart a replica of this version to apply its migrations",
        ))
    }
}

/// A hold just closed: owner, amount, and the key budget it counted against (key, period).
pub(crate) type ClosedHold = (String, i64, Option<String>, Option<i64>);

/// Hold ids are the row ids, as text. Anything else names no hold.
pub(crate) fn parse_hold_id(id: &str) -> Option<i64> {
    id.parse().ok()
}

/// The invalid-URL error both backends give at connect; the parser's detail goes to the debug
/// log only, since a URL may carry a password.
pub(crate) fn invalid_url(backend: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |error| {
        tracing::debug!(%error, backend, "invalid database URL");
        Error::invalid_request(format!("storage.database_url is not a valid {backend} URL"))
    }
}

/// The pool access and readiness checks of a store type with a `pool: sqlx::Pool<$db>` field,
/// against the migrations of its backend.
macro_rules! sql_store_pool {
    ($store:ty, $db:ty, $migrator:path) => {
        impl $store {
            async fn run_migrations(pool: sqlx::Pool<$db>) -> llmgate_core::Result<Self> {
                $migrator
                    .run(&pool)
                    .await
                    .map_err($crate::error::migration_error)?;
                Ok(Self::with_pool(pool))
            }

            /// The pool, for other tables that live in the same database.
            pub fn pool(&self) -> &sqlx::Pool<$db> {
                &self.pool
            }

            /// How long this replica's peers wait without a beat from it before they reclaim
            /// its holds (default [`DEFAULT_REPLICA_TIMEOUT`](crate::DEFAULT_REPLICA_TIMEOUT)).
            pub fn with_replica_timeout(mut self, timeout: std::time::Duration) -> Self {
                self.replica.set_timeout(timeout);
                self
            }

            /// Check the ledger's invariants (see [`LedgerReport`](crate::LedgerReport)); reads
            /// only.
            pub async fn verify_ledger(&self) -> llmgate_core::Result<$crate::LedgerReport> {
                use sqlx::Row as _;
                use $crate::sql::statements as sql;
                let failed = || $crate::error::database_error("verify the ledger");
                let accounts_checked = sqlx::query_scalar::<$db, i64>(sql::COUNT_ACCOUNTS)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(failed())?;
                let holds_past_expiry =
                    sqlx::query_scalar::<$db, i64>(sql::COUNT_HOLDS_PAST_EXPIRY)
                        .bind(llmgate_core::memory::unix_now())
                        .fetch_one(&self.pool)
                        .await
                        .map_err(failed())?;
                let rows = sqlx::query::<$db>(sql::ACCOUNTS_THAT_DIFFER)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(failed())?;
                let problems = rows
                    .iter()
                    .map(|row| {
                        Ok($crate::AccountProblem {
                            user_id: row.try_get("user_id")?,
                            balance_micros: row.try_get("balance_micros")?,
                            entries_micros: row.try_get("entries")?,
                            credits_micros: row.try_get("credits")?,
                            charges_micros: row.try_get("charges")?,
                            open_holds_micros: row.try_get("open_holds")?,
                            running_sum_breaks: row.try_get("breaks")?,
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .map_err(failed())?;
                let budget_problems =
                    sqlx::query_as::<$db, (String, i64, i64, i64)>(sql::BUDGETS_THAT_DIFFER)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(failed())?
                        .into_iter()
                        .map(|(key_id, period_start, held_micros, open_holds_micros)| {
                            $crate::BudgetProblem {
                                key_id,
                                period_start,
                                held_micros,
                                open_holds_micros,
                            }
                        })
                        .collect();
                Ok($crate::LedgerReport {
                    accounts_checked,
                    problems,
                    holds_past_expiry,
                    budget_problems,
                })
            }

            /// Whether the database answers (for `/health/ready`).
            pub async fn ping(&self) -> llmgate_core::Result<()> {
                sqlx::query($crate::sql::statements::PING)
                    .execute(&self.pool)
                    .await
                    .map_err($crate::error::database_error("ping"))?;
                Ok(())
            }

            /// Whether the database answers and has every migration of this build applied (for
            /// `/health/ready`).
            pub async fn ready(&self) -> llmgate_core::Result<()> {
                self.ping().await?;
                let applied: Vec<i64> =
                    sqlx::query_scalar::<$db, i64>($crate::sql::statements::APPLIED_MIGRATIONS)
                        .fetch_all(&self.pool)
                        .await
                        .map_err($crate::error::database_error("read migrations"))?;
                $crate::sql::migrations_verdict(&$migrator, &applied)
            }
        }
    };
}

pub(crate) use sql_store_pool;

/// Implements `CreditStore` for a store type with a `pool: sqlx::Pool<$db>` field,
/// `HOLD_STATEMENT` / `SETTLE_STATEMENT` consts (a hold or settle as one statement, where the
/// backend can: `Some(statements::PG_HOLD)`, else `None`), the lease consts that
/// `sql_ledger_leases!` names, a `charge_combined` (see `sql_lease_charge_runs!`),
/// `async fn begin_write(&self) -> Result<sqlx::Transaction<'static, $db>, sqlx::Error>` for
/// ledger work (which may commit without waiting for the disk), `begin_credit` with the same
/// signature plus `async fn credit_committed(&self)` for credits (which wait for the disk),
/// a `fn write_pool(&self) -> &sqlx::Pool<$db>` for single-statement writes, and an
/// `async fn lease_batch(&self, &[LedgerWrite]) -> Result<Option<Vec<Written>>>` that writes a
/// batch of lease writes its own way, or `None` to leave it to the general path.
macro_rules! sql_credit_store {
    ($store:ty, $db:ty) => {
        $crate::sql::steps::sql_ledger_steps!($store, $db);
        $crate::sql::writes::sql_ledger_writes!($store, $db);
        $crate::sql::reads::sql_ledger_reads!($store, $db);
        $crate::sql::leases::sql_ledger_leases!($store, $db);
        $crate::sql::lease_runs::sql_lease_charge_runs!($store, $db);

        #[async_trait::async_trait]
        impl llmgate_core::credits::CreditStore for $store {
            async fn hold(
                &self,
                request: llmgate_core::credits::HoldRequest,
            ) -> llmgate_core::Result<llmgate_core::credits::Hold> {
                if request.amount_micros < 0 {
                    return Err(llmgate_core::Error::internal("negative hold"));
                }
                let failed = || $crate::error::database_error("hold");
                let mut tx = self.begin_write().await.map_err(failed())?;
                // A refusal leaves nothing behind; dropping the transaction rolls it back.
                let hold = Self::hold_in(&mut tx, &request, &self.replica.id).await??;
                tx.commit().await.map_err(failed())?;
                Ok(hold)
            }

            async fn settle(
                &self,
                hold: &llmgate_core::credits::Hold,
                usage: &llmgate_core::credits::UsageRecord,
            ) -> llmgate_core::Result<i64> {
                if $crate::sql::parse_hold_id(&hold.id).is_none() {
                    return self.read_balance(&hold.user_id).await;
                }
                let failed = || $crate::error::database_error("settle");
                let mut tx = self.begin_write().await.map_err(failed())?;
                let Some((balance, charge)) = Self::settle_in(&mut tx, hold, usage).await? else {
                    // Settled or released before: a no-op.
                    drop(tx);
                    return self.read_balance(&hold.user_id).await;
                };
                Self::add_usage_in(&mut *tx, usage, charge)
                    .await
                    .map_err(failed())?;
                tx.commit().await.map_err(failed())?;
                Ok(balance)
            }

            async fn release(&self, hold: &llmgate_core::credits::Hold) -> llmgate_core::Result<()> {
                if let Some(hold_id) = $crate::sql::parse_hold_id(&hold.id) {
                    self.release_hold_id(hold_id).await?;
                }
                Ok(())
            }

            async fn record_usage(
                &self,
                usage: &llmgate_core::credits::UsageRecord,
            ) -> llmgate_core::Result<()> {
                if usage.cost_micros < 0 {
                    return Err(llmgate_core::Error::internal("negative usage cost"));
                }
                Self::add_usage_in(self.write_pool(), usage, usage.cost_micros)
                    .await
                    .map_err($crate::error::database_error("record usage"))
            }

            async fn write_batch(
                &self,
                writes: &[llmgate_core::credits::LedgerWrite],
            ) -> Vec<llmgate_core::Result<llmgate_core::credits::Written>> {
                match self.write_all(writes).await {
                    Ok(results) => results,
                    Err(error) => {
                        // Nothing of the batch was committed. Write them one by one, so that
                        // one bad write cannot sink the others.
                        tracing::debug!(%error, writes = writes.len(), "a batch failed; writing it one by one");
                        llmgate_core::credits::write_one_by_one(self, writes).await
                    }
                }
            }

            async fn credit(
                &self,
                credit: llmgate_core::credits::Credit,
            ) -> llmgate_core::Result<llmgate_core::credits::CreditOutcome> {
                if credit.amount_micros <= 0 {
                    return Err(llmgate_core::Error::invalid_request(
                        "a credit must be positive",
                    ));
                }
                let kind = match credit.kind {
                    llmgate_core::credits::CreditKind::Grant => llmgate_core::credits::TransactionKind::Grant,
                    llmgate_core::credits::CreditKind::TopUp => llmgate_core::credits::TransactionKind::TopUp,
                    llmgate_core::credits::CreditKind::Refund => llmgate_core::credits::TransactionKind::Refund,
                };
                let outcome = self.credit_once(&credit, kind).await;
                self.credit_done().await;
                outcome
            }

            async fn balance(&self, user_id: &str) -> llmgate_core::Result<i64> {
                self.read_balance(user_id).await
            }

            async fn transactions(
                &self,
                user_id: &str,
                page: llmgate_core::credits::Page,
            ) -> llmgate_core::Result<Vec<llmgate_core::credits::Transaction>> {
                self.read_transactions(user_id, page).await
            }

            async fn usage(
                &self,
                query: &llmgate_core::credits::UsageQuery,
            ) -> llmgate_core::Result<Vec<llmgate_core::credits::UsageRow>> {
                self.read_usage(query).await
            }

            fn leases(&self) -> bool {
                true
            }

            async fn take_lease(
                &self,
                request: llmgate_core::credits::LeaseRequest,
            ) -> llmgate_core::Result<llmgate_core::credits::LeaseOutcome> {
                self.take_lease_now(&request).await
            }

            async fn charge_lease(
                &self,
                charge: &llmgate_core::credits::LeaseCharge,
            ) -> llmgate_core::Result<llmgate_core::credits::Written> {
                let write = llmgate_core::credits::LedgerWrite::LeaseCharge(charge.clone());
                self.lease_write_alone(&write).await
            }

            async fn return_lease(
                &self,
                give: &llmgate_core::credits::LeaseReturn,
            ) -> llmgate_core::Result<llmgate_core::credits::Written> {
                let write = llmgate_core::credits::LedgerWrite::LeaseReturn(give.clone());
                self.lease_write_alone(&write).await
            }

            async fn reclaim_expired(&self) -> llmgate_core::Result<u64> {
                use $crate::sql::statements as sql;
                let failed = || $crate::error::database_error("reclaim");
                // This replica is alive; the holds of those silent too long come back.
                self.beat().await?;
                let now = llmgate_core::memory::unix_now();
                let stopped_before = now.saturating_sub(self.replica.dead_after_secs);
                let mut abandoned: Vec<i64> =
                    sqlx::query_scalar::<$db, i64>(sql::SELECT_EXPIRED_HOLDS)
                        .bind(now)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(failed())?;
                abandoned.extend(
                    sqlx::query_scalar::<$db, i64>(sql::SELECT_ORPHANED_HOLDS)
                        .bind(stopped_before)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(failed())?,
                );
                abandoned.sort_unstable();
                abandoned.dedup();
                let reclaimed = self.release_abandoned(abandoned).await?;
                sqlx::query::<$db>(sql::FORGET_STOPPED_REPLICAS)
                    .bind(stopped_before)
                    .execute(self.write_pool())
                    .await
                    .map_err(failed())?;
                Ok(reclaimed)
            }
        }
    };
}

pub(crate) use sql_credit_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for kind in [
            TransactionKind::Grant,
            TransactionKind::TopUp,
            TransactionKind::Hold,
            TransactionKind::Charge,
            TransactionKind::Release,
            TransactionKind::Refund,
        ] {
            assert_eq!(parse_kind(kind_name(kind)).unwrap(), kind);
        }
        assert!(parse_kind("gift").is_err());
    }

    #[test]
    fn hold_ids_are_row_ids() {
        assert_eq!(parse_hold_id("42"), Some(42));
        assert_eq!(parse_hold_id("h1"), None);
    }
}
