//! `CreditStore::write_batch` on every backend: a batch of settles and usage records lands as
//! if written one by one (in one transaction where the backend can), a hold settled twice in
//! one batch is charged once, and one bad write does not sink the rest of its batch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use llmgate_core::credits::{
    Credit, CreditKind, CreditStore, Hold, HoldRequest, KeySource, LedgerWrite, UsageGroup,
    UsageQuery, UsageRecord, Written,
};
use support::*;

fn usage(user_id: &str, request_id: &str, cost_micros: i64) -> UsageRecord {
    UsageRecord {
        user_id: user_id.into(),
        request_id: request_id.into(),
        model: "m".into(),
        provider: "p".into(),
        key_source: KeySource::Platform,
        prompt_tokens: 10,
        completion_tokens: 20,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        reasoning_tokens: 0,
        cost_micros,
        at: 1_700_000_000,
    }
}

async fn funded(store: &dyn CreditStore, user_id: &str, micros: i64) {
    store
        .credit(Credit {
            user_id: user_id.into(),
            kind: CreditKind::TopUp,
            amount_micros: micros,
            idempotency_key: format!("fund:{user_id}"),
            reason: "test".into(),
        })
        .await
        .unwrap();
}

async fn hold(store: &dyn CreditStore, user_id: &str, request_id: &str, micros: i64) -> Hold {
    store
        .hold(HoldRequest {
            user_id: user_id.into(),
            request_id: request_id.into(),
            amount_micros: micros,
            ttl_secs: 600,
            budget: None,
        })
        .await
        .unwrap()
}

async fn requests_of(store: &dyn CreditStore, user_id: &str) -> u64 {
    usage_of(store, user_id).await.0
}

/// A user's usage totals: (requests, prompt tokens, cost).
async fn usage_of(store: &dyn CreditStore, user_id: &str) -> (u64, u64, i64) {
    let rows = store
        .usage(&UsageQuery {
            user_id: Some(user_id.into()),
            from_day: None,
            to_day: None,
            group_by: UsageGroup::Model,
        })
        .await
        .unwrap();
    (
        rows.iter().map(|row| row.requests).sum(),
        rows.iter().map(|row| row.prompt_tokens).sum(),
        rows.iter().map(|row| row.cost_micros).sum(),
    )
}

async fn batch_lands_as_if_written_one_by_one(fixture: Fixture) {
    let store = fixture.store.as_ref();
    funded(store, "ann", 1_000).await;
    funded(store, "bob", 1_000).await;
    let ann_1 = hold(store, "ann", "a1", 300).await;
    let ann_2 = hold(store, "ann", "a2", 300).await;
    let bob_1 = hold(store, "bob", "b1", 500).await;
    let writes = vec![
        LedgerWrite::Settle {
            hold: ann_1.clone(),
            usage: usage("ann", "a1", 100),
        },
        LedgerWrite::Usage(usage("cid", "c1", 0)),
        LedgerWrite::Settle {
            hold: bob_1,
            usage: usage("bob", "b1", 900),
        },
        LedgerWrite::Settle {
            hold: ann_2,
            usage: usage("ann", "a2", 50),
        },
        // The same hold again: settled already, a no-op.
        LedgerWrite::Settle {
            hold: ann_1,
            usage: usage("ann", "a1", 100),
        },
    ];
    let results = store.write_batch(&writes).await;
    assert_eq!(results.len(), writes.len());
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(store.balance("ann").await.unwrap(), 1_000 - 100 - 50);
    // A charge never exceeds its hold.
    assert_eq!(store.balance("bob").await.unwrap(), 1_000 - 500);
    let ann = ledger_totals(store, "ann").await;
    assert_eq!(ann.charges, 150, "{ann:?}");
    // Usage counts each settled request once, at its charge.
    assert_eq!(usage_of(store, "ann").await, (2, 20, 150));
    assert_eq!(usage_of(store, "bob").await, (1, 10, 500));
    assert_eq!(usage_of(store, "cid").await, (1, 10, 0));
}

async fn a_bad_write_does_not_sink_its_batch(fixture: Fixture) {
    let store = fixture.store.as_ref();
    funded(store, "ann", 1_000).await;
    let held = hold(store, "ann", "a1", 300).await;
    let writes = vec![
        LedgerWrite::Usage(usage("cid", "c1", 0)),
        // A negative cost is refused.
        LedgerWrite::Usage(usage("cid", "c2", -5)),
        LedgerWrite::Settle {
            hold: held,
            usage: usage("ann", "a1", 120),
        },
    ];
    let results = store.write_batch(&writes).await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(results[1].is_err());
    assert_eq!(store.balance("ann").await.unwrap(), 880);
    assert_eq!(requests_of(store, "cid").await, 1);
}

async fn a_refused_hold_fails_alone(fixture: Fixture) {
    let store = fixture.store.as_ref();
    funded(store, "ann", 1_000).await;
    let request = |request_id: &str, amount_micros: i64| HoldRequest {
        user_id: "ann".into(),
        request_id: request_id.into(),
        amount_micros,
        ttl_secs: 600,
        budget: None,
    };
    let held = hold(store, "ann", "a0", 400).await;
    let results = store
        .write_batch(&[
            LedgerWrite::Hold(request("a1", 500)),
            // 1,000 − 400 − 500 leaves 100: refused, nothing changed.
            LedgerWrite::Hold(request("a2", 300)),
            // Settling the first hold gives 300 back (balance 400), so the same ask now fits.
            LedgerWrite::Settle {
                hold: held,
                usage: usage("ann", "a0", 100),
            },
            LedgerWrite::Hold(request("a3", 300)),
        ])
        .await;
    assert!(matches!(&results[0], Ok(Written::Held(h)) if h.amount_micros == 500));
    assert_eq!(
        results[1].as_ref().unwrap_err().kind(),
        llmgate_core::ErrorKind::InsufficientCredits
    );
    assert!(
        matches!(&results[2], Ok(Written::Settled(Some(400)))),
        "{results:?}"
    );
    assert!(matches!(&results[3], Ok(Written::Held(_))));
    assert_eq!(store.balance("ann").await.unwrap(), 1_000 - 100 - 500 - 300);
}

#[tokio::test]
async fn a_refused_hold_fails_alone_in_memory() {
    a_refused_hold_fails_alone(memory_fixture().await.unwrap()).await;
}

#[tokio::test]
async fn a_refused_hold_fails_alone_on_sqlite() {
    a_refused_hold_fails_alone(sqlite_fixture().await.unwrap()).await;
}

#[tokio::test]
async fn a_refused_hold_fails_alone_on_postgres() {
    if let Some(fixture) = postgres_fixture().await {
        a_refused_hold_fails_alone(fixture).await;
    }
}

#[tokio::test]
async fn batch_lands_as_if_written_one_by_one_in_memory() {
    batch_lands_as_if_written_one_by_one(memory_fixture().await.unwrap()).await;
}

#[tokio::test]
async fn batch_lands_as_if_written_one_by_one_on_sqlite() {
    batch_lands_as_if_written_one_by_one(sqlite_fixture().await.unwrap()).await;
}

#[tokio::test]
async fn batch_lands_as_if_written_one_by_one_on_postgres() {
    if let Some(fixture) = postgres_fixture().await {
        batch_lands_as_if_written_one_by_one(fixture).await;
    }
}

#[tokio::test]
async fn batch_lands_as_if_written_one_by_one_behind_the_redis_cache() {
    if let Some(fixture) = cached_sqlite_fixture().await {
        let store = fixture.store.clone();
        // Read (and so cache) the balance first: the batch must invalidate it.
        funded(store.as_ref(), "ann", 1_000).await;
        let held = hold(store.as_ref(), "ann", "a0", 200).await;
        assert_eq!(store.balance("ann").await.unwrap(), 800);
        store
            .write_batch(&[LedgerWrite::Settle {
                hold: held,
                usage: usage("ann", "a0", 40),
            }])
            .await;
        assert_eq!(store.balance("ann").await.unwrap(), 960);
    }
}

#[tokio::test]
async fn a_bad_write_does_not_sink_its_batch_on_sqlite() {
    a_bad_write_does_not_sink_its_batch(sqlite_fixture().await.unwrap()).await;
}

#[tokio::test]
async fn a_bad_write_does_not_sink_its_batch_on_postgres() {
    if let Some(fixture) = postgres_fixture().await {
        a_bad_write_does_not_sink_its_batch(fixture).await;
    }
}

#[tokio::test]
async fn sqlite_writes_from_many_tasks_all_land() {
    let fixture = sqlite_fixture().await.unwrap();
    let store = fixture.store.clone();
    funded(store.as_ref(), "ann", 1_000_000).await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let held = hold(store.as_ref(), "ann", &format!("r{i}"), 1_000).await;
            store
                .write_batch(&[
                    LedgerWrite::Settle {
                        hold: held,
                        usage: usage("ann", &format!("r{i}"), 10),
                    },
                    LedgerWrite::Usage(usage("cid", &format!("c{i}"), 0)),
                ])
                .await
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap().iter().all(Result::is_ok));
    }
    assert_eq!(store.balance("ann").await.unwrap(), 1_000_000 - 32 * 10);
    assert_eq!(requests_of(store.as_ref(), "cid").await, 32);
}
