//! Phase 3 of a batch of lease writes (see `lease_batch`): its usage rows in one upsert, in
//! key order, so the balance rows locked just before are held one round trip more whatever the
//! number of rows (a batch over a thousand accounts has a thousand).

use llmgate_core::Result;
use sqlx::{Postgres, Transaction};

use crate::error::database_error;
use crate::sql::{UsageTotals, statements as sql};

/// The rows of `totals` as columns (bound as arrays), in key order.
#[derive(Default)]
struct UsageColumns {
    user_id: Vec<String>,
    model: Vec<String>,
    provider: Vec<String>,
    day: Vec<String>,
    requests: Vec<i64>,
    prompt_tokens: Vec<i64>,
    completion_tokens: Vec<i64>,
    cost_micros: Vec<i64>,
    cache_read_tokens: Vec<i64>,
    cache_write_tokens: Vec<i64>,
    reasoning_tokens: Vec<i64>,
}

/// Add a batch's usage to `usage_daily`, one statement for every row.
pub(super) async fn add_usage_rows(
    tx: &mut Transaction<'static, Postgres>,
    totals: UsageTotals,
) -> Result<()> {
    let mut columns = UsageColumns::default();
    for ((user_id, model, provider, day), sum) in totals.into_rows() {
        columns.user_id.push(user_id);
        columns.model.push(model);
        columns.provider.push(provider);
        columns.day.push(day);
        columns.requests.push(sum.requests);
        columns.prompt_tokens.push(sum.prompt_tokens);
        columns.completion_tokens.push(sum.completion_tokens);
        columns.cost_micros.push(sum.cost_micros);
        columns.cache_read_tokens.push(sum.cache_read_tokens);
        columns.cache_write_tokens.push(sum.cache_write_tokens);
        columns.reasoning_tokens.push(sum.reasoning_tokens);
    }
    if columns.user_id.is_empty() {
        return Ok(());
    }
    sqlx::query::<Postgres>(sql::PG_ADD_USAGE_ROWS)
        .bind(&columns.user_id)
        .bind(&columns.model)
        .bind(&columns.provider)
        .bind(&columns.day)
        .bind(&columns.requests)
        .bind(&columns.prompt_tokens)
        .bind(&columns.completion_tokens)
        .bind(&columns.cost_micros)
        .bind(&columns.cache_read_tokens)
        .bind(&columns.cache_write_tokens)
        .bind(&columns.reasoning_tokens)
        .execute(&mut **tx)
        .await
        .map_err(database_error("write a batch's usage"))?;
    Ok(())
}
