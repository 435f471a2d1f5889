//! Write-behind (`GatewayBuilder::ledger_write_behind`): answers do not wait for the settle or
//! usage write, reads through `Gateway::credits` see every write queued before them, a hold
//! is committed after the settles queued before it, and shutdown's `settled` waits for the
//! queue.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use llmgate_core::*;
use support::*;
use tokio::sync::Semaphore;

/// The in-memory ledger whose settles and usage writes wait until the test opens the gate.
#[derive(Debug)]
struct Gated {
    inner: MemoryCreditStore,
    gate: Semaphore,
}

impl Gated {
    fn closed() -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryCreditStore::new(),
            gate: Semaphore::new(0),
        })
    }

    fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

#[async_trait]
impl CreditStore for Gated {
    async fn hold(&self, request: HoldRequest) -> Result<Hold> {
        self.inner.hold(request).await
    }
    async fn settle(&self, hold: &Hold, usage: &UsageRecord) -> Result<i64> {
        let _pass = self.gate.acquire().await;
        self.inner.settle(hold, usage).await
    }
    async fn release(&self, hold: &Hold) -> Result<()> {
        self.inner.release(hold).await
    }
    async fn record_usage(&self, usage: &UsageRecord) -> Result<()> {
        let _pass = self.gate.acquire().await;
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

fn gateway(store: Arc<Gated>, calls: &Calls) -> Gateway {
    Gateway::builder()
        .provider(Scripted::always("p", ok(), calls))
        .credit_store(store)
        .model(priced("m", "p"))
        .ledger_write_behind(100)
        .build()
}

/// The hold `request("m")` takes: its prompt bound and 1,000 output tokens at the test price.
fn hold_of_one_request() -> i64 {
    let terms = PriceTerms {
        price: ModelPrice::new(dec("0.002"), dec("0.002")),
        markup: dec("0.4"),
        multiplier: dec("0.25"),
        credits_per_usd: dec("1000"),
    };
    terms
        .charge_micros(tokens::prompt_upper_bound(&request("m")), 1000)
        .unwrap()
}

/// The charge of one answer (400 + 600 tokens).
const CHARGE: i64 = 700_000;

#[tokio::test]
async fn an_answer_does_not_wait_for_its_settle() {
    let calls = Calls::default();
    let store = Gated::closed();
    let gateway = gateway(store.clone(), &calls);
    fund(&gateway, "u", 10_000_000).await;
    let done = tokio::time::timeout(
        Duration::from_secs(10),
        gateway.chat(&Caller::user("u", tier()), request("m")),
    )
    .await
    .expect("the answer came while the settle was still blocked")
    .unwrap();
    assert_eq!(done.cost_micros, CHARGE);
    assert_eq!(gateway.pending_settlements(), 1, "the settle is owed");
    // A read through the gateway waits for the queued settle.
    let balance = tokio::spawn({
        let credits = gateway.credits().clone();
        async move { credits.balance("u").await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!balance.is_finished());
    store.open();
    assert_eq!(balance.await.unwrap(), 10_000_000 - CHARGE);
    gateway.settled().await;
    assert_eq!(gateway.pending_settlements(), 0);
    assert_eq!(ledger_counts(&gateway, "u").await, (1, 1, 0));
}

#[tokio::test]
async fn a_stream_ends_with_its_cost_before_the_settle_is_written() {
    let calls = Calls::default();
    let store = Gated::closed();
    let gateway = gateway(store.clone(), &calls);
    fund(&gateway, "u", 10_000_000).await;
    let stream = gateway
        .chat_stream(&Caller::user("u", tier()), request("m"))
        .await
        .unwrap();
    let chunks: Vec<_> = tokio::time::timeout(Duration::from_secs(10), stream.collect())
        .await
        .expect("the stream ended while the settle was still blocked");
    let last = chunks.last().unwrap().as_ref().unwrap();
    assert_eq!(last.extra["llmgate"]["cost_micros"], CHARGE);
    assert_eq!(gateway.pending_settlements(), 1);
    store.open();
    gateway.settled().await;
    assert_eq!(
        gateway.credits().balance("u").await.unwrap(),
        10_000_000 - CHARGE
    );
}

#[tokio::test]
async fn a_hold_is_placed_after_the_settles_queued_before_it() {
    let calls = Calls::default();
    let store = Gated::closed();
    let gateway = gateway(store.clone(), &calls);
    let hold = hold_of_one_request();
    assert!(hold > CHARGE);
    // Enough for two requests once the first is settled, not while its whole hold is out.
    let funds = hold + CHARGE + (hold - CHARGE) / 2;
    fund(&gateway, "u", funds).await;
    let user = Caller::user("u", tier());
    gateway.chat(&user, request("m")).await.unwrap();
    let second = tokio::spawn({
        let gateway = gateway.clone();
        let user = user.clone();
        async move { gateway.chat(&user, request("m")).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !second.is_finished(),
        "its hold waits behind the queued settle"
    );
    store.open();
    let second = second.await.unwrap().unwrap();
    assert_eq!(second.cost_micros, CHARGE);
    gateway.settled().await;
    assert_eq!(
        gateway.credits().balance("u").await.unwrap(),
        funds - 2 * CHARGE
    );
}

#[tokio::test]
async fn uncharged_usage_is_recorded_behind_the_answer() {
    let calls = Calls::default();
    let store = Gated::closed();
    let gateway = gateway(store.clone(), &calls);
    let done = gateway.chat(&Caller::admin(), request("m")).await.unwrap();
    assert_eq!(done.cost_micros, 0);
    assert_eq!(gateway.pending_settlements(), 1);
    store.open();
    let rows = gateway
        .credits()
        .usage(&UsageQuery {
            user_id: Some("admin".into()),
            from_day: None,
            to_day: None,
            group_by: UsageGroup::Model,
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].requests, rows[0].cost_micros), (1, 0));
}
