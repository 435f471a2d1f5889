//! Balance leases in the SQL ledger: take (awaited, its own transaction), and the charges and
//! returns the ledger queue writes (steps inside a batch's transaction, or alone).
//!
//! A lease is a `credit_holds` row with `lease_seq` set. Every step locks the lease row before
//! the balance row, the order settles lock a hold and its balance in, so steps never deadlock.

/// The lease steps of a store type (see `sql_credit_store!`), which also needs a
/// `LEASE_CHARGE_STATEMENT` (a charge as one statement, where the backend can; without one,
/// charges go in runs: see `lease_runs`) and a `TAKE_STATEMENT` (a whole take as one
/// statement, where the backend can: see `take_lease_at_once`).
macro_rules! sql_ledger_leases {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Move credits from the balance into this replica's lease (see
            /// [`LeaseRequest`](llmgate_core::credits::LeaseRequest)), in one transaction.
            async fn take_lease_now(
                &self,
                request: &llmgate_core::credits::LeaseRequest,
            ) -> llmgate_core::Result<llmgate_core::credits::LeaseOutcome> {
                use llmgate_core::credits::LeaseOutcome;
                use $crate::sql::statements as sql;
                if request.need_micros <= 0 {
                    return Err(llmgate_core::Error::internal(
                        "a lease needs a positive take",
                    ));
                }
                let failed = || $crate::error::database_error("take a lease");
                let now = llmgate_core::memory::unix_now();
                let ttl = i64::try_from(request.ttl_secs).unwrap_or(i64::MAX);
                let expires_at = now.saturating_add(ttl);
                if let Some(statement) = Self::TAKE_STATEMENT {
                    return self
                        .take_lease_at_once(statement, request, now, expires_at)
                        .await;
                }
                // Several statements in one transaction (SQLite, whose `BEGIN IMMEDIATE` holds
                // the write lock, so the balance read below is as good as locked). The lease
                // row first (renewed, so a reclaim cannot take it meanwhile), then the balance.
                let mut tx = self.begin_write().await.map_err(failed())?;
                let mut lease_id: Option<i64> = None;
                if let Some(id) = request
                    .lease_id
                    .as_deref()
                    .and_then($crate::sql::parse_hold_id)
                {
                    lease_id = sqlx::query_scalar::<$db, i64>(sql::RENEW_LEASE)
                        .bind(id)
                        .bind(expires_at)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(failed())?;
                }
                let balance = sqlx::query_scalar::<$db, i64>(sql::SELECT_BALANCE)
                    .bind(&request.user_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(failed())?
                    .unwrap_or(0);
                let short = LeaseOutcome::Short {
                    balance_micros: balance,
                };
                if balance < request.need_micros {
                    return Ok(short);
                }
                let take = llmgate_core::credits::lease_take(balance, request);
                // The conditional take decides, whatever was read above.
                let Some(after) = sqlx::query_scalar::<$db, i64>(sql::TAKE_FROM_BALANCE)
                    .bind(&request.user_id)
                    .bind(take)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(failed())?
                else {
                    return Ok(short);
                };
                let lease_id = match lease_id {
                    Some(id) => {
                        sqlx::query::<$db>(sql::GROW_LEASE)
                            .bind(id)
                            .bind(take)
                            .execute(&mut *tx)
                            .await
                            .map_err(failed())?;
                        id
                    }
                    None => sqlx::query_scalar::<$db, i64>(sql::INSERT_LEASE)
                        .bind(&request.user_id)
                        .bind(take)
                        .bind(now)
                        .bind(expires_at)
                        .bind(self.replica.id.as_ref())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(failed())?,
                };
                let entry = Self::lease_entry(
                    &request.user_id,
                    llmgate_core::credits::TransactionKind::Hold,
                    -take,
                    after,
                    lease_id,
                    now,
                );
                Self::append(&mut tx, &entry).await?;
                tx.commit().await.map_err(failed())?;
                Ok(LeaseOutcome::Taken {
                    lease_id: lease_id.to_string(),
                    taken_micros: take,
                })
            }

            /// A take as the backend's one statement (`TAKE_STATEMENT`): one round trip, its
            /// own transaction, sized in SQL as [`lease_take`](llmgate_core::credits::lease_take)
            /// sizes it.
            async fn take_lease_at_once(
                &self,
                statement: &'static str,
                request: &llmgate_core::credits::LeaseRequest,
                now: i64,
                expires_at: i64,
            ) -> llmgate_core::Result<llmgate_core::credits::LeaseOutcome> {
                use llmgate_core::credits::LeaseOutcome;
                let lease_id = request
                    .lease_id
                    .as_deref()
                    .and_then($crate::sql::parse_hold_id);
                let row = sqlx::query_as::<$db, (Option<i64>, Option<i64>, i64)>(statement)
                    .bind(&request.user_id)
                    .bind(lease_id)
                    .bind(request.need_micros)
                    .bind(request.want_micros)
                    .bind(request.floor_micros)
                    .bind(now)
                    .bind(expires_at)
                    .bind(self.replica.id.as_ref())
                    .bind(llmgate_core::credits::FLOOR_SHARE)
                    .fetch_optional(self.write_pool())
                    .await
                    .map_err($crate::error::database_error("take a lease"))?;
                Ok(match row {
                    Some((Some(lease_id), Some(taken_micros), _)) => LeaseOutcome::Taken {
                        lease_id: lease_id.to_string(),
                        taken_micros,
                    },
                    Some((_, _, balance_micros)) => LeaseOutcome::Short { balance_micros },
                    None => LeaseOutcome::Short { balance_micros: 0 },
                })
            }

            /// A lease's `hold` or `release` entry.
            fn lease_entry(
                user_id: &str,
                kind: llmgate_core::credits::TransactionKind,
                amount_micros: i64,
                balance_after_micros: i64,
                lease_id: i64,
                at: i64,
            ) -> $crate::sql::Entry<'_> {
                $crate::sql::Entry {
                    user_id,
                    kind,
                    amount_micros,
                    balance_after_micros,
                    usage: None,
                    request_id: None,
                    reason: format!("lease {lease_id}"),
                    at,
                }
            }

            /// Why a lease write found no row to change: the lease applied it before (`seen`)
            /// or is gone.
            async fn lease_missed(
                tx: &mut sqlx::Transaction<'static, $db>,
                lease_id: i64,
                seq: i64,
                seen: llmgate_core::credits::Written,
            ) -> llmgate_core::Result<llmgate_core::credits::Written> {
                let last: Option<Option<i64>> =
                    sqlx::query_scalar::<$db, Option<i64>>($crate::sql::statements::LEASE_SEQ)
                        .bind(lease_id)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err($crate::error::database_error("read a lease"))?;
                match last {
                    Some(Some(last)) if last >= seq => Ok(seen),
                    Some(Some(_)) => {
                        // Open, but holding less than the write needs: the replica's count is
                        // off. Nothing is changed; the lease's close gives back what it holds.
                        tracing::warn!(
                            lease_id,
                            seq,
                            "a lease holds less than a write of it needs"
                        );
                        Ok(seen)
                    }
                    Some(None) | None => Ok(llmgate_core::credits::Written::LeaseGone),
                }
            }

            /// A request served from a lease is charged with the backend's one-statement
            /// charge (`LEASE_CHARGE_STATEMENT`), inside `tx` (usage totals aside).
            async fn charge_lease_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                statement: &'static str,
                charge: &llmgate_core::credits::LeaseCharge,
            ) -> llmgate_core::Result<llmgate_core::credits::Written> {
                use llmgate_core::credits::Written;
                let Some(lease_id) = $crate::sql::parse_hold_id(&charge.lease_id) else {
                    return Ok(Written::LeaseGone);
                };
                let usage = &charge.usage;
                let now = llmgate_core::memory::unix_now();
                let charged = sqlx::query_as::<$db, (i64, i64)>(statement)
                    .bind(lease_id)
                    .bind($crate::sql::lease_runs::cost_of(charge))
                    .bind(charge.seq)
                    .bind($crate::sql::lease_runs::expiry_of(charge, now))
                    .bind(usage.model.as_str())
                    .bind(usage.provider.as_str())
                    .bind(usage.key_source.as_str())
                    .bind($crate::sql::tokens_to_sql(usage.prompt_tokens))
                    .bind($crate::sql::tokens_to_sql(usage.completion_tokens))
                    .bind(usage.request_id.as_str())
                    .bind(now)
                    .bind($crate::sql::tokens_to_sql(usage.cache_read_tokens))
                    .bind($crate::sql::tokens_to_sql(usage.cache_write_tokens))
                    .bind($crate::sql::tokens_to_sql(usage.reasoning_tokens))
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err($crate::error::database_error("charge a lease"))?;
                match charged {
                    Some((_, spendable)) => Ok(Written::LeaseCharged(Some(spendable))),
                    None => {
                        Self::lease_missed(tx, lease_id, charge.seq, Written::LeaseCharged(None))
                            .await
                    }
                }
            }

            /// Credits go back from a lease to the balance, inside `tx`.
            async fn return_lease_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                give: &llmgate_core::credits::LeaseReturn,
            ) -> llmgate_core::Result<llmgate_core::credits::Written> {
                use llmgate_core::credits::{TransactionKind, Written};
                let Some(lease_id) = $crate::sql::parse_hold_id(&give.lease_id) else {
                    return Ok(Written::LeaseGone);
                };
                let Some((user_id, amount)) = Self::return_lease_row(tx, lease_id, give).await?
                else {
                    return Self::lease_missed(tx, lease_id, give.seq, Written::LeaseReturned)
                        .await;
                };
                if amount > 0 {
                    let balance = Self::give_back(tx, &user_id, amount).await?;
                    let now = llmgate_core::memory::unix_now();
                    let entry = Self::lease_entry(
                        &user_id,
                        TransactionKind::Release,
                        amount,
                        balance,
                        lease_id,
                        now,
                    );
                    Self::append(tx, &entry).await?;
                }
                Ok(Written::LeaseReturned)
            }

            /// A return's lease row: shrunk by the amount, or deleted when it closes. The
            /// lease's owner and what goes back to the balance; `None` when the row applied
            /// this write before or is gone.
            async fn return_lease_row(
                tx: &mut sqlx::Transaction<'static, $db>,
                lease_id: i64,
                give: &llmgate_core::credits::LeaseReturn,
            ) -> llmgate_core::Result<Option<(String, i64)>> {
                use $crate::sql::statements as sql;
                let failed = || $crate::error::database_error("return a lease");
                if give.close {
                    return sqlx::query_as::<$db, (String, i64)>(sql::CLOSE_LEASE)
                        .bind(lease_id)
                        .bind(give.seq)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(failed());
                }
                Ok(sqlx::query_scalar::<$db, String>(sql::SHRINK_LEASE)
                    .bind(lease_id)
                    .bind(give.amount_micros)
                    .bind(give.seq)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(failed())?
                    .map(|user_id| (user_id, give.amount_micros)))
            }

            /// A lease write alone, in its own transaction (the one-by-one path).
            async fn lease_write_alone(
                &self,
                write: &llmgate_core::credits::LedgerWrite,
            ) -> llmgate_core::Result<llmgate_core::credits::Written> {
                use llmgate_core::credits::{LedgerWrite, Written};
                let failed = || $crate::error::database_error("write a lease");
                let mut tx = self.begin_write().await.map_err(failed())?;
                let written = match write {
                    LedgerWrite::LeaseCharge(charge) => {
                        let written = Self::charge_leases_in(&mut tx, &[charge])
                            .await?
                            .pop()
                            .unwrap_or(Written::LeaseGone);
                        if matches!(written, Written::LeaseCharged(Some(_))) {
                            let cost = charge.usage.cost_micros.max(0);
                            Self::add_usage_in(&mut *tx, &charge.usage, cost)
                                .await
                                .map_err(failed())?;
                        }
                        written
                    }
                    LedgerWrite::LeaseReturn(give) => Self::return_lease_in(&mut tx, give).await?,
                    _ => return Err(llmgate_core::Error::internal("not a lease write")),
                };
                tx.commit().await.map_err(failed())?;
                Ok(written)
            }
        }
    };
}

pub(crate) use sql_ledger_leases;
