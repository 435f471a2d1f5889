//! Balances reserved in memory (`GatewayBuilder::ledger_reserve_in_memory`): a paid request
//! does not wait for its hold's commit, yet no balance is overspent under concurrency, the
//! ledger ends up with the same hold, charge and release entries, and money that arrives
//! outside the queue (a grant written straight to the store) is found before a refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use llmgate_core::*;
use support::*;
use tokio::sync::Semaphore;

/// The in-memory ledger whose holds wait until the test opens the gate.
#[derive(Debug)]
struct HoldsGated {
    inner: MemoryCreditStore,
    gate: Semaphore,
}

#[async_trait]
impl CreditStore for HoldsGated {
    async fn hold(&self, request: HoldRequest) -> Result<Hold> {
        let _pass = self.gate.acquire().await;
        self.inner.hold(request).await
    }
    async fn settle(&self, hold: &Hold, usage: &UsageRecord) -> Result<i64> {
        self.inner.settle(hold, usage).await
    }
    async fn release(&self, hold: &Hold) -> Result<()> {
        self.inner.release(hold).await
    }
    async fn record_usage(&self, usage: &UsageRecord) -> Result<()> {
        self.inner.record_usage(usage).await
    }
    async fn credit(&self, credit: Credit) -> Result<CreditOutcome> {
        self.inner.credit(credit).await
    }
    async fn balance(&self, user_id: &str) -> Result<i64> {
        self.inner.balance(user_id).await
    }
    async fn transactions(&self, user_id: &str, page: Page) -> Result<Vec<Transaction>> {
        self.inner.transactions(user_id, page).await
    }
    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>> {
        self.inner.usage(query).await
    }
    async fn reclaim_expired(&self) -> Result<u64> {
        self.inner.reclaim_expired().await
    }
}

fn reserving(store: Arc<dyn CreditStore>, step: Step, calls: &Calls) -> Gateway {
    Gateway::builder()
        .provider(Scripted::always("p", step, calls))
        .credit_store(store)
        .model(priced("m", "p"))
        .ledger_write_behind(1000)
        .ledger_reserve_in_memory()
        .build()
}

/// The hold `request("m")` takes, read off an unreserved gateway's ledger.
async fn hold_of_one_request() -> i64 {
    let calls = Calls::default();
    let store = Arc::new(MemoryCreditStore::new());
    let gateway = Gateway::builder()
        .provider(Scripted::always("p", ok(), &calls))
        .credit_store(store.clone())
        .model(priced("m", "p"))
        .build();
    fund(&gateway, "probe", 100_000_000).await;
    let ledger = store
        .transactions(
            "probe",
            Page {
                limit: 10,
                before_id: None,
            },
        )
        .await
        .unwrap();
    assert!(ledger.iter().all(|t| t.kind != TransactionKind::Hold));
    let caller = Caller::user("probe", tier());
    gateway.chat(&caller, request("m")).await.unwrap();
    let ledger = store
        .transactions(
            "probe",
            Page {
                limit: 10,
                before_id: None,
            },
        )
        .await
        .unwrap();
    -ledger
        .iter()
        .find(|t| t.kind == TransactionKind::Hold)
        .unwrap()
        .amount_micros
}

/// The charge of one answer (400 + 600 tokens).
const CHARGE: i64 = 700_000;

#[tokio::test]
async fn a_paid_answer_does_not_wait_for_its_hold_to_be_written() {
    let calls = Calls::default();
    let store = Arc::new(HoldsGated {
        inner: MemoryCreditStore::new(),
        gate: Semaphore::new(0),
    });
    let gateway = reserving(store.clone(), ok(), &calls);
    fund(&gateway, "u", 10_000_000).await;
    let done = tokio::time::timeout(
        Duration::from_secs(10),
        gateway.chat(&Caller::user("u", tier()), request("m")),
    )
    .await
    .expect("answered while the hold's write was blocked")
    .unwrap();
    assert_eq!(done.cost_micros, CHARGE);

    store.gate.add_permits(100);
    gateway.settled().await;
    assert_eq!(ledger_counts(&gateway, "u").await, (1, 1, 0));
    assert_eq!(
        gateway.credits().balance("u").await.unwrap(),
        10_000_000 - CHARGE
    );
}

#[tokio::test]
async fn concurrent_requests_never_spend_more_than_the_balance() {
    let hold = hold_of_one_request().await;
    let calls = Calls::default();
    let store = Arc::new(MemoryCreditStore::new());
    let gateway = reserving(store.clone(), ok(), &calls);
    // Enough for exactly five holds at once; each answer then costs less than its hold.
    let funded = hold * 5 + hold / 2;
    fund(&gateway, "u", funded).await;
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let gateway = gateway.clone();
            tokio::spawn(async move {
                gateway
                    .chat(&Caller::user("u", tier()), request("m"))
                    .await
                    .map(|done| done.cost_micros)
            })
        })
        .collect();
    let mut charged = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(cost) => charged += cost,
            Err(error) => {
                assert_eq!(error.kind(), ErrorKind::InsufficientCredits, "{error}");
                refused += 1;
            }
        }
    }
    gateway.settled().await;
    let balance = store.balance("u").await.unwrap();
    assert!(balance >= 0);
    assert_eq!(balance, funded - charged, "the ledger holds every charge");
    assert!(refused > 0, "some requests were refused");
    let (holds, charges, releases) = ledger_counts(&gateway, "u").await;
    assert_eq!(
        (holds, charges, releases),
        ((40 - refused), 40 - refused, 0)
    );
    assert_eq!(charged, CHARGE * (40 - refused) as i64);
}

#[tokio::test]
async fn money_written_around_the_queue_is_found_before_a_refusal() {
    let hold = hold_of_one_request().await;
    let calls = Calls::default();
    let store = Arc::new(MemoryCreditStore::new());
    let gateway = reserving(store.clone(), ok(), &calls);
    fund(&gateway, "u", hold).await;
    let caller = Caller::user("u", tier());
    gateway.chat(&caller, request("m")).await.unwrap();
    let refused = gateway.chat(&caller, request("m")).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InsufficientCredits);

    // A monthly grant goes straight to the store, not through the gateway.
    store
        .credit(Credit {
            user_id: "u".into(),
            kind: CreditKind::Grant,
            amount_micros: hold,
            idempotency_key: "grant".into(),
            reason: "test".into(),
        })
        .await
        .unwrap();
    gateway.chat(&caller, request("m")).await.unwrap();
    gateway.settled().await;
    assert_eq!(store.balance("u").await.unwrap(), 2 * hold - 2 * CHARGE);
}

#[tokio::test]
async fn a_failed_request_gives_its_reserved_hold_back_through_the_queue() {
    let calls = Calls::default();
    let store = Arc::new(MemoryCreditStore::new());
    let gateway = reserving(store.clone(), Step::Fail(500), &calls);
    fund(&gateway, "u", 10_000_000).await;
    let caller = Caller::user("u", tier());
    gateway.chat(&caller, request("m")).await.unwrap_err();
    gateway.settled().await;
    assert_eq!(ledger_counts(&gateway, "u").await, (1, 0, 1));
    assert_eq!(store.balance("u").await.unwrap(), 10_000_000);
}
