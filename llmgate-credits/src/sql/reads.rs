//! The SQL ledger's reads: a balance, a page of the ledger, usage grouped by model, provider
//! or day.

/// The reads of a store type (see `sql_credit_store!`).
macro_rules! sql_ledger_reads {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn read_balance(&self, user_id: &str) -> llmgate_core::Result<i64> {
                let balance: Option<i64> =
                    sqlx::query_scalar::<$db, i64>($crate::sql::statements::SELECT_SPENDABLE)
                        .bind(user_id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err($crate::error::database_error("balance"))?;
                Ok(balance.unwrap_or(0))
            }

            /// A page of the user's ledger, newest first.
            async fn read_transactions(
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

            /// Usage summed by model, provider or day, in byte order of the group key.
            async fn read_usage(
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
    };
}

pub(crate) use sql_ledger_reads;
