//! Ledger work that outlives its request: a dropped stream's settle is tracked until written
//! (what a clean shutdown waits for), and an uncharged answer survives a ledger outage.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use llmgate_core::credits::forwarding::ForwardingCreditStore;
use llmgate_core::*;
use llmgate_core::{
    catalog::Deployment,
    credits::{
        CreditStore, Hold, HoldRequest, LedgerWrite, UsageRecord, Written, write_one_by_one,
    },
    keys::Secret,
    memory::MemoryCreditStore,
    pricing::ModelPrice,
};
use support::*;

/// The in-memory ledger behind a slow or broken connection.
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryCreditStore,
    /// Every write waits this long first.
    delay: Duration,
    down: AtomicBool,
}

impl Flaky {
    async fn write(&self) -> Result<()> {
        tokio::time::sleep(self.delay).await;
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::unavailable("database unavailable"));
        }
        Ok(())
    }
}

#[async_trait]
impl ForwardingCreditStore for Flaky {
    fn inner(&self) -> &dyn CreditStore {
        &self.inner
    }
    async fn hold(&self, request: HoldRequest) -> Result<Hold> {
        self.write().await?;
        self.inner.hold(request).await
    }
    async fn settle(&self, hold: &Hold, usage: &UsageRecord) -> Result<i64> {
        self.write().await?;
        self.inner.settle(hold, usage).await
    }
    async fn release(&self, hold: &Hold) -> Result<()> {
        self.write().await?;
        self.inner.release(hold).await
    }
    async fn record_usage(&self, usage: &UsageRecord) -> Result<()> {
        self.write().await?;
        self.inner.record_usage(usage).await
    }
    /// Each write through the delay and the outage above.
    async fn write_batch(&self, writes: &[LedgerWrite]) -> Vec<Result<Written>> {
        write_one_by_one(self, writes).await
    }
}

fn gateway(store: Arc<Flaky>, provider: Arc<Scripted>, model: Deployment) -> Gateway {
    Gateway::builder()
        .provider(provider)
        .platform_key("p", Secret::new("sk-platform-0000"))
        .credit_store(store)
        .model(model)
        .build()
}

#[tokio::test]
async fn settled_waits_for_the_settle_of_a_dropped_stream() {
    let calls = Calls::default();
    let store = Arc::new(Flaky {
        delay: Duration::from_millis(150),
        ..Flaky::default()
    });
    let gateway = gateway(
        store.clone(),
        Scripted::always("p", ok(), &calls),
        priced("m", "p"),
    );
    fund(&gateway, "u", 10_000_000).await;
    let mut stream = gateway
        .chat_stream(&Caller::user("u", tier()), request("m"))
        .await
        .unwrap();
    assert_eq!(gateway.pending_settlements(), 1);
    stream.next().await.unwrap().unwrap();
    drop(stream);
    // The settle runs in the background, slowly; it is still owed.
    assert_eq!(gateway.pending_settlements(), 1);
    assert_eq!(ledger_counts(&gateway, "u").await, (1, 0, 0));
    gateway.settled().await;
    assert_eq!(gateway.pending_settlements(), 0);
    assert_eq!(ledger_counts(&gateway, "u").await, (1, 1, 0));
}

#[tokio::test]
async fn a_request_cancelled_mid_settle_still_settles() {
    let calls = Calls::default();
    let store = Arc::new(Flaky {
        delay: Duration::from_millis(100),
        ..Flaky::default()
    });
    let gateway = gateway(
        store.clone(),
        Scripted::always("p", ok(), &calls),
        priced("m", "p"),
    );
    fund(&gateway, "u", 10_000_000).await;
    let request_task = tokio::spawn({
        let gateway = gateway.clone();
        async move { gateway.chat(&Caller::user("u", tier()), request("m")).await }
    });
    // The hold is written after 100 ms and the settle starts right after; cut it mid-way.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(ledger_counts(&gateway, "u").await, (1, 0, 0));
    request_task.abort();
    gateway.settled().await;
    assert_eq!(ledger_counts(&gateway, "u").await, (1, 1, 0));
}

#[tokio::test]
async fn an_uncharged_answer_is_served_when_usage_cannot_be_recorded() {
    let calls = Calls::default();
    let store = Arc::new(Flaky::default());
    store.down.store(true, Ordering::SeqCst);
    let free = Deployment::new("free", "p", "free-upstream").with_price(ModelPrice::default());
    let gateway = gateway(store, Scripted::always("p", ok(), &calls), free);
    let done = gateway
        .chat(&Caller::user("u", tier()), request("free"))
        .await
        .unwrap();
    assert_eq!(done.cost_micros, 0);
    assert_eq!(done.response.choices.len(), 1);
    assert_eq!(gateway.pending_settlements(), 0);
}

#[tokio::test]
async fn a_paid_request_is_refused_before_any_call_when_the_ledger_is_down() {
    let calls = Calls::default();
    let store = Arc::new(Flaky::default());
    let gateway = gateway(
        store.clone(),
        Scripted::always("p", ok(), &calls),
        priced("m", "p"),
    );
    fund(&gateway, "u", 10_000_000).await;
    store.down.store(true, Ordering::SeqCst);
    let error = gateway
        .chat(&Caller::user("u", tier()), request("m"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 503);
    assert!(calls.lock().unwrap().is_empty(), "no upstream call");
    assert_eq!(gateway.pending_settlements(), 0);
}

#[tokio::test]
async fn route_reports_the_time_spent_upstream() {
    let calls = Calls::default();
    let provider = Scripted::always(
        "p",
        Step::Slow {
            delay: Duration::from_millis(60),
        },
        &calls,
    );
    let gateway = gateway(Arc::new(Flaky::default()), provider, priced("m", "p"));
    let done = gateway.chat(&Caller::admin(), request("m")).await.unwrap();
    assert!(
        done.route.upstream_time >= Duration::from_millis(60),
        "{:?}",
        done.route.upstream_time
    );
}
