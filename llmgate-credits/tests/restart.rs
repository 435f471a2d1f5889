//! A crash leaves holds open; the next process (or another replica) gives them back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use llmgate_core::credits::{CreditStore, HoldRequest, Page, TransactionKind};
use llmgate_credits::{PostgresCreditStore, SqliteCreditStore, connect_credit_store};

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
                budget: None,
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
            budget: None,
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
    // Three reclaimed, and the settle's own release of its hold before its charge.
    assert_eq!(releases, 4);
}

/// Long enough that a loaded machine cannot pass it between a beat and the next statement.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Three stores on one database: `stopped` beat, placed a hold and went silent (killed);
/// `live` beats; `quiet` never beat (a library user without the reclaimer). Once `stopped` is
/// silent past the timeout, a reclaim on `live` gives back its hold, and only its.
async fn holds_of_a_stopped_replica_come_back(stores: [Arc<dyn CreditStore>; 3]) {
    let [stopped, live, quiet] = stores;
    let user = unique("replicas-");
    top_up(&*live, &user, 10_000).await;
    let hold = |store: Arc<dyn CreditStore>, request_id: &str, amount_micros| {
        let user = user.clone();
        let request_id = request_id.to_owned();
        async move {
            store
                .hold(HoldRequest {
                    user_id: user,
                    request_id,
                    amount_micros,
                    ttl_secs: 3_600,
                    budget: None,
                })
                .await
                .unwrap()
        }
    };
    stopped.reclaim_expired().await.unwrap();
    live.reclaim_expired().await.unwrap();
    hold(stopped.clone(), "on-the-stopped-replica", 1_000).await;
    let on_live = hold(live.clone(), "on-the-live-replica", 2_000).await;
    let on_quiet = hold(quiet.clone(), "on-a-replica-that-never-beat", 3_000).await;
    assert_eq!(live.balance(&user).await.unwrap(), 4_000);

    // Within the timeout nobody's holds are touched (`stopped` has just beaten).
    stopped.reclaim_expired().await.unwrap();
    assert_eq!(live.reclaim_expired().await.unwrap(), 0);
    assert_eq!(live.balance(&user).await.unwrap(), 4_000);

    // `stopped` stays silent past the timeout; `live` keeps beating.
    tokio::time::sleep(TIMEOUT + std::time::Duration::from_millis(1_100)).await;
    assert_eq!(live.reclaim_expired().await.unwrap(), 1);
    assert_eq!(live.balance(&user).await.unwrap(), 5_000);
    assert_eq!(live.reclaim_expired().await.unwrap(), 0);

    // The live replica's hold and the quiet one's settle as usual.
    let usage = support::usage_record(&user, "on-the-live-replica", "m", "p", 500, 1_772_323_200);
    assert_eq!(live.settle(&on_live, &usage).await.unwrap(), 6_500);
    let usage = support::usage_record(&user, "on-a-replica", "m", "p", 0, 1_772_323_200);
    assert_eq!(quiet.settle(&on_quiet, &usage).await.unwrap(), 9_500);
    let totals = ledger_totals(&*live, &user).await;
    assert_eq!(totals.credits - totals.charges, 9_500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reclaims_the_holds_of_a_stopped_replica_and_no_others() {
    let Some(fixture) = support::postgres_fixture().await else {
        return;
    };
    let url = fixture.reopen.clone().unwrap();
    let timeout = TIMEOUT;
    let replica = || async {
        let store = PostgresCreditStore::connect(&url).await.unwrap();
        Arc::new(store.with_replica_timeout(timeout)) as Arc<dyn CreditStore>
    };
    holds_of_a_stopped_replica_come_back([replica().await, replica().await, replica().await]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reclaims_the_holds_of_a_stopped_handle_and_no_others() {
    let fixture = support::sqlite_fixture().await.unwrap();
    let url = fixture.reopen.clone().unwrap();
    let timeout = TIMEOUT;
    let replica = || async {
        let store = SqliteCreditStore::connect(&url).await.unwrap();
        Arc::new(store.with_replica_timeout(timeout)) as Arc<dyn CreditStore>
    };
    holds_of_a_stopped_replica_come_back([replica().await, replica().await, replica().await]).await;
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
