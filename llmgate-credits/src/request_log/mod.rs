//! The request log in the ledger's database (table `request_log`, migration 0420): rows
//! appended in batches, listed newest first under the API's filters, deleted by age.
//!
//! A listing is one statement built from the filters present (absent ones add no condition,
//! so the planner sees plain equalities), newest first by `(created_at, id)`: each equality
//! filter has an index that ends in those two columns, so a page — with a time range or
//! without — is one backward index range scan that stops at the page size.

use async_trait::async_trait;
use llmgate_core::Result;
use llmgate_core::request_log::{
    LogEntry, LogQuery, LoggedAttempt, LoggedRequest, RequestLogStore, StatusFilter,
};
use sqlx::Row;

use crate::error::database_error;
use crate::users::{SqlPool, on_pool};

mod append;

/// The columns a listing reads: every one but the bodies, which only the detail shows.
const LIST_COLUMNS: &str = "id, request_id, created_at, user_id, key_id, team_id, endpoint, \
requested_model, model, provider, attempts, status, error_code, latency_ms, ttfb_ms, \
prompt_tokens, cache_read_tokens, cache_write_tokens, completion_tokens, reasoning_tokens, \
cost_micros, cost_breakdown, key_source, stream, NULL AS prompt, NULL AS answer";

const SELECT_ONE: &str = "SELECT id, request_id, created_at, user_id, key_id, team_id, \
endpoint, requested_model, model, provider, attempts, status, error_code, latency_ms, ttfb_ms, \
prompt_tokens, cache_read_tokens, cache_write_tokens, completion_tokens, reasoning_tokens, \
cost_micros, cost_breakdown, key_source, stream, prompt, answer FROM request_log WHERE id = $1";

const PRUNE: &str = "DELETE FROM request_log WHERE created_at < $1";

/// A [`RequestLogStore`] in the ledger's SQLite or PostgreSQL database.
#[derive(Debug, Clone)]
pub struct SqlRequestLog {
    pool: SqlPool,
    /// Appends and prunes: the ledger's background-write pool in the server
    /// ([`SqlPool::background_writes_of`]), else `pool`.
    writer: SqlPool,
}

impl SqlRequestLog {
    /// Use the ledger's pool; its migrations created the table.
    pub fn new(pool: SqlPool) -> Self {
        Self {
            writer: pool.clone(),
            pool,
        }
    }

    /// Append and prune through `writer` (reads keep the pool given to [`Self::new`]).
    pub fn writing_through(mut self, writer: SqlPool) -> Self {
        self.writer = writer;
        self
    }
}

/// A value bound to a listing's placeholder.
enum Bind {
    Int(i64),
    Text(String),
}

/// The listing's conditions and the values bound to their placeholders.
#[derive(Default)]
struct Filter {
    conditions: Vec<String>,
    binds: Vec<Bind>,
}

impl Filter {
    /// `condition` with each `?` numbered, its values bound in order.
    fn bind(&mut self, condition: &str, values: impl IntoIterator<Item = Bind>) {
        let mut numbered = String::with_capacity(condition.len() + 4);
        let mut values = values.into_iter();
        for piece in condition.split_inclusive('?') {
            match (piece.strip_suffix('?'), values.next()) {
                (Some(text), Some(value)) => {
                    self.binds.push(value);
                    numbered.push_str(&format!("{text}${}", self.binds.len()));
                }
                _ => numbered.push_str(piece),
            }
        }
        self.conditions.push(numbered);
    }
}

/// The listing's statement and its values, from the filters present.
fn listing(query: &LogQuery) -> (String, Vec<Bind>) {
    let mut filter = Filter::default();
    let text = |value: &String| Bind::Text(value.clone());
    match (&query.user_id, query.teams.as_slice()) {
        (Some(user), []) => filter.bind("user_id = ?", [text(user)]),
        (Some(user), teams) => {
            let places = vec!["?"; teams.len()].join(", ");
            let binds = std::iter::once(user).chain(teams).map(text);
            filter.bind(&format!("(user_id = ? OR team_id IN ({places}))"), binds);
        }
        (None, _) => {}
    }
    if let Some(key) = &query.key_id {
        filter.bind("key_id = ?", [text(key)]);
    }
    if let Some(model) = &query.model {
        filter.bind("COALESCE(model, requested_model) = ?", [text(model)]);
    }
    if let Some(from) = query.from_ms {
        filter.bind("created_at >= ?", [Bind::Int(from)]);
    }
    if let Some(to) = query.to_ms {
        filter.bind("created_at < ?", [Bind::Int(to)]);
    }
    if let Some(before) = query.before {
        let place = [Bind::Int(before.created_at_ms), Bind::Int(before.id)];
        filter.bind("(created_at, id) < (?, ?)", place);
    }
    match query.status {
        StatusFilter::Any => {}
        // As the partial index `request_log_user_errors` words it, so that it is used.
        StatusFilter::Ok => filter.bind("status < 400 AND error_code IS NULL", []),
        StatusFilter::Error => filter.bind("(status >= 400 OR error_code IS NOT NULL)", []),
        StatusFilter::Code(code) => filter.bind("status = ?", [Bind::Int(i64::from(code))]),
    }
    let filter_sql = if filter.conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", filter.conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {LIST_COLUMNS} FROM request_log{filter_sql} ORDER BY created_at DESC, id DESC \
         LIMIT {}",
        query.page_size()
    );
    (sql, filter.binds)
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// One row read back. A row whose JSON columns do not parse still lists (without them).
macro_rules! logged_from_row {
    ($row:expr) => {{
        let row = $row;
        let attempts: String = row.try_get("attempts")?;
        let breakdown: Option<String> = row.try_get("cost_breakdown")?;
        let status: i32 = row.try_get("status")?;
        Ok::<_, sqlx::Error>(LoggedRequest {
            id: row.try_get("id")?,
            request_id: row.try_get("request_id")?,
            created_at: row.try_get("created_at")?,
            user_id: row.try_get("user_id")?,
            key_id: row.try_get("key_id")?,
            team_id: row.try_get("team_id")?,
            endpoint: row.try_get("endpoint")?,
            requested_model: row.try_get("requested_model")?,
            model: row.try_get("model")?,
            provider: row.try_get("provider")?,
            attempts: serde_json::from_str::<Vec<LoggedAttempt>>(&attempts).unwrap_or_default(),
            status: u16::try_from(status).unwrap_or(0),
            error_code: row.try_get("error_code")?,
            latency_ms: count(row.try_get("latency_ms")?),
            ttfb_ms: row.try_get::<Option<i64>, _>("ttfb_ms")?.map(count),
            prompt_tokens: count(row.try_get("prompt_tokens")?),
            cache_read_tokens: count(row.try_get("cache_read_tokens")?),
            cache_write_tokens: count(row.try_get("cache_write_tokens")?),
            completion_tokens: count(row.try_get("completion_tokens")?),
            reasoning_tokens: count(row.try_get("reasoning_tokens")?),
            cost_micros: row.try_get("cost_micros")?,
            cost_breakdown: breakdown.and_then(|text| serde_json::from_str(&text).ok()),
            key_source: row.try_get("key_source")?,
            stream: row.try_get("stream")?,
            prompt: row.try_get("prompt")?,
            answer: row.try_get("answer")?,
        })
    }};
}

#[async_trait]
impl RequestLogStore for SqlRequestLog {
    async fn append(&self, entries: &[LogEntry]) -> Result<()> {
        append::append(&self.writer, entries)
            .await
            .map_err(database_error("append to the request log"))
    }

    async fn list(&self, query: &LogQuery) -> Result<Vec<LoggedRequest>> {
        let failed = || database_error("list the request log");
        let (sql, binds) = listing(query);
        on_pool!(&self.pool, |db| {
            // Built from constant fragments and numbered placeholders only; every value is bound.
            let mut statement = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for value in binds {
                statement = match value {
                    Bind::Int(value) => statement.bind(value),
                    Bind::Text(value) => statement.bind(value),
                };
            }
            let rows = statement.fetch_all(db).await.map_err(failed())?;
            rows.iter()
                .map(|row| logged_from_row!(row))
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(failed())
        })
    }

    async fn get(&self, id: i64) -> Result<Option<LoggedRequest>> {
        let failed = || database_error("read the request log");
        on_pool!(&self.pool, |db| {
            let row = sqlx::query(SELECT_ONE)
                .bind(id)
                .fetch_optional(db)
                .await
                .map_err(failed())?;
            row.as_ref()
                .map(|row| logged_from_row!(row))
                .transpose()
                .map_err(failed())
        })
    }

    async fn prune(&self, before_ms: i64) -> Result<u64> {
        let failed = || database_error("prune the request log");
        on_pool!(&self.writer, |db| {
            let done = sqlx::query(PRUNE)
                .bind(before_ms)
                .execute(db)
                .await
                .map_err(failed())?;
            Ok(done.rows_affected())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_binds_only_the_filters_present() {
        let query = LogQuery {
            user_id: Some("ann".into()),
            status: StatusFilter::Code(404),
            before: Some(llmgate_core::request_log::Cursor {
                created_at_ms: 5,
                id: 9,
            }),
            limit: 1000,
            ..LogQuery::default()
        };
        let (sql, binds) = listing(&query);
        assert!(
            sql.ends_with(
                "WHERE user_id = $1 AND (created_at, id) < ($2, $3) AND status = $4 \
                 ORDER BY created_at DESC, id DESC LIMIT 200"
            ),
            "{sql}"
        );
        assert_eq!(binds.len(), 4);
        let (sql, binds) = listing(&LogQuery::default());
        assert!(
            sql.ends_with("FROM request_log ORDER BY created_at DESC, id DESC LIMIT 1"),
            "{sql}"
        );
        assert!(binds.is_empty());
    }
}
