//! The request log's store on the real backends (a SQLite file and a PostgreSQL database of
//! their own; PostgreSQL skipped with a message when unreachable, unless `CI=true`): batches of
//! every size come back whole, value for value, in the order they were appended.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::any::Any;
use std::sync::Arc;

use llmgate_core::pricing::{CostBreakdown, TokenClasses};
use llmgate_core::request_log::{Cursor, LogEntry, LogQuery, LoggedRequest, RequestLogStore};
use llmgate_credits::{SqlPool, SqlRequestLog};

/// A store on one backend, and what keeps its database alive.
struct Db {
    name: &'static str,
    log: SqlRequestLog,
    _keep: Box<dyn Any + Send>,
}

async fn databases() -> Vec<Db> {
    let ledgers = support::sql_ledgers().await;
    ledgers
        .into_iter()
        .map(|(name, ledger, keep)| Db {
            name,
            log: SqlRequestLog::new(SqlPool::of(&ledger))
                .writing_through(SqlPool::background_writes_of(&ledger)),
            _keep: Box::new((keep, ledger)),
        })
        .collect()
}

/// The `n`th row: every column set, the optional ones on some rows only.
fn entry(n: i64) -> LogEntry {
    let tokens = TokenClasses {
        uncached_prompt: 10 + n as u64,
        cache_read: n as u64 % 3,
        cache_write: 0,
        output: 5,
        reasoning: n as u64 % 2,
    };
    LogEntry {
        request_id: Arc::from(format!("req-{n}")),
        created_at_ms: 1_765_000_000_000 + n,
        user_id: Arc::from(format!("user-{}", n % 4)),
        key_id: (n % 2 == 0).then(|| Arc::from(format!("key-{n}"))),
        team_id: (n % 5 == 0).then(|| Arc::from("team")),
        endpoint: if n % 3 == 0 {
            "/v1/embeddings"
        } else {
            "/v1/chat/completions"
        },
        requested_model: Some(format!("asked-{n}")),
        model: (n % 7 != 0).then(|| "served".to_owned()),
        provider: (n % 7 != 0).then(|| "upstream".to_owned()),
        attempts: Vec::new(),
        status: if n % 11 == 0 { 502 } else { 200 },
        error_code: (n % 11 == 0).then(|| "upstream_error".to_owned()),
        latency_ms: 3 + n as u64,
        ttfb_ms: (n % 2 == 1).then_some(1),
        tokens,
        cost_micros: n * 7,
        cost_breakdown: (n % 2 == 0).then(|| CostBreakdown::free(&tokens)),
        key_source: (n % 7 != 0).then_some(if n % 2 == 0 { "platform" } else { "byok" }),
        stream: n % 2 == 1,
        prompt: (n % 13 == 0).then(|| format!("prompt {n}")),
        answer: (n % 13 == 0).then(|| format!("answer {n}")),
    }
}

/// Every row, oldest first, read a page at a time through the listing and each row's detail
/// (which alone carries the bodies).
async fn every_row(log: &SqlRequestLog) -> Vec<LoggedRequest> {
    let mut rows = Vec::new();
    let mut before = None;
    loop {
        let page = log
            .list(&LogQuery {
                before,
                limit: 200,
                ..LogQuery::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        before = Some(Cursor::of(last));
        for row in page {
            rows.push(log.get(row.id).await.unwrap().unwrap());
        }
    }
    rows.reverse();
    rows
}

#[tokio::test]
async fn batches_of_every_size_come_back_whole_and_in_order() {
    for db in databases().await {
        // Sizes on each side of the statements' row counts (64, 32, ... 1), and past them.
        let sizes = [1, 2, 3, 63, 64, 65, 127, 200, 513];
        let mut appended = Vec::new();
        for size in sizes {
            let start = appended.len() as i64;
            let batch: Vec<LogEntry> = (start..start + size).map(entry).collect();
            db.log.append(&batch).await.unwrap();
            appended.extend(batch);
        }
        db.log.append(&[]).await.unwrap();

        let rows = every_row(&db.log).await;
        assert_eq!(rows.len(), appended.len(), "{}", db.name);
        let mut last_id = 0;
        for (row, entry) in rows.iter().zip(&appended) {
            assert!(
                row.id > last_id,
                "{}: ids follow the order of appends",
                db.name
            );
            last_id = row.id;
            assert_eq!(
                *row,
                LoggedRequest::from_entry(row.id, entry),
                "{}: row {}",
                db.name,
                entry.request_id
            );
        }
    }
}
