//! The ledger's steps inside one transaction: take or give back credits, place, settle and
//! release a hold, append an entry, add usage. Every write of the SQL ledger is made of these.

/// The steps inside a transaction of a store type (see `sql_credit_store!`): each takes the open
/// transaction (or an executor) and leaves committing to its caller.
macro_rules! sql_ledger_steps {
    ($store:ty, $db:ty) => {
        impl $store {
            /// [`release_hold_id`](Self::release_hold_id) inside a transaction.
            async fn release_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                hold_id: i64,
            ) -> llmgate_core::Result<bool> {
                let Some((user_id, held, budget_key, budget_period)) =
                    Self::take_hold(tx, hold_id, "release").await?
                else {
                    return Ok(false);
                };
                Self::close_budget(tx, budget_key, budget_period, held, 0).await?;
                let balance = Self::give_back(tx, &user_id, held).await?;
                let now = llmgate_core::memory::unix_now();
                let entry =
                    $crate::sql::Entry::release(&user_id, held, balance, None, hold_id, now);
                Self::append(tx, &entry).await?;
                Ok(true)
            }

            /// Close a hold inside `tx`: its owner, amount and key budget (key, period), or
            /// `None` when it was settled or released before (or names no hold).
            async fn take_hold(
                tx: &mut sqlx::Transaction<'static, $db>,
                hold_id: i64,
                what: &'static str,
            ) -> llmgate_core::Result<Option<$crate::sql::ClosedHold>> {
                sqlx::query_as::<$db, $crate::sql::ClosedHold>($crate::sql::statements::TAKE_HOLD)
                    .bind(hold_id)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err($crate::error::database_error(what))
            }

            /// A closed hold leaves its key budget (if it had one): `held` is no longer held,
            /// `charge` is spent.
            async fn close_budget(
                tx: &mut sqlx::Transaction<'static, $db>,
                budget_key: Option<String>,
                budget_period: Option<i64>,
                held: i64,
                charge: i64,
            ) -> llmgate_core::Result<()> {
                let (Some(key_id), Some(period_start)) = (budget_key, budget_period) else {
                    return Ok(());
                };
                sqlx::query::<$db>($crate::sql::statements::CLOSE_BUDGET)
                    .bind(key_id)
                    .bind(period_start)
                    .bind(held)
                    .bind(charge)
                    .execute(&mut **tx)
                    .await
                    .map_err($crate::error::database_error("close a key budget hold"))?;
                Ok(())
            }

            /// Count a hold against its key budget inside `tx`; a refusal
            /// (`key_budget_exceeded`) changed nothing.
            async fn take_from_budget(
                tx: &mut sqlx::Transaction<'static, $db>,
                budget: &llmgate_core::credits::BudgetHold,
                amount_micros: i64,
            ) -> llmgate_core::Result<llmgate_core::Result<()>> {
                use $crate::sql::statements as sql;
                let failed = || $crate::error::database_error("hold against a key budget");
                sqlx::query::<$db>(sql::ENSURE_KEY_SPEND)
                    .bind(&budget.key_id)
                    .bind(budget.period_start)
                    .execute(&mut **tx)
                    .await
                    .map_err(failed())?;
                let taken: Option<i64> = sqlx::query_scalar::<$db, i64>(sql::TAKE_FROM_BUDGET)
                    .bind(&budget.key_id)
                    .bind(budget.period_start)
                    .bind(amount_micros)
                    .bind(budget.max_micros)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(failed())?;
                if taken.is_some() {
                    return Ok(Ok(()));
                }
                let used: i64 = sqlx::query_scalar::<$db, i64>(sql::SELECT_KEY_SPEND)
                    .bind(&budget.key_id)
                    .bind(budget.period_start)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(failed())?
                    .unwrap_or(0);
                let remaining = (budget.max_micros - used).max(0);
                Ok(Err(llmgate_core::credits::key_budget_exceeded(
                    amount_micros,
                    remaining,
                )))
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
            /// no such statement, a key budget to count against, or the balance does not cover
            /// it (the general path decides).
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
                // The one statement knows nothing of key budgets: those take the general path.
                if request.budget.is_some() {
                    return Ok(None);
                }
                let now = llmgate_core::memory::unix_now();
                let arguments = Self::hold_arguments(request, replica, now)?;
                let placed: Option<(i64, i64)> =
                    sqlx::query_as_with::<$db, (i64, i64), _>(statement, arguments)
                        .fetch_optional(executor)
                        .await?;
                Ok(
                    placed.map(|(hold_id, _balance)| llmgate_core::credits::Hold {
                        id: hold_id.to_string(),
                        user_id: request.user_id.clone(),
                        amount_micros: request.amount_micros,
                    }),
                )
            }

            /// A hold's parameters in the order both hold statements take them: user, amount,
            /// request, placed at (`now`), expires at, replica.
            fn hold_arguments(
                request: &llmgate_core::credits::HoldRequest,
                replica: &str,
                now: i64,
            ) -> Result<<$db as sqlx::Database>::Arguments, sqlx::Error> {
                use sqlx::Arguments as _;
                let ttl = i64::try_from(request.ttl_secs).unwrap_or(i64::MAX);
                let mut arguments = <$db as sqlx::Database>::Arguments::default();
                let encode = sqlx::Error::Encode;
                arguments.add(request.user_id.as_str()).map_err(encode)?;
                arguments.add(request.amount_micros).map_err(encode)?;
                arguments.add(request.request_id.as_str()).map_err(encode)?;
                arguments.add(now).map_err(encode)?;
                arguments.add(now.saturating_add(ttl)).map_err(encode)?;
                arguments.add(replica).map_err(encode)?;
                Ok(arguments)
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
                let balance_after = match Self::take_for_hold(tx, request).await? {
                    Ok(balance) => balance,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                // The balance first, then the budget: the order settles take too.
                if let Some(budget) = &request.budget
                    && let Err(refusal) =
                        Self::take_from_budget(tx, budget, request.amount_micros).await?
                {
                    Self::give_back(tx, &request.user_id, request.amount_micros).await?;
                    return Ok(Err(refusal));
                }
                let arguments = Self::hold_arguments(request, replica, now).map_err(failed())?;
                let hold_id: i64 =
                    sqlx::query_scalar_with::<$db, i64, _>(sql::INSERT_HOLD, arguments)
                        .fetch_one(&mut **tx)
                        .await
                        .map_err(failed())?;
                if let Some(budget) = &request.budget {
                    sqlx::query::<$db>(sql::MARK_HOLD_BUDGET)
                        .bind(hold_id)
                        .bind(&budget.key_id)
                        .bind(budget.period_start)
                        .execute(&mut **tx)
                        .await
                        .map_err(failed())?;
                }
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
                let Some((user_id, held, budget_key, budget_period)) =
                    Self::take_hold(tx, hold_id, "settle").await?
                else {
                    return Ok(None);
                };
                let charge = usage.cost_micros.clamp(0, held);
                let balance = Self::give_back(tx, &user_id, held - charge).await?;
                Self::close_budget(tx, budget_key, budget_period, held, charge).await?;
                let now = llmgate_core::memory::unix_now();
                // The hold's release, then the charge: the entries add up to the balance.
                let request_id = Some(usage.request_id.as_str());
                let release = $crate::sql::Entry::release(
                    &user_id,
                    held,
                    balance + charge,
                    request_id,
                    &hold.id,
                    now,
                );
                Self::append(tx, &release).await?;
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
                    .bind(1_i64)
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
        }
    };
}

pub(crate) use sql_ledger_steps;
