#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `llmgate ledger verify`: passes a clean ledger, and lists an account whose balance was
//! corrupted and a key budget whose held amount was (exit 1), on SQLite and PostgreSQL.

use std::process::Command;
use std::sync::Arc;

use llmgate_core::credits::{
    BudgetHold, Credit, CreditKind, CreditStore, HoldRequest, KeySource, UsageRecord,
};
use llmgate_credits::{SqlCreditStore, SqlPool};
use llmgate_testkit::db::{TestPostgres, TestSqlite};

const BIN: &str = env!("CARGO_BIN_EXE_llmgate");

/// A little real traffic on the ledger: a top-up, a settled hold, a released one, an open one.
async fn some_traffic(store: &SqlCreditStore) {
    let ledger: Arc<dyn CreditStore> = match store.clone() {
        SqlCreditStore::Sqlite(s) => Arc::new(s),
        SqlCreditStore::Postgres(s) => Arc::new(s),
    };
    for user in ["ann", "bob"] {
        ledger
            .credit(Credit {
                user_id: user.into(),
                kind: CreditKind::TopUp,
                amount_micros: 10_000_000,
                idempotency_key: format!("top-up-{user}"),
                reason: "test".into(),
            })
            .await
            .unwrap();
        let mut holds = Vec::new();
        for i in 0..3 {
            holds.push(
                ledger
                    .hold(HoldRequest {
                        user_id: user.into(),
                        request_id: format!("{user}-{i}"),
                        amount_micros: 700_000,
                        ttl_secs: 3_600,
                        budget: None,
                    })
                    .await
                    .unwrap(),
            );
        }
        let usage = UsageRecord {
            user_id: user.into(),
            request_id: format!("{user}-0"),
            model: "m".into(),
            provider: "p".into(),
            prompt_tokens: 400,
            completion_tokens: 600,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            cost_micros: 350_000,
            key_source: KeySource::Platform,
            at: 1_772_323_200,
        };
        ledger.settle(&holds[0], &usage).await.unwrap();
        ledger.release(&holds[1]).await.unwrap();
    }
    // One open hold against an API key's budget.
    ledger
        .hold(HoldRequest {
            user_id: "ann".into(),
            request_id: "ann-budgeted".into(),
            amount_micros: 100_000,
            ttl_secs: 3_600,
            budget: Some(BudgetHold {
                key_id: "key_ann".into(),
                period_start: 0,
                max_micros: 1_000_000,
            }),
        })
        .await
        .unwrap();
}

fn verify(database_url: &str) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("llmgate-verify-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("llmgate.yaml");
    std::fs::write(
        &config,
        format!("storage:\n  database_url: {database_url}\n"),
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["ledger", "verify", "--config"])
        .arg(&config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code() == Some(0) || output.status.code() == Some(1),
        "{stdout}{stderr}"
    );
    (output.status.success(), stdout)
}

async fn verify_passes_a_clean_ledger_and_lists_a_corrupted_account(url: &str) {
    let store = SqlCreditStore::connect(url).await.unwrap();
    some_traffic(&store).await;
    let (ok, stdout) = verify(url);
    assert!(ok, "{stdout}");
    assert!(stdout.contains("ledger OK: 2 account(s)"), "{stdout}");

    let corrupt = "UPDATE credit_balances SET balance_micros = balance_micros + 208750000 \
                   WHERE user_id = 'bob'";
    match SqlPool::of(&store) {
        SqlPool::Sqlite(pool) => sqlx::query(corrupt).execute(&pool).await.map(drop),
        SqlPool::Postgres(pool) => sqlx::query(corrupt).execute(&pool).await.map(drop),
    }
    .unwrap();
    let (ok, stdout) = verify(url);
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains("1 of 2 account(s) do not add up"),
        "{stdout}"
    );
    assert!(stdout.contains("bob: balance"), "{stdout}");
    assert!(!stdout.contains("ann:"), "{stdout}");

    // A key budget that holds more than its open holds is listed too.
    let corrupt = "UPDATE key_spend SET held_micros = held_micros + 1 WHERE key_id = 'key_ann'";
    match SqlPool::of(&store) {
        SqlPool::Sqlite(pool) => sqlx::query(corrupt).execute(&pool).await.map(drop),
        SqlPool::Postgres(pool) => sqlx::query(corrupt).execute(&pool).await.map(drop),
    }
    .unwrap();
    let (ok, stdout) = verify(url);
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains(
            "key key_ann (period from 0): holds 100001 micros, but its open holds sum to 100000"
        ),
        "{stdout}"
    );
}

#[tokio::test]
async fn sqlite_ledger_verify_finds_a_corrupted_balance() {
    let db = TestSqlite::new();
    verify_passes_a_clean_ledger_and_lists_a_corrupted_account(&db.url).await;
}

#[tokio::test]
async fn postgres_ledger_verify_finds_a_corrupted_balance() {
    let Some(db) = TestPostgres::create().await else {
        return;
    };
    verify_passes_a_clean_ledger_and_lists_a_corrupted_account(&db.url).await;
}
