//! Appending a batch of rows to the request log, in as few statements as the backend allows,
//! whose texts never change with the batch's size: each is prepared once per connection and
//! then reused from its statement cache. A text that changed with the row count was parsed
//! anew for every batch (on SQLite that parse cost more per row than the insert itself) and
//! pushed the ledger's statements out of the cache.
//!
//! - SQLite: multi-row `INSERT ... VALUES` in a few fixed sizes, largest first; more than one
//!   statement share a transaction.
//! - PostgreSQL: one `INSERT ... SELECT FROM UNNEST(...)` of one array per column, one
//!   statement and one round trip for a batch of any size.

use std::sync::{Arc, LazyLock};

use llmgate_core::pricing::CostBreakdown;
use llmgate_core::request_log::{LogEntry, LoggedAttempt};
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

use crate::users::SqlPool;

/// Rows per SQLite `INSERT`, largest first: a batch is written as statements of these sizes (a
/// batch of 100 rows as 64 + 32 + 4). 64 rows of 25 values stay far under SQLite's limit on
/// parameters.
const CHUNKS: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];

/// The request log's columns, in the order every insert binds them: written once, so the
/// SQLite and PostgreSQL statements cannot disagree.
macro_rules! columns {
    () => {
        "request_id, created_at, user_id, key_id, team_id, endpoint, requested_model, model, \
provider, attempts, status, error_code, latency_ms, ttfb_ms, prompt_tokens, cache_read_tokens, \
cache_write_tokens, completion_tokens, reasoning_tokens, cost_micros, cost_breakdown, \
key_source, stream, prompt, answer"
    };
}

const INSERT_HEAD: &str = concat!("INSERT INTO request_log (", columns!(), ") VALUES ");

/// Values per row of [`INSERT_HEAD`].
const COLUMNS: usize = 25;

/// SQLite's `INSERT` of `rows` rows. Its placeholders are plain `?`, bound in order (no name
/// to look up per value).
fn insert_text(rows: usize) -> String {
    let mut text = String::from(INSERT_HEAD);
    for row in 0..rows {
        text.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..COLUMNS {
            if column > 0 {
                text.push_str(", ");
            }
            text.push('?');
        }
        text.push(')');
    }
    text
}

/// The `INSERT` of each size in [`CHUNKS`], in the same order.
static SQLITE_INSERTS: LazyLock<Vec<String>> =
    LazyLock::new(|| CHUNKS.iter().map(|&rows| insert_text(rows)).collect());

/// The statements that write `rows` rows: indexes into [`CHUNKS`], largest first.
fn chunks_of(mut rows: usize) -> Vec<usize> {
    let mut chunks = Vec::new();
    for (index, &size) in CHUNKS.iter().enumerate() {
        while rows >= size {
            chunks.push(index);
            rows -= size;
        }
    }
    chunks
}

/// PostgreSQL's `INSERT` of a batch: one array per column, unnested together in order.
const POSTGRES_INSERT: &str = concat!(
    "INSERT INTO request_log (",
    columns!(),
    ") SELECT ",
    columns!(),
    " FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], \
$7::text[], $8::text[], $9::text[], $10::text[], $11::integer[], $12::text[], $13::bigint[], \
$14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[], $19::bigint[], \
$20::bigint[], $21::text[], $22::text[], $23::boolean[], $24::text[], $25::text[]) \
WITH ORDINALITY AS batch (",
    columns!(),
    ", position) ORDER BY position"
);

/// A count as a database integer (they never come near `i64::MAX`).
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Write `entries` through `writer`.
pub(super) async fn append(writer: &SqlPool, entries: &[LogEntry]) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    // Formatted here, on the writer task, never on the request's path.
    let mut shared = SharedText::default();
    let rows: Vec<RowText> = entries
        .iter()
        .map(|entry| RowText::of(entry, &mut shared))
        .collect();
    match writer {
        SqlPool::Sqlite(db) => append_sqlite(db, entries, rows).await,
        SqlPool::Postgres(db) => append_postgres(db, entries, rows).await,
    }
}

async fn append_sqlite(
    db: &SqlitePool,
    entries: &[LogEntry],
    rows: Vec<RowText>,
) -> Result<(), sqlx::Error> {
    let chunks = chunks_of(entries.len());
    // One statement commits by itself; more share a transaction (one commit).
    let mut tx = match chunks.len() {
        1 => None,
        _ => Some(db.begin().await?),
    };
    let mut rows = entries.iter().zip(rows);
    for &chunk in &chunks {
        let mut insert = sqlx::query(SQLITE_INSERTS[chunk].as_str());
        for (entry, row) in rows.by_ref().take(CHUNKS[chunk]) {
            insert = insert
                .bind(entry.request_id.clone())
                .bind(entry.created_at_ms)
                .bind(entry.user_id.clone())
                .bind(entry.key_id.clone())
                .bind(entry.team_id.clone())
                .bind(row.endpoint)
                .bind(entry.requested_model.clone())
                .bind(entry.model.clone())
                .bind(entry.provider.clone())
                .bind(row.attempts)
                .bind(i32::from(entry.status))
                .bind(entry.error_code.clone())
                .bind(int(entry.latency_ms))
                .bind(entry.ttfb_ms.map(int))
                .bind(int(entry.tokens.prompt()))
                .bind(int(entry.tokens.cache_read))
                .bind(int(entry.tokens.cache_write))
                .bind(int(entry.tokens.output))
                .bind(int(entry.tokens.reasoning))
                .bind(entry.cost_micros)
                .bind(row.cost_breakdown)
                .bind(row.key_source)
                .bind(entry.stream)
                .bind(entry.prompt.clone())
                .bind(entry.answer.clone());
        }
        match tx.as_mut() {
            Some(tx) => insert.execute(&mut **tx).await?,
            None => insert.execute(db).await?,
        };
    }
    if let Some(tx) = tx {
        tx.commit().await?;
    }
    Ok(())
}

async fn append_postgres(
    db: &PgPool,
    entries: &[LogEntry],
    rows: Vec<RowText>,
) -> Result<(), sqlx::Error> {
    let text = |value: fn(&LogEntry) -> &str| entries.iter().map(value).collect::<Vec<_>>();
    let maybe_text =
        |value: fn(&LogEntry) -> Option<&str>| entries.iter().map(value).collect::<Vec<_>>();
    let number = |value: fn(&LogEntry) -> i64| entries.iter().map(value).collect::<Vec<_>>();
    sqlx::query(POSTGRES_INSERT)
        .bind(text(|entry| &entry.request_id))
        .bind(number(|entry| entry.created_at_ms))
        .bind(text(|entry| &entry.user_id))
        .bind(maybe_text(|entry| entry.key_id.as_deref()))
        .bind(maybe_text(|entry| entry.team_id.as_deref()))
        .bind(text(|entry| entry.endpoint))
        .bind(maybe_text(|entry| entry.requested_model.as_deref()))
        .bind(maybe_text(|entry| entry.model.as_deref()))
        .bind(maybe_text(|entry| entry.provider.as_deref()))
        .bind(rows.iter().map(|row| &*row.attempts).collect::<Vec<_>>())
        .bind(
            entries
                .iter()
                .map(|entry| i32::from(entry.status))
                .collect::<Vec<_>>(),
        )
        .bind(maybe_text(|entry| entry.error_code.as_deref()))
        .bind(number(|entry| int(entry.latency_ms)))
        .bind(
            entries
                .iter()
                .map(|entry| entry.ttfb_ms.map(int))
                .collect::<Vec<_>>(),
        )
        .bind(number(|entry| int(entry.tokens.prompt())))
        .bind(number(|entry| int(entry.tokens.cache_read)))
        .bind(number(|entry| int(entry.tokens.cache_write)))
        .bind(number(|entry| int(entry.tokens.output)))
        .bind(number(|entry| int(entry.tokens.reasoning)))
        .bind(number(|entry| entry.cost_micros))
        .bind(
            rows.iter()
                .map(|row| row.cost_breakdown.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(maybe_text(|entry| entry.key_source))
        .bind(entries.iter().map(|entry| entry.stream).collect::<Vec<_>>())
        .bind(maybe_text(|entry| entry.prompt.as_deref()))
        .bind(maybe_text(|entry| entry.answer.as_deref()))
        .execute(db)
        .await?;
    Ok(())
}

/// The values of a row that are made, not copied, from its entry: the two JSON columns, and
/// the constant strings as shared text (bound without a copy of their own per row).
struct RowText {
    attempts: String,
    cost_breakdown: Option<String>,
    endpoint: Arc<str>,
    key_source: Option<Arc<str>>,
}

impl RowText {
    fn of(entry: &LogEntry, shared: &mut SharedText) -> Self {
        Self {
            attempts: LoggedAttempt::json_of(&entry.attempts),
            cost_breakdown: entry.cost_breakdown.as_ref().map(CostBreakdown::to_json),
            endpoint: shared.of(entry.endpoint),
            key_source: entry.key_source.map(|source| shared.of(source)),
        }
    }
}

/// The `&'static str` values of a batch (endpoints, key sources: a handful of constants) as
/// `Arc<str>`, each made once per batch.
#[derive(Default)]
struct SharedText(Vec<(&'static str, Arc<str>)>);

impl SharedText {
    fn of(&mut self, text: &'static str) -> Arc<str> {
        if let Some((_, shared)) = self.0.iter().find(|(known, _)| *known == text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text);
        self.0.push((text, shared.clone()));
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_written_in_the_fixed_sizes_largest_first() {
        let rows = |count| -> Vec<usize> {
            chunks_of(count)
                .into_iter()
                .map(|chunk| CHUNKS[chunk])
                .collect()
        };
        assert_eq!(rows(0), Vec::<usize>::new());
        assert_eq!(rows(1), [1]);
        assert_eq!(rows(100), [64, 32, 4]);
        assert_eq!(rows(512), [64; 8]);
        assert_eq!(rows(127), [64, 32, 16, 8, 4, 2, 1]);
    }

    #[test]
    fn each_insert_has_a_placeholder_per_value() {
        let sqlite = insert_text(2);
        assert_eq!(sqlite.matches('?').count(), 2 * COLUMNS);
        assert!(sqlite.ends_with("?, ?)"), "{sqlite}");
        assert_eq!(POSTGRES_INSERT.matches("::").count(), COLUMNS);
        assert!(POSTGRES_INSERT.contains(&format!("${COLUMNS}::")));
    }
}
