//! The ledger reads like a bank statement, also for rows written before it did: a ledger of
//! the old shape (a settle wrote only its charge) is migrated so that every account's entries
//! sum to its balance; and `verify_ledger` finds an account whose balance was tampered with.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use llmgate_credits::{SqlCreditStore, SqlPool};
use support::{TestPostgres, TestSqlite, ledger_totals};

/// Every migration of `backend` before the statement one (version 300).
async fn migrator_before_the_statement(backend: &str) -> sqlx::migrate::Migrator {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut migrator = sqlx::migrate::Migrator::new(dir).await.unwrap();
    let older: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version < 300)
        .cloned()
        .collect();
    migrator.migrations = older.into();
    migrator
}

/// What the old code wrote for "ann": a top-up of 10,000; hold 1 of 3,000 settled at 1,200
/// (balance 8,800); hold 2 of 500 released; hold 3 of 700 still open (balance 8,100).
const OLD_LEDGER: &[&str] = &[
    "INSERT INTO credit_balances (user_id, balance_micros) VALUES ('ann', 8100)",
    "INSERT INTO credit_ledger (user_id, kind, amount_micros, balance_after_micros, \
     idempotency_key, reason, created_at) VALUES ('ann', 'top_up', 10000, 10000, 'k1', 'bought', 1)",
    "INSERT INTO credit_ledger (user_id, kind, amount_micros, balance_after_micros, request_id, \
     reason, created_at) VALUES ('ann', 'hold', -3000, 7000, 'r1', 'hold 1', 2)",
    "INSERT INTO credit_ledger (user_id, kind, amount_micros, balance_after_micros, model, \
     provider, prompt_tokens, completion_tokens, key_source, request_id, reason, created_at) \
     VALUES ('ann', 'charge', -1200, 8800, 'm', 'p', 10, 20, 'platform', 'r1', 'hold 1 of 3000', 3)",
    "INSERT INTO credit_ledger (user_id, kind, amount_micros, balance_after_micros, request_id, \
     reason, created_at) VALUES ('ann', 'hold', -500, 8300, 'r2', 'hold 2', 4)",
    "INSERT INTO credit_ledger (user_id, kind, amount_micros, balance_after_micros, reason, \
     created_at) VALUES ('ann', 'release', 500, 8800, 'hold 2', 5)",
    "INSERT INTO credit_ledger (user_id, kind, amount_micros, balance_after_micros, request_id, \
     reason, created_at) VALUES ('ann', 'hold', -700, 8100, 'r3', 'hold 3', 6)",
    "INSERT INTO credit_holds (user_id, amount_micros, request_id, created_at, expires_at) \
     VALUES ('ann', 700, 'r3', 6, 9999999999)",
];

async fn old_ledger_is_migrated_into_a_statement(url: &str, backend: &str) {
    match backend {
        "sqlite" => {
            let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
            let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
                .await
                .unwrap();
            migrator_before_the_statement(backend)
                .await
                .run(&pool)
                .await
                .unwrap();
            for statement in OLD_LEDGER {
                sqlx::query(*statement).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        _ => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            migrator_before_the_statement(backend)
                .await
                .run(&pool)
                .await
                .unwrap();
            for statement in OLD_LEDGER {
                sqlx::query(*statement).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
    }

    let store = SqlCreditStore::connect(url).await.unwrap();
    let report = store.verify_ledger().await.unwrap();
    assert!(report.is_exact(), "{:?}", report.problems);
    assert_eq!(report.accounts_checked, 1);

    let ledger: std::sync::Arc<dyn llmgate_core::credits::CreditStore> = match store.clone() {
        SqlCreditStore::Sqlite(s) => std::sync::Arc::new(s),
        SqlCreditStore::Postgres(s) => std::sync::Arc::new(s),
    };
    let totals = ledger_totals(&*ledger, "ann").await;
    assert_eq!(totals.entries, 7, "the charge got its hold's release");
    assert_eq!(totals.sum, 8_100);
    assert_eq!(totals.charges, 1_200);

    // New rows continue the statement after the migrated ones.
    let hold = ledger
        .hold(llmgate_core::credits::HoldRequest {
            user_id: "ann".into(),
            request_id: "r4".into(),
            amount_micros: 100,
            ttl_secs: 60,
            budget: None,
        })
        .await
        .unwrap();
    let usage = support::usage_record("ann", "r4", "m", "p", 40, 1_772_323_200);
    assert_eq!(ledger.settle(&hold, &usage).await.unwrap(), 8_060);
    assert_eq!(ledger_totals(&*ledger, "ann").await.sum, 8_060);
    assert!(store.verify_ledger().await.unwrap().is_exact());

    // Tampering with the balance row is found, with the figures that disagree.
    let tamper =
        "UPDATE credit_balances SET balance_micros = balance_micros + 5 WHERE user_id = 'ann'";
    match SqlPool::of(&store) {
        SqlPool::Sqlite(pool) => sqlx::query(tamper).execute(&pool).await.map(drop),
        SqlPool::Postgres(pool) => sqlx::query(tamper).execute(&pool).await.map(drop),
    }
    .unwrap();
    let report = store.verify_ledger().await.unwrap();
    assert_eq!(report.problems.len(), 1);
    let problem = &report.problems[0];
    assert_eq!(problem.user_id, "ann");
    assert_eq!(problem.balance_micros, 8_065);
    assert_eq!(problem.entries_micros, 8_060);
    assert_eq!(problem.expected_balance_micros(), 8_060);
    assert!(
        problem.to_string().contains("entries sum to 8060"),
        "{problem}"
    );
}

#[tokio::test]
async fn sqlite_ledger_of_the_old_shape_is_migrated_into_a_statement() {
    let db = TestSqlite::new();
    old_ledger_is_migrated_into_a_statement(&db.url, "sqlite").await;
}

#[tokio::test]
async fn postgres_ledger_of_the_old_shape_is_migrated_into_a_statement() {
    let Some(db) = TestPostgres::create().await else {
        return;
    };
    old_ledger_is_migrated_into_a_statement(&db.url, "postgres").await;
}
