//! Write-behind (`GatewayBuilder::ledger_write_behind`): answers do not wait for the settle or
//! usage write, reads through `Gateway::credits` see every write queued before them, a hold
//! is committed after the settles queued before it, and shutdown's `settled` waits for the
//! queue.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use llmgate_core::credits::{UsageGroup, UsageQuery};
use llmgate_core::*;
use support::*;

fn gateway(store: Arc<Gated>, calls: &Calls) -> Gateway {
    Gateway::builder()
        .provider(Scripted::always("p", ok(), calls))
        .credit_store(store)
        .model(priced("m", "p"))
        .ledger_write_behind(100)
        .build()
}

#[tokio::test]
async fn an_answer_does_not_wait_for_its_settle() {
    let calls = Calls::default();
    let store = Gated::closed(GatedWrites::SettlesAndUsage);
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
    let store = Gated::closed(GatedWrites::SettlesAndUsage);
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
    let store = Gated::closed(GatedWrites::SettlesAndUsage);
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
    let store = Gated::closed(GatedWrites::SettlesAndUsage);
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
