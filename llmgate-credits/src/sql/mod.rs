//! The SQL ledger, written once for both backends.
//!
//! The statements are plain SQL that SQLite and PostgreSQL both run unchanged; the Rust around
//! them is the same too, but sqlx's per-database types make a generic version unreadable, so
//! [`sql_credit_store!`] stamps the one implementation out for each store type.

pub(crate) mod statements;

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

/// Token counts are `u64` in Rust and `BIGINT` in SQL; no real count comes near the limit.
pub(crate) fn tokens_to_sql(tokens: u64) -> i64 {
    i64::try_from(tokens).unwrap_or(i64::MAX)
}

pub(crate) fn tokens_from_sql(tokens: i64) -> u64 {
    u64::try_from(tokens).unwrap_or(0)
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

/// One usage row's worth of requests, summed before it is written.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct UsageSum {
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
}

/// Usage of a batch by (user, model, provider, day), so that a batch writes each row once.
#[derive(Debug, Default)]
pub(crate) struct UsageTotals {
    pub rows: std::collections::BTreeMap<(String, String, String, String), UsageSum>,
}

impl UsageTotals {
    pub fn add(&mut self, usage: &UsageRecord, cost_micros: i64) {
        let key = (
            usage.user_id.clone(),
            usage.model.clone(),
            usage.provider.clone(),
            llmgate_core::memory::day_of(usage.at),
        );
        let sum = self.rows.entry(key).or_default();
        sum.requests += 1;
        sum.prompt_tokens = sum
            .prompt_tokens
            .saturating_add(tokens_to_sql(usage.prompt_tokens));
        sum.completion_tokens = sum
            .completion_tokens
            .saturating_add(tokens_to_sql(usage.completion_tokens));
        sum.cost_micros = sum.cost_micros.saturating_add(cost_micros);
        sum.cache_read_tokens = sum
            .cache_read_tokens
            .saturating_add(tokens_to_sql(usage.cache_read_tokens));
        sum.cache_write_tokens = sum
            .cache_write_tokens
            .saturating_add(tokens_to_sql(usage.cache_write_tokens));
        sum.reasoning_tokens = sum
            .reasoning_tokens
            .saturating_add(tokens_to_sql(usage.reasoning_tokens));
    }
}

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
                Ok($crate::LedgerReport {
                    accounts_checked,
                    problems,
                    holds_past_expiry,
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
/// backend can: `Some(statements::PG_HOLD)`, else `None`),
/// `async fn begin_write(&self) -> Result<sqlx::Transaction<'static, $db>, sqlx::Error>` for
/// ledger work (which may commit without waiting for the disk), `begin_credit` with the same
/// signature plus `async fn credit_committed(&self)` for credits (which wait for the disk),
/// and a `fn write_pool(&self) -> &sqlx::Pool<$db>` for single-statement writes.
macro_rules! sql_credit_store {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn read_balance(&self, user_id: &str) -> llmgate_core::Result<i64> {
                let balance: Option<i64> =
                    sqlx::query_scalar::<$db, i64>($crate::sql::statements::SELECT_BALANCE)
                        .bind(user_id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err($crate::error::database_error("balance"))?;
                Ok(balance.unwrap_or(0))
            }

            /// Close a hold and give its amount back. `false` when it was closed already.
            async fn release_hold_id(&self, hold_id: i64) -> llmgate_core::Result<bool> {
                let failed = $crate::error::database_error("release");
                let mut tx = self.begin_write().await.map_err(failed)?;
                let released = Self::release_in(&mut tx, hold_id).await?;
                if released {
                    tx.commit()
                        .await
                        .map_err($crate::error::database_error("release"))?;
                }
                Ok(released)
            }

            /// Say this replica is alive (see [`DEFAULT_REPLICA_TIMEOUT`](crate::DEFAULT_REPLICA_TIMEOUT)).
            /// Every reclaim beats; a server also beats from a task of its own, so that a
            /// reclaim with many holds to give back cannot delay the beat past the timeout
            /// (its peers would take it for stopped and reclaim the holds of requests it is
            /// still serving, which then go uncharged).
            pub async fn beat(&self) -> llmgate_core::Result<()> {
                sqlx::query::<$db>($crate::sql::statements::BEAT)
                    .bind(self.replica.id.as_ref())
                    .bind(llmgate_core::memory::unix_now())
                    .execute(self.write_pool())
                    .await
                    .map(drop)
                    .map_err($crate::error::database_error("beat"))
            }

            /// Give back holds nobody will settle; returns how many were open. One
            /// transaction per hold: a hold settled meanwhile is skipped, and two replicas
            /// reclaiming at once never lock balances in conflicting orders. A hold the
            /// database refuses to give back is logged and left open: it must not stop the
            /// others, nor a server's start.
            pub(crate) async fn release_abandoned(
                &self,
                hold_ids: Vec<i64>,
            ) -> llmgate_core::Result<u64> {
                let mut released = 0;
                for hold_id in hold_ids {
                    match self.release_hold_id(hold_id).await {
                        Ok(true) => released += 1,
                        Ok(false) => {}
                        Err(error) if error.kind() == llmgate_core::ErrorKind::Internal => {
                            metrics::counter!(llmgate_core::metrics::LEDGER_PARKED_WRITES)
                                .increment(1);
                            tracing::error!(
                                hold_id,
                                %error,
                                "a hold could not be given back; it stays open (see docs/operations.md)"
                            );
                        }
                        Err(error) => return Err(error),
                    }
                }
                Ok(released)
            }

            /// [`release_hold_id`](Self::release_hold_id) inside a transaction.
            async fn release_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                hold_id: i64,
            ) -> llmgate_core::Result<bool> {
                let taken: Option<(String, i64)> =
                    sqlx::query_as::<$db, (String, i64)>($crate::sql::statements::TAKE_HOLD)
                        .bind(hold_id)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err($crate::error::database_error("release"))?;
                let Some((user_id, held)) = taken else {
                    return Ok(false);
                };
                let balance = Self::give_back(tx, &user_id, held).await?;
                Self::append(
                    tx,
                    &$crate::sql::Entry {
                        user_id: &user_id,
                        kind: llmgate_core::credits::TransactionKind::Release,
                        amount_micros: held,
                        balance_after_micros: balance,
                        usage: None,
                        request_id: None,
                        reason: format!("hold {hold_id}"),
                        at: llmgate_core::memory::unix_now(),
                    },
                )
                .await?;
                Ok(true)
            }

            /// Credit part of a hold back to its owner; returns the new balance.
            async fn give_back(
                tx: &mut sqlx::Transaction<'static, $db>,
                user_id: &str,
                amount_micros: i64,
            ) -> llmgate_core::Result<i64> {
                let balance: Option<i64> =
                    sqlx::query_scalar::<$db, i64>($crate::sql::statements::GIVE_BACK_TO_BALANCE)
                        .bind(user_id)
                        .bind(amount_micros)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err($crate::error::database_error("give back a hold"))?;
                // The holds table references the balance, so the row is there.
                balance.ok_or_else(|| llmgate_core::Error::internal("a held balance is missing"))
            }

            async fn append(
                tx: &mut sqlx::Transaction<'static, $db>,
                entry: &$crate::sql::Entry<'_>,
            ) -> llmgate_core::Result<()> {
                let usage = entry.usage;
                sqlx::query::<$db>($crate::sql::statements::INSERT_ENTRY)
                    .bind(entry.user_id)
                    .bind($crate::sql::kind_name(entry.kind))
                    .bind(entry.amount_micros)
                    .bind(entry.balance_after_micros)
                    .bind(usage.map(|u| u.model.as_str()))
                    .bind(usage.map(|u| u.provider.as_str()))
                    .bind(usage.map(|u| $crate::sql::tokens_to_sql(u.prompt_tokens)))
                    .bind(usage.map(|u| $crate::sql::tokens_to_sql(u.completion_tokens)))
                    .bind(usage.map(|u| u.key_source.as_str()))
                    .bind(entry.request_id)
                    .bind(entry.reason.as_str())
                    .bind(entry.at)
                    .bind(usage.map(|u| $crate::sql::tokens_to_sql(u.cache_read_tokens)))
                    .bind(usage.map(|u| $crate::sql::tokens_to_sql(u.cache_write_tokens)))
                    .bind(usage.map(|u| $crate::sql::tokens_to_sql(u.reasoning_tokens)))
                    .execute(&mut **tx)
                    .await
                    .map_err($crate::error::database_error("append to the ledger"))?;
                Ok(())
            }

            /// A hold as one statement where the backend has one (`HOLD_STATEMENT`). `None`:
            /// no such statement, or the balance does not cover it (the general path decides).
            async fn one_statement_hold<'e, E>(
                executor: E,
                request: &llmgate_core::credits::HoldRequest,
                replica: &str,
            ) -> Result<Option<llmgate_core::credits::Hold>, sqlx::Error>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                let Some(statement) = Self::HOLD_STATEMENT else {
                    return Ok(None);
                };
                let now = llmgate_core::memory::unix_now();
                let ttl = i64::try_from(request.ttl_secs).unwrap_or(i64::MAX);
                let placed: Option<(i64, i64)> = sqlx::query_as::<$db, (i64, i64)>(statement)
                    .bind(&request.user_id)
                    .bind(request.amount_micros)
                    .bind(&request.request_id)
                    .bind(now)
                    .bind(now.saturating_add(ttl))
                    .bind(replica)
                    .fetch_optional(executor)
                    .await?;
                Ok(placed.map(|(hold_id, _balance)| llmgate_core::credits::Hold {
                    id: hold_id.to_string(),
                    user_id: request.user_id.clone(),
                    amount_micros: request.amount_micros,
                }))
            }

            /// Take a hold's amount off its balance inside `tx`; the balance after, or a refusal
            /// (the inner error) that changed nothing.
            ///
            /// Only the conditional `UPDATE` ever takes credits. When it takes nothing, a second
            /// statement reads the balance to tell "too little" from "no row yet". Under READ
            /// COMMITTED (PostgreSQL) a give-back of another replica can commit between the two:
            /// the read then shows enough although nothing was taken, and the `UPDATE` is tried
            /// again. (A hold once went ahead on that read without taking anything: the balance
            /// paid for a request it never covered.)
            async fn take_for_hold(
                tx: &mut sqlx::Transaction<'static, $db>,
                request: &llmgate_core::credits::HoldRequest,
            ) -> llmgate_core::Result<llmgate_core::Result<i64>> {
                use $crate::sql::statements as sql;
                const TRIES: usize = 4;
                let failed = || $crate::error::database_error("hold");
                let mut seen = 0;
                for _ in 0..TRIES {
                    let taken: Option<i64> = sqlx::query_scalar::<$db, i64>(sql::TAKE_FROM_BALANCE)
                        .bind(&request.user_id)
                        .bind(request.amount_micros)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(failed())?;
                    if let Some(balance) = taken {
                        return Ok(Ok(balance));
                    }
                    let balance = sqlx::query_scalar::<$db, i64>(sql::SELECT_BALANCE)
                        .bind(&request.user_id)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(failed())?;
                    match balance {
                        // A zero hold of a user who never had credits: make the row, then take.
                        None if request.amount_micros == 0 => {
                            sqlx::query::<$db>(sql::ENSURE_BALANCE)
                                .bind(&request.user_id)
                                .execute(&mut **tx)
                                .await
                                .map_err(failed())?;
                        }
                        None => break,
                        Some(balance) if balance < request.amount_micros => {
                            seen = balance;
                            break;
                        }
                        // A give-back landed between the two statements: take again.
                        Some(balance) => seen = balance,
                    }
                }
                Ok(Err(llmgate_core::Error::insufficient_credits(
                    request.amount_micros,
                    seen,
                )))
            }

            /// Place a hold inside `tx`. The outer error is the database's; the inner one a
            /// refusal (`insufficient_credits`), which changed nothing.
            async fn hold_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                request: &llmgate_core::credits::HoldRequest,
                replica: &str,
            ) -> llmgate_core::Result<llmgate_core::Result<llmgate_core::credits::Hold>> {
                use $crate::sql::statements as sql;
                if request.amount_micros < 0 {
                    return Ok(Err(llmgate_core::Error::internal("negative hold")));
                }
                let failed = || $crate::error::database_error("hold");
                if let Some(hold) = Self::one_statement_hold(&mut **tx, request, replica)
                    .await
                    .map_err(failed())?
                {
                    return Ok(Ok(hold));
                }
                let now = llmgate_core::memory::unix_now();
                let ttl = i64::try_from(request.ttl_secs).unwrap_or(i64::MAX);
                let balance_after = match Self::take_for_hold(tx, request).await? {
                    Ok(balance) => balance,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                let hold_id: i64 = sqlx::query_scalar::<$db, i64>(sql::INSERT_HOLD)
                    .bind(&request.user_id)
                    .bind(request.amount_micros)
                    .bind(&request.request_id)
                    .bind(now)
                    .bind(now.saturating_add(ttl))
                    .bind(replica)
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(failed())?;
                let id = hold_id.to_string();
                Self::append(
                    tx,
                    &$crate::sql::Entry {
                        user_id: &request.user_id,
                        kind: llmgate_core::credits::TransactionKind::Hold,
                        amount_micros: -request.amount_micros,
                        balance_after_micros: balance_after,
                        usage: None,
                        request_id: Some(&request.request_id),
                        reason: format!("hold {id}"),
                        at: now,
                    },
                )
                .await?;
                Ok(Ok(llmgate_core::credits::Hold {
                    id,
                    user_id: request.user_id.clone(),
                    amount_micros: request.amount_micros,
                }))
            }

            /// Settle a hold inside `tx`, usage totals aside; `None` when it was settled or
            /// released before (or names no hold). Returns the balance after and the charge.
            async fn settle_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                hold: &llmgate_core::credits::Hold,
                usage: &llmgate_core::credits::UsageRecord,
            ) -> llmgate_core::Result<Option<(i64, i64)>> {
                use $crate::sql::statements as sql;
                let Some(hold_id) = $crate::sql::parse_hold_id(&hold.id) else {
                    return Ok(None);
                };
                let failed = || $crate::error::database_error("settle");
                if let Some(one_statement) = Self::SETTLE_STATEMENT {
                    return sqlx::query_as::<$db, (i64, i64)>(one_statement)
                        .bind(hold_id)
                        .bind(usage.cost_micros)
                        .bind(usage.model.as_str())
                        .bind(usage.provider.as_str())
                        .bind($crate::sql::tokens_to_sql(usage.prompt_tokens))
                        .bind($crate::sql::tokens_to_sql(usage.completion_tokens))
                        .bind(usage.key_source.as_str())
                        .bind(usage.request_id.as_str())
                        .bind(llmgate_core::memory::unix_now())
                        .bind($crate::sql::tokens_to_sql(usage.cache_read_tokens))
                        .bind($crate::sql::tokens_to_sql(usage.cache_write_tokens))
                        .bind($crate::sql::tokens_to_sql(usage.reasoning_tokens))
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(failed());
                }
                let taken: Option<(String, i64)> =
                    sqlx::query_as::<$db, (String, i64)>(sql::TAKE_HOLD)
                        .bind(hold_id)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(failed())?;
                let Some((user_id, held)) = taken else {
                    return Ok(None);
                };
                let charge = usage.cost_micros.clamp(0, held);
                let balance = Self::give_back(tx, &user_id, held - charge).await?;
                let now = llmgate_core::memory::unix_now();
                // The hold's release, then the charge: the entries add up to the balance.
                Self::append(
                    tx,
                    &$crate::sql::Entry {
                        user_id: &user_id,
                        kind: llmgate_core::credits::TransactionKind::Release,
                        amount_micros: held,
                        balance_after_micros: balance + charge,
                        usage: None,
                        request_id: Some(&usage.request_id),
                        reason: format!("hold {}", hold.id),
                        at: now,
                    },
                )
                .await?;
                Self::append(
                    tx,
                    &$crate::sql::Entry {
                        user_id: &user_id,
                        kind: llmgate_core::credits::TransactionKind::Charge,
                        amount_micros: -charge,
                        balance_after_micros: balance,
                        usage: Some(usage),
                        request_id: Some(&usage.request_id),
                        reason: format!("hold {} of {held}", hold.id),
                        at: now,
                    },
                )
                .await?;
                Ok(Some((balance, charge)))
            }

            /// Add one request to the usage totals.
            async fn add_usage_in<'e, E>(
                executor: E,
                usage: &llmgate_core::credits::UsageRecord,
                cost_micros: i64,
            ) -> Result<(), sqlx::Error>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                sqlx::query::<$db>($crate::sql::statements::ADD_USAGE)
                    .bind(&usage.user_id)
                    .bind(&usage.model)
                    .bind(&usage.provider)
                    .bind(llmgate_core::memory::day_of(usage.at))
                    .bind($crate::sql::tokens_to_sql(usage.prompt_tokens))
                    .bind($crate::sql::tokens_to_sql(usage.completion_tokens))
                    .bind(cost_micros)
                    .bind($crate::sql::tokens_to_sql(usage.cache_read_tokens))
                    .bind($crate::sql::tokens_to_sql(usage.cache_write_tokens))
                    .bind($crate::sql::tokens_to_sql(usage.reasoning_tokens))
                    .execute(executor)
                    .await
                    .map(drop)
            }

            /// Every write of a batch in one transaction: one commit for the lot, and one
            /// usage upsert per user, model, provider and day. A refused hold fails alone.
            async fn write_all(
                &self,
                writes: &[llmgate_core::credits::LedgerWrite],
            ) -> llmgate_core::Result<Vec<llmgate_core::Result<llmgate_core::credits::Written>>> {
                use llmgate_core::credits::{LedgerWrite, Written};
                let failed = || $crate::error::database_error("write a batch");
                // A hold alone, as one statement, is its own transaction: no BEGIN and COMMIT
                // round trips for the commonest batch of a lightly loaded gateway.
                if let [LedgerWrite::Hold(request)] = writes
                    && request.amount_micros >= 0
                    && let Some(hold) =
                        Self::one_statement_hold(self.write_pool(), request, &self.replica.id)
                        .await
                        .map_err(failed())?
                {
                    return Ok(vec![Ok(Written::Held(hold))]);
                }
                let mut tx = self.begin_write().await.map_err(failed())?;
                let mut results = Vec::with_capacity(writes.len());
                let mut totals = $crate::sql::UsageTotals::default();
                for write in writes {
                    results.push(match write {
                        LedgerWrite::Hold(request) => {
                            Self::hold_in(&mut tx, request, &self.replica.id)
                                .await?
                                .map(Written::Held)
                        }
                        LedgerWrite::Settle { hold, usage } => {
                            match Self::settle_in(&mut tx, hold, usage).await? {
                                Some((balance, charge)) => {
                                    totals.add(usage, charge);
                                    Ok(Written::Settled(Some(balance)))
                                }
                                None => Ok(Written::Settled(None)),
                            }
                        }
                        LedgerWrite::Usage(usage) => {
                            if usage.cost_micros < 0 {
                                return Err(llmgate_core::Error::internal("negative usage cost"));
                            }
                            totals.add(usage, usage.cost_micros);
                            Ok(Written::Recorded)
                        }
                        LedgerWrite::Release(hold) => {
                            if let Some(hold_id) = $crate::sql::parse_hold_id(&hold.id) {
                                Self::release_in(&mut tx, hold_id).await?;
                            }
                            Ok(Written::Released)
                        }
                    });
                }
                for (key, sum) in totals.rows {
                    sqlx::query::<$db>($crate::sql::statements::ADD_USAGE_MANY)
                        .bind(key.0)
                        .bind(key.1)
                        .bind(key.2)
                        .bind(key.3)
                        .bind(sum.requests)
                        .bind(sum.prompt_tokens)
                        .bind(sum.completion_tokens)
                        .bind(sum.cost_micros)
                        .bind(sum.cache_read_tokens)
                        .bind(sum.cache_write_tokens)
                        .bind(sum.reasoning_tokens)
                        .execute(&mut *tx)
                        .await
                        .map_err(failed())?;
                }
                tx.commit().await.map_err(failed())?;
                Ok(results)
            }

            /// A credit in one durable transaction (see `begin_credit`).
            async fn credit_once(
                &self,
                credit: &llmgate_core::credits::Credit,
                kind: llmgate_core::credits::TransactionKind,
            ) -> llmgate_core::Result<llmgate_core::credits::CreditOutcome> {
                use $crate::sql::statements as sql;
                let failed = || $crate::error::database_error("credit");
                let not_applied = |balance_micros| llmgate_core::credits::CreditOutcome {
                    applied: false,
                    balance_micros,
                };
                let mut tx = self.begin_credit().await.map_err(failed())?;
                // Fast path for a repeat; the unique key below is what actually decides.
                let used = sqlx::query_scalar::<$db, i64>(sql::CREDIT_KEY_USED)
                    .bind(&credit.idempotency_key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(failed())?;
                if used.is_some() {
                    drop(tx);
                    return Ok(not_applied(self.read_balance(&credit.user_id).await?));
                }
                let balance = sqlx::query_scalar::<$db, i64>(sql::ADD_TO_BALANCE)
                    .bind(&credit.user_id)
                    .bind(credit.amount_micros)
                    .bind(llmgate_core::credits::MAX_BALANCE_MICROS)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(failed())?;
                let Some(balance) = balance else {
                    return Err(llmgate_core::credits::balance_limit_exceeded());
                };
                // Another replica may have applied the same key since the check above: then
                // this insert does nothing and the whole transaction is rolled back.
                let inserted = sqlx::query_scalar::<$db, i64>(sql::INSERT_CREDIT_ENTRY)
                    .bind(&credit.user_id)
                    .bind($crate::sql::kind_name(kind))
                    .bind(credit.amount_micros)
                    .bind(balance)
                    .bind(&credit.idempotency_key)
                    .bind(&credit.reason)
                    .bind(llmgate_core::memory::unix_now())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(failed())?;
                if inserted.is_none() {
                    tx.rollback().await.map_err(failed())?;
                    return Ok(not_applied(self.read_balance(&credit.user_id).await?));
                }
                tx.commit().await.map_err(failed())?;
                Ok(llmgate_core::credits::CreditOutcome {
                    applied: true,
                    balance_micros: balance,
                })
            }

            fn transaction_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<llmgate_core::credits::Transaction, sqlx::Error> {
                use sqlx::Row as _;
                Ok(llmgate_core::credits::Transaction {
                    id: row.try_get("id")?,
                    user_id: row.try_get("user_id")?,
                    kind: $crate::sql::parse_kind(row.try_get::<&str, _>("kind")?)
                        .map_err(|e| sqlx::Error::Decode(e.message().into()))?,
                    amount_micros: row.try_get("amount_micros")?,
                    balance_after_micros: row.try_get("balance_after_micros")?,
                    model: row.try_get("model")?,
                    provider: row.try_get("provider")?,
                    prompt_tokens: row
                        .try_get::<Option<i64>, _>("prompt_tokens")?
                        .map($crate::sql::tokens_from_sql),
                    completion_tokens: row
                        .try_get::<Option<i64>, _>("completion_tokens")?
                        .map($crate::sql::tokens_from_sql),
                    cache_read_tokens: row
                        .try_get::<Option<i64>, _>("cache_read_tokens")?
                        .map($crate::sql::tokens_from_sql),
                    cache_write_tokens: row
                        .try_get::<Option<i64>, _>("cache_write_tokens")?
                        .map($crate::sql::tokens_from_sql),
                    reasoning_tokens: row
                        .try_get::<Option<i64>, _>("reasoning_tokens")?
                        .map($crate::sql::tokens_from_sql),
                    key_source: row
                        .try_get::<Option<&str>, _>("key_source")?
                        .map($crate::sql::parse_key_source)
                        .transpose()
                        .map_err(|e| sqlx::Error::Decode(e.message().into()))?,
                    request_id: row.try_get("request_id")?,
                    idempotency_key: row.try_get("idempotency_key")?,
                    reason: row.try_get("reason")?,
                    at: row.try_get("created_at")?,
                })
            }
        }

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
                        let mut results = Vec::with_capacity(writes.len());
                        for write in writes {
                            results.push(match write {
                                llmgate_core::credits::LedgerWrite::Hold(request) => self
                                    .hold(request.clone())
                                    .await
                                    .map(llmgate_core::credits::Written::Held),
                                llmgate_core::credits::LedgerWrite::Settle { hold, usage } => self
                                    .settle(hold, usage)
                                    .await
                                    .map(|b| llmgate_core::credits::Written::Settled(Some(b))),
                                llmgate_core::credits::LedgerWrite::Usage(usage) => self
                                    .record_usage(usage)
                                    .await
                                    .map(|()| llmgate_core::credits::Written::Recorded),
                                llmgate_core::credits::LedgerWrite::Release(hold) => self
                                    .release(hold)
                                    .await
                                    .map(|()| llmgate_core::credits::Written::Released),
                            });
                        }
                        results
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
                let failed = || $crate::error::database_error("transactions");
                if page.limit == 0 {
                    return Ok(Vec::new());
                }
                let rows = sqlx::query::<$db>($crate::sql::statements::SELECT_TRANSACTIONS)
                    .bind(user_id)
                    .bind(page.before_id)
                    .bind(i64::from(page.limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(failed())?;
                rows.iter()
                    .map(Self::transaction_from_row)
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .map_err(failed())
            }

            async fn usage(
                &self,
                query: &llmgate_core::credits::UsageQuery,
            ) -> llmgate_core::Result<Vec<llmgate_core::credits::UsageRow>> {
                use sqlx::Row as _;
                use $crate::sql::statements as sql;
                let failed = || $crate::error::database_error("usage");
                let statement = match query.group_by {
                    llmgate_core::credits::UsageGroup::Model => sql::USAGE_BY_MODEL,
                    llmgate_core::credits::UsageGroup::Provider => sql::USAGE_BY_PROVIDER,
                    llmgate_core::credits::UsageGroup::Day => sql::USAGE_BY_DAY,
                };
                let rows = sqlx::query::<$db>(statement)
                    .bind(query.user_id.as_deref())
                    .bind(query.from_day.as_deref())
                    .bind(query.to_day.as_deref())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(failed())?;
                let mut usage = rows
                    .iter()
                    .map(|row| {
                        Ok(llmgate_core::credits::UsageRow {
                            key: row.try_get("group_key")?,
                            requests: $crate::sql::tokens_from_sql(row.try_get("requests")?),
                            prompt_tokens: $crate::sql::tokens_from_sql(
                                row.try_get("prompt_tokens")?,
                            ),
                            completion_tokens: $crate::sql::tokens_from_sql(
                                row.try_get("completion_tokens")?,
                            ),
                            cost_micros: row.try_get("cost_micros")?,
                            cache_read_tokens: $crate::sql::tokens_from_sql(
                                row.try_get("cache_read_tokens")?,
                            ),
                            cache_write_tokens: $crate::sql::tokens_from_sql(
                                row.try_get("cache_write_tokens")?,
                            ),
                            reasoning_tokens: $crate::sql::tokens_from_sql(
                                row.try_get("reasoning_tokens")?,
                            ),
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .map_err(failed())?;
                // Byte order, whatever the database's collation.
                usage.sort_by(|a, b| a.key.cmp(&b.key));
                Ok(usage)
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
