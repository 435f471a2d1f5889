//! Connecting: URL schemes, SQLite settings, migrations, health checks, the append-only
//! ledger, and errors that never leak SQL or connection strings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use llmgate_core::{
    ErrorKind,
    credits::{CreditStore, HoldRequest},
};
use llmgate_credits::{Backend, PostgresCreditStore, SqlCreditStore, SqliteCreditStore};

use support::{TestPostgres, TestSqlite, top_up};

#[tokio::test]
async fn sqlite_file_is_created_in_wal_mode_with_foreign_keys_and_a_busy_timeout() {
    let db = TestSqlite::new();
    let store = SqliteCreditStore::connect(&db.url).await.unwrap();
    let path = db.url.trim_start_matches("sqlite://");
    assert!(std::path::Path::new(path).exists());

    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(foreign_keys, 1);
    let busy_timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(busy_timeout >= 1_000, "busy_timeout {busy_timeout}");
    store.ping().await.unwrap();
}

#[tokio::test]
async fn in_memory_sqlite_keeps_its_data_across_steps() {
    let store = SqliteCreditStore::connect("sqlite::memory:").await.unwrap();
    top_up(&store, "ann", 1_000).await;
    let hold = store
        .hold(HoldRequest {
            user_id: "ann".into(),
            request_id: "r".into(),
            amount_micros: 400,
            ttl_secs: 60,
            budget: None,
        })
        .await
        .unwrap();
    store.release(&hold).await.unwrap();
    assert_eq!(store.balance("ann").await.unwrap(), 1_000);
}

#[tokio::test]
async fn reconnecting_runs_no_migration_twice_and_keeps_the_data() {
    let db = TestSqlite::new();
    let first = SqliteCreditStore::connect(&db.url).await.unwrap();
    top_up(&first, "bea", 70).await;
    drop(first);
    let again = SqliteCreditStore::connect(&db.url).await.unwrap();
    assert_eq!(again.balance("bea").await.unwrap(), 70);
}

#[tokio::test]
async fn the_url_scheme_picks_the_backend() {
    let db = TestSqlite::new();
    let store = SqlCreditStore::connect(&db.url).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store.ping().await.unwrap();
    top_up(&store, "cy", 5).await;
    assert_eq!(store.balance("cy").await.unwrap(), 5);

    let error = SqlCreditStore::connect("mysql://root:hunter2@localhost/db")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidRequest);
    assert!(!error.message().contains("hunter2"));

    let Some(pg) = TestPostgres::create().await else {
        return;
    };
    let store = SqlCreditStore::connect(&pg.url).await.unwrap();
    assert_eq!(store.backend(), Backend::Postgres);
    store.ping().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_postgres_is_unavailable_without_naming_it() {
    // Nothing listens on port 1.
    let error = PostgresCreditStore::connect("postgres://admin:hunter2@127.0.0.1:1/ledger")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert_eq!(error.status(), 503);
    assert!(!error.message().contains("hunter2"));
    assert!(!error.message().contains("127.0.0.1"));
}

#[tokio::test]
async fn a_broken_database_is_unavailable_without_sql_in_the_message() {
    let db = TestSqlite::new();
    let store = SqliteCreditStore::connect(&db.url).await.unwrap();
    sqlx::query("DROP TABLE usage_daily")
        .execute(store.pool())
        .await
        .unwrap();
    let usage = support::usage_record("dee", "r", "m", "p", 0, 0);
    let error = store.record_usage(&usage).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert_eq!(error.message(), "database unavailable");
}

/// What the ledger must refuse: changing or deleting an entry, and a negative balance.
const FORBIDDEN_WRITES: [&str; 3] = [
    "UPDATE credit_ledger SET amount_micros = 1000000",
    "DELETE FROM credit_ledger",
    "UPDATE credit_balances SET balance_micros = -1",
];

#[tokio::test]
async fn sqlite_ledger_refuses_updates_and_deletes() {
    let db = TestSqlite::new();
    let store = SqliteCreditStore::connect(&db.url).await.unwrap();
    top_up(&store, "eve", 10).await;
    for statement in FORBIDDEN_WRITES {
        let refused = sqlx::query(statement).execute(store.pool()).await;
        assert!(refused.is_err(), "{statement}");
    }
    assert_eq!(support::ledger_totals(&store, "eve").await.credits, 10);
}

#[tokio::test]
async fn postgres_ledger_refuses_updates_and_deletes() {
    let Some(db) = TestPostgres::create().await else {
        return;
    };
    let store = PostgresCreditStore::connect(&db.url).await.unwrap();
    top_up(&store, "fin", 10).await;
    for statement in FORBIDDEN_WRITES {
        let refused = sqlx::query(statement).execute(store.pool()).await;
        assert!(refused.is_err(), "{statement}");
    }
    assert_eq!(support::ledger_totals(&store, "fin").await.credits, 10);
    store.ping().await.unwrap();
}

#[tokio::test]
async fn replicas_starting_together_migrate_once() {
    let Some(db) = TestPostgres::create().await else {
        return;
    };
    let (a, b, c) = tokio::join!(
        PostgresCreditStore::connect(&db.url),
        PostgresCreditStore::connect(&db.url),
        PostgresCreditStore::connect(&db.url),
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    top_up(&a, "gus", 3).await;
    assert_eq!(b.balance("gus").await.unwrap(), 3);
    assert_eq!(c.balance("gus").await.unwrap(), 3);
}
