//! A crash leaves holds open; the next process (or another replica) gives them back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use llmgate_core::{CreditStore, HoldRequest, Page, TransactionKind};
use llmgate_credits::connect_credit_store;

use support::{Fixture, ledger_totals, top_up, unique};

async fn holds_survive_a_restart_and_are_reclaimed(fixture: Fixture) {
    let url = fixture.reopen.clone().unwrap();
    let user = unique("crashed-");
    top_up(&*fixture.store, &user, 10_000).await;
    let mut abandoned = Vec::new();
    for i in 0..3 {
        let hold = fixture
            .store
            .hold(HoldRequest {
                user_id: user.clone(),
                request_id: format!("req-{i}"),
                amount_micros: 1_000 + i,
                ttl_secs: 0,
            })
            .await
            .unwrap();
        abandoned.push(hold);
    }
    let in_flight = fixture
        .store
        .hold(HoldRequest {
            user_id: user.clone(),
            request_id: "still-running".into(),
            amount_micros: 2_000,
            ttl_secs: 3_600,
        })
        .await
        .unwrap();
    assert_eq!(fixture.store.balance(&user).await.unwrap(), 4_997);

    // "Crash": the store and its pool go away with the holds still open (the database
    // itself stays, in `_database`).
    let (store, _database) = fixture.into_parts();
    drop(store);
    let restarted: Arc<dyn CreditStore> = connect_credit_store(&url).await.unwrap();
    assert_eq!(restarted.balance(&user).await.unwrap(), 4_997);
    assert_eq!(restarted.reclaim_expired().await.unwrap(), 3);
    assert_eq!(restarted.balance(&user).await.unwrap(), 8_000);
    assert_eq!(restarted.reclaim_expired().await.unwrap(), 0);

    // The hold that was still within its TTL settles normally on the new instance.
    let usage = support::usage_record(&user, "still-running", "m", "p", 500, 1_772_323_200);
    assert_eq!(restarted.settle(&in_flight, &usage).await.unwrap(), 9_500);
    // A late settle of a reclaimed hold (the old process waking up) changes nothing.
    assert_eq!(
        restarted.settle(&abandoned[0], &usage).await.unwrap(),
        9_500
    );

    let totals = ledger_totals(&*restarted, &user).await;
    assert_eq!(totals.credits - totals.charges, 9_500);
    let releases = restarted
        .transactions(
            &user,
            Page {
                limit: 100,
                before_id: None,
            },
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.kind == TransactionKind::Release)
        .count();
    assert_eq!(releases, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reclaims_holds_left_by_a_crash() {
    let fixture = support::sqlite_fixture().await.unwrap();
    holds_survive_a_restart_and_are_reclaimed(fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reclaims_holds_left_by_a_crash() {
    let Some(fixture) = support::postgres_fixture().await else {
        return;
    };
    holds_survive_a_restart_and_are_reclaimed(fixture).await;
}
