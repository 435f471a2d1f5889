//! The SQL ledger's writes that own their transaction: a batch in one commit, a credit once
//! per key, a hold released alone, and the replica beat and reclaim around abandoned holds.

/// The writes of a store type that begin and commit their own transaction (see
/// `sql_credit_store!`).
macro_rules! sql_ledger_writes {
    ($store:ty, $db:ty) => {
        impl $store {
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

            /// Every write of a batch in one transaction: one commit for the lot, and one
            /// usage upsert per user, model, provider and day. A refused hold fails alone.
            async fn write_all(
                &self,
                writes: &[llmgate_core::credits::LedgerWrite],
            ) -> llmgate_core::Result<Vec<llmgate_core::Result<llmgate_core::credits::Written>>> {
                use llmgate_core::{credits::{LedgerWrite, Written}};
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
                // Lease writes only: the backend's own path where it has one (PostgreSQL locks
                // each balance row once, last: see `postgres::lease_batch`).
                if let Some(written) = self.lease_batch(writes).await? {
                    return Ok(written.into_iter().map(Ok).collect());
                }
                let mut tx = self.begin_write().await.map_err(failed())?;
                let mut results = Vec::with_capacity(writes.len());
                let mut totals = $crate::sql::UsageTotals::default();
                // Consecutive lease charges go together (see `lease_runs`); every other write
                // alone.
                let charge_of = $crate::sql::lease_runs::lease_charge;
                for part in writes.chunk_by(|a, b| charge_of(a).is_some() && charge_of(b).is_some()) {
                    let charges: Vec<&llmgate_core::credits::LeaseCharge> =
                        part.iter().filter_map(charge_of).collect();
                    if charges.len() == part.len() {
                        let written = Self::charge_run_in(&mut tx, &charges, &mut totals).await?;
                        results.extend(written.into_iter().map(Ok));
                        continue;
                    }
                    for write in part {
                        results.push(self.write_in(&mut tx, write, &mut totals).await?);
                    }
                }
                Self::add_usage_totals(&mut tx, totals).await?;
                tx.commit().await.map_err(failed())?;
                Ok(results)
            }

            /// A batch's usage, one upsert per user, model, provider and day, in key order (so
            /// two replicas lock usage rows in the same order).
            async fn add_usage_totals(
                tx: &mut sqlx::Transaction<'static, $db>,
                totals: $crate::sql::UsageTotals,
            ) -> llmgate_core::Result<()> {
                for (key, sum) in totals.into_rows() {
                    sqlx::query::<$db>($crate::sql::statements::ADD_USAGE)
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
                        .execute(&mut **tx)
                        .await
                        .map_err($crate::error::database_error("write a batch"))?;
                }
                Ok(())
            }

            /// One write of a batch inside `tx`; its usage goes to `totals`. The outer error
            /// fails the batch, the inner one this write alone.
            async fn write_in(
                &self,
                tx: &mut sqlx::Transaction<'static, $db>,
                write: &llmgate_core::credits::LedgerWrite,
                totals: &mut $crate::sql::UsageTotals,
            ) -> llmgate_core::Result<llmgate_core::Result<llmgate_core::credits::Written>> {
                use llmgate_core::credits::{LedgerWrite, Written};
                Ok(match write {
                    LedgerWrite::Hold(request) => Self::hold_in(tx, request, &self.replica.id)
                        .await?
                        .map(Written::Held),
                    LedgerWrite::Settle { hold, usage } => {
                        match Self::settle_in(tx, hold, usage).await? {
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
                            Self::release_in(tx, hold_id).await?;
                        }
                        Ok(Written::Released)
                    }
                    LedgerWrite::LeaseCharge(charge) => Ok(Self::charge_run_in(tx, &[charge], totals)
                        .await?
                        .pop()
                        .unwrap_or(Written::LeaseGone)),
                    LedgerWrite::LeaseReturn(give) => Ok(Self::return_lease_in(tx, give).await?),
                })
            }

            /// Consecutive lease charges of a batch inside `tx` (see `charge_leases_in`); the
            /// usage of those applied goes to `totals`.
            async fn charge_run_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                charges: &[&llmgate_core::credits::LeaseCharge],
                totals: &mut $crate::sql::UsageTotals,
            ) -> llmgate_core::Result<Vec<llmgate_core::credits::Written>> {
                let written = Self::charge_leases_in(tx, charges).await?;
                for (charge, written) in charges.iter().zip(&written) {
                    if matches!(written, llmgate_core::credits::Written::LeaseCharged(Some(_))) {
                        totals.add(&charge.usage, $crate::sql::lease_runs::cost_of(charge));
                    }
                }
                Ok(written)
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
        }
    };
}

pub(crate) use sql_ledger_writes;
