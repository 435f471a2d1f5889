//! Balance leases (`GatewayBuilder::ledger_leases`): holds are served from memory against a
//! slice of the balance taken in one step; concurrent holds never spend more than the balance,
//! an idle lease goes back, and a shutdown gives every lease back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use llmgate_core::*;
use llmgate_core::{
    credits::{CreditStore, Page, TransactionKind},
    memory::MemoryCreditStore,
};
use support::*;

fn leasing(store: Arc<dyn CreditStore>, idle: Duration, calls: &Calls) -> Gateway {
    Gateway::builder()
        .provider(Scripted::always("p", ok(), calls))
        .credit_store(store)
        .model(priced("m", "p"))
        .ledger_write_behind(1000)
        .ledger_leases(idle)
        .build()
}

/// The user's ledger, oldest first.
async fn entries(store: &dyn CreditStore, user: &str) -> Vec<credits::Transaction> {
    let page = Page {
        limit: 10_000,
        before_id: None,
    };
    let mut entries = store.transactions(user, page).await.unwrap();
    entries.reverse();
    entries
}

/// The sum of the user's entries: the balance with no lease open (a lease is open while the
/// store's spendable balance, which counts leases, is higher).
async fn ledger_sum(store: &dyn CreditStore, user: &str) -> i64 {
    entries(store, user)
        .await
        .iter()
        .map(|e| e.amount_micros)
        .sum()
}

async fn lease_takes(store: &dyn CreditStore, user: &str) -> usize {
    let entries = entries(store, user).await;
    entries
        .iter()
        .filter(|e| e.kind == TransactionKind::Hold)
        .inspect(|e| assert!(e.reason.as_deref().unwrap_or("").starts_with("lease ")))
        .count()
}

async fn concurrently(gateway: &Gateway, user: &str, requests: usize) -> (i64, usize) {
    let tasks: Vec<_> = (0..requests)
        .map(|_| {
            let (gateway, user) = (gateway.clone(), user.to_owned());
            tokio::spawn(async move {
                gateway
                    .chat(&Caller::user(user.as_str(), tier()), request("m"))
                    .await
                    .map(|done| done.cost_micros)
            })
        })
        .collect();
    let (mut charged, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(cost) => charged += cost,
            Err(error) => {
                assert_eq!(error.kind(), ErrorKind::InsufficientCredits, "{error}");
                refused += 1;
            }
        }
    }
    (charged, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_holds_from_a_lease_never_spend_more_than_the_balance() {
    let hold = hold_of_one_request();
    let calls = Calls::default();
    let store = Arc::new(MemoryCreditStore::new());
    let gateway = leasing(store.clone(), Duration::from_secs(3600), &calls);
    // Enough for exactly five holds at once; each answer then costs less than its hold.
    let funded = hold * 5 + hold / 2;
    fund(&gateway, "u", funded).await;
    let (charged, refused) = concurrently(&gateway, "u", 40).await;
    assert_eq!(charged, CHARGE * (40 - refused) as i64);
    assert!(refused > 0, "some requests were refused");
    gateway.settled().await;
    let balance = store.balance("u").await.unwrap();
    assert_eq!(balance, funded - charged, "the ledger holds every charge");
    assert_eq!(
        ledger_sum(&*store, "u").await,
        balance,
        "every lease went back"
    );
    assert_eq!(gateway.credits().balance("u").await.unwrap(), balance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_funded_account_is_served_from_few_takes() {
    let calls = Calls::default();
    let store = Arc::new(MemoryCreditStore::new());
    let gateway = leasing(store.clone(), Duration::from_secs(3600), &calls);
    let funded = 1_000_000_000_000;
    fund(&gateway, "u", funded).await;
    let (charged, refused) = concurrently(&gateway, "u", 200).await;
    assert_eq!((charged, refused), (CHARGE * 200, 0));
    let takes = lease_takes(&*store, "u").await;
    assert!(takes < 50, "{takes} takes for 200 requests");
    // What a client reads while the lease is open: every charge, nothing held.
    assert_eq!(
        gateway.credits().balance("u").await.unwrap(),
        funded - charged
    );
    gateway.settled().await;
    assert_eq!(ledger_sum(&*store, "u").await, funded - charged);
    let entries = entries(&*store, "u").await;
    let charges = entries.iter().filter(|e| e.kind == TransactionKind::Charge);
    assert_eq!(charges.count(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_lease_goes_back_to_the_balance() {
    let calls = Calls::default();
    let store = Arc::new(MemoryCreditStore::new());
    let gateway = leasing(store.clone(), Duration::from_millis(100), &calls);
    let funded = 1_000_000_000;
    fund(&gateway, "u", funded).await;
    gateway
        .chat(&Caller::user("u", tier()), request("m"))
        .await
        .unwrap();
    let spendable = funded - CHARGE;
    // Right after the answer the lease is still out (the ledger's sum is the balance without it).
    assert!(ledger_sum(&*store, "u").await < spendable);
    let mut waited = Duration::ZERO;
    while ledger_sum(&*store, "u").await != spendable {
        assert!(
            waited < Duration::from_secs(5),
            "the idle lease never went back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    assert_eq!(store.balance("u").await.unwrap(), spendable);
    let last = entries(&*store, "u").await.pop().unwrap();
    assert_eq!(last.kind, TransactionKind::Release);
    assert!(last.reason.unwrap().starts_with("lease "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_gives_every_lease_back() {
    let calls = Calls::default();
    let store = Arc::new(MemoryCreditStore::new());
    let gateway = leasing(store.clone(), Duration::from_secs(3600), &calls);
    for user in ["a", "b", "c"] {
        fund(&gateway, user, 1_000_000_000).await;
        concurrently(&gateway, user, 5).await;
        assert!(ledger_sum(&*store, user).await < 1_000_000_000 - 5 * CHARGE);
    }
    gateway.settled().await;
    for user in ["a", "b", "c"] {
        assert_eq!(ledger_sum(&*store, user).await, 1_000_000_000 - 5 * CHARGE);
    }
}
