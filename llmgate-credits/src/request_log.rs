//! The request log in the ledger's database (table `request_log`, migration 0420): rows
//! appended in batches, listed newest first under the API's filters, deleted by age.
//!
//! A listing is one statement built from the filters present (absent ones add no condition,
//! so the planner sees plain equalities), newest first by `(created_at, id)`: each equality
//! filter has an index that ends in those two columns, so a page — with a time range or
//! without — is one backward index range scan that stops at the page size.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use llmgate_core::Result;
use llmgate_core::pricing::CostBreakdown;
use llmgate_core::request_log::{
    LogEntry, LogQuery, LoggedAttempt, LoggedRequest, RequestLogStore, StatusFilter,
};
use sqlx::Row;

use crate::error::database_error;
use crate::users::{SqlPool, on_pool};

/// Rows per `INSERT`, largest first: a batch is written as statements of these sizes (a
/// batch of 100 rows as 64 + 32 + 4), so that there are only these few statement texts, each
/// parsed once and then reused from the connection's statement cache. A text that changed with
/// the batch's row count was parsed anew for every batch (on SQLite that parse cost more per
/// row than the insert itself) and pushed the ledger's statements out of the cache.
/// 64 rows of 25 values stay far under both backends' limits on parameters.
const CHUNKS: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];

const INSERT_HEAD: &str = "INSERT INTO request_log (request_id, created_at, user_id, key_id, \
team_id, endpoint, requested_model, model, provider, attempts, status, error_code, latency_ms, \
ttfb_ms, prompt_tokens, cache_read_tokens, cache_write_tokens, completion_tokens, \
reasoning_tokens, cost_micros, cost_breakdown, key_source, stream, prompt, answer) VALUES ";

/// Values per row of [`INSERT_HEAD`].
const COLUMNS: usize = 25;

/// The `INSERT` of `rows` rows. SQLite's placeholders are plain `?` (bound in order, no name
/// to look up per value); PostgreSQL's are numbered.
fn insert_text(rows: usize, numbered: bool) -> String {
    let mut text = String::from(INSERT_HEAD);
    for row in 0..rows {
        text.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..COLUMNS {
            if column > 0 {
                text.push_str(", ");
            }
            if numbered {
                text.push_str(&format!("${}", row * COLUMNS + column + 1));
            } else {
                text.push('?');
            }
        }
        text.push(')');
    }
    text
}

/// The `INSERT` of each size in [`CHUNKS`], in the same order, for SQLite and for PostgreSQL.
static SQLITE_INSERTS: LazyLock<Vec<String>> = LazyLock::new(|| {
    CHUNKS
        .iter()
        .map(|&rows| insert_text(rows, false))
        .collect()
});
static POSTGRES_INSERTS: LazyLock<Vec<String>> =
    LazyLock::new(|| CHUNKS.iter().map(|&rows| insert_text(rows, true)).collect());

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

/// A count as a database integer (they never come near `i64::MAX`).
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
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
        let attempts: Vec<LoggedAttempt> = entry.attempts.iter().map(LoggedAttempt::of).collect();
        Self {
            attempts: serde_json::to_string(&attempts).unwrap_or_else(|_| "[]".into()),
            cost_breakdown: entry.cost_breakdown.as_ref().map(breakdown_json),
            endpoint: shared.of(entry.endpoint),
            key_source: entry.key_source.map(|source| shared.of(source)),
        }
    }
}

/// The cost breakdown's JSON as `serde_json` writes [`CostBreakdown`] (a test holds the two to
/// the same text), written directly: through serde's writer, a key and a value at a time, it
/// cost about 6k instructions a row.
fn breakdown_json(breakdown: &CostBreakdown) -> String {
    use std::fmt::Write as _;
    let mut json = String::with_capacity(256);
    let classes = [
        ("{\"uncached_prompt\":", &breakdown.uncached_prompt),
        (",\"cache_read\":", &breakdown.cache_read),
        (",\"cache_write\":", &breakdown.cache_write),
        (",\"output\":", &breakdown.output),
    ];
    // Writing to a String cannot fail.
    for (key, class) in classes {
        json.push_str(key);
        let _ = write!(json, "{{\"tokens\":{},\"micros\":\"", class.tokens);
        if class.micros.is_zero() {
            json.push('0');
        } else {
            let _ = write!(json, "{}", class.micros.normalize());
        }
        json.push_str("\"}");
    }
    let _ = write!(
        json,
        ",\"reasoning_tokens\":{},\"cost_micros\":{}}}",
        breakdown.reasoning_tokens, breakdown.cost_micros
    );
    json
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

#[async_trait]
impl RequestLogStore for SqlRequestLog {
    async fn append(&self, entries: &[LogEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let failed = || database_error("append to the request log");
        // Formatted here, on the writer task, never on the request's path.
        let mut shared = SharedText::default();
        let rows: Vec<RowText> = entries
            .iter()
            .map(|entry| RowText::of(entry, &mut shared))
            .collect();
        let chunks = chunks_of(entries.len());
        let texts = match &self.writer {
            SqlPool::Sqlite(_) => &*SQLITE_INSERTS,
            SqlPool::Postgres(_) => &*POSTGRES_INSERTS,
        };
        on_pool!(&self.writer, |db| {
            // One statement commits by itself; more share a transaction (one commit).
            let mut tx = match chunks.len() {
                1 => None,
                _ => Some(db.begin().await.map_err(failed())?),
            };
            let mut rows = entries.iter().zip(rows);
            for &chunk in &chunks {
                let mut insert = sqlx::query(texts[chunk].as_str());
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
                    Some(tx) => insert.execute(&mut **tx).await,
                    None => insert.execute(db).await,
                }
                .map_err(failed())?;
            }
            if let Some(tx) = tx {
                tx.commit().await.map_err(failed())?;
            }
        });
        Ok(())
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
    fn the_breakdown_is_written_as_serde_writes_it() {
        use llmgate_core::pricing::{ClassCost, Decimal, TokenClasses};
        let class = |tokens, micros| ClassCost { tokens, micros };
        let tokens = TokenClasses {
            uncached_prompt: 12,
            cache_read: 0,
            cache_write: 3,
            output: u64::MAX,
            reasoning: 7,
        };
        for breakdown in [
            CostBreakdown::default(),
            CostBreakdown::free(&tokens),
            CostBreakdown {
                uncached_prompt: class(12, Decimal::new(12_345, 3)),
                cache_read: class(0, Decimal::new(1_500, 2)),
                cache_write: class(3, Decimal::new(-25, 1)),
                output: class(u64::MAX, Decimal::new(7, 0)),
                reasoning_tokens: 7,
                cost_micros: i64::MAX,
            },
            CostBreakdown {
                cost_micros: -4,
                ..CostBreakdown::default()
            },
        ] {
            assert_eq!(
                breakdown_json(&breakdown),
                serde_json::to_string(&breakdown).unwrap()
            );
        }
    }

    #[test]
    fn each_insert_has_a_placeholder_per_value() {
        let sqlite = insert_text(2, false);
        assert_eq!(sqlite.matches('?').count(), 2 * COLUMNS);
        assert!(sqlite.ends_with("?, ?)"), "{sqlite}");
        let postgres = insert_text(2, true);
        assert!(postgres.contains("($1, $2,"), "{postgres}");
        assert!(postgres.ends_with(", $50)"), "{postgres}");
        assert!(!postgres.contains('?'));
    }

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
