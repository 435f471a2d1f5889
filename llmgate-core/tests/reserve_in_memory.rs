//! Balances reserved in memory (`GatewayBuilder::ledger_reserve_in_memory`): a paid request
//! does not wait for its hold's commit, yet no balance is overspent under concurrency, the
//! ledger ends up with the same hold, charge and release entries, and money that arrives
//! outside the queue (a grant written straight to the store) is found before a refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use llmgate_core::*;
use llmgate_core::{
    credits::{Credit, CreditKind, CreditStore},
    memory::MemoryCreditStore,
};
use support::*;

fn reserving(store: Arc<dyn CreditStore>, step: Step, calls: &Calls) -> Gateway {
    Gateway::builder()
        .provider(Scripted::always("p", step, calls))
        .credit_store(store)
        .model(priced("m", "p"))
        .ledger_write_behind(1000)
        .ledger_reserve_in_memory()
        .build()
}

#[tokio::test]
async fn a_paid_answer_does_not_wait_for_its_hold_to_be_written() {
    let calls = Calls::default();
    let store = Gated::closed(GatedWrites::Holds);
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

    store.open();
    gateway.settled().await;
    assert_eq!(ledger_counts(&gateway, "u").await, (1, 1, 0));
    assert_eq!(
        gateway.credits().balance("u").await.unwrap(),
        10_000_000 - CHARGE
    );
}

#[tokio::test]
async fn concurrent_requests_never_spend_more_than_the_balance() {
    let hold = hold_of_one_request();
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
    let hold = hold_of_one_request();
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
