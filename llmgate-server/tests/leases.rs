#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Balance leases across two replicas on one PostgreSQL: two replicas draining one small
//! balance never refuse a request the balance covers once the other replica's lease idled
//! (`storage.lease_idle_ms`, 1 s by default) and went back; the final balance and ledger are
//! exact, with every charge once.

#[macro_use]
mod support;

use std::time::Duration;

use serde_json::json;
use support::users::{Database, Gate};

/// What the fake upstream's answer (400 prompt + 600 completion tokens at $0.002/1K, tier
/// professional — markup 0.6 and no monthly grant —, power level balanced) costs.
const CHARGE: i64 = 800_000;
/// Longer than the lease idle time plus the sweeper's tick.
const IDLE_PASSED: Duration = Duration::from_millis(1_600);

async fn add_credits(gate: &Gate, user_id: &str, micros: i64) {
    let amount = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    let (status, body) = gate
        .admin(
            "POST",
            "/api/v1/llm/credits/add",
            Some(json!({"user_id": user_id, "amount": amount, "reason": "test"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// The most one request may cost, read from the refusal of a user with 1 micro-credit.
async fn hold_of_one_request(gate: &Gate) -> i64 {
    let key = gate.create_user("probe", "professional", "user").await;
    add_credits(gate, "probe", 1).await;
    let (status, _, body) = gate.chat(&key).await;
    assert_eq!(status, 402, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    let after = message.split("may cost up to ").nth(1).unwrap();
    after.split(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_drain_a_small_balance_without_a_refusal_an_idle_lease_covers() {
    let Some(db) = support::databases::postgres().await else {
        return;
    };
    let url = db.url.clone();
    let replicas = [
        Gate::start(db).await,
        Gate::start(Database::shared(&url)).await,
    ];
    let hold = hold_of_one_request(&replicas[0]).await;
    assert!(hold > CHARGE);
    let key = replicas[0]
        .create_user("small", "professional", "user")
        .await;
    // A few requests' worth: each replica's lease may take at most half of what lies beyond
    // the request that needs it.
    let funded = 3 * hold + hold / 3;
    add_credits(&replicas[0], "small", funded).await;

    // Back to back on alternating replicas: a refusal is allowed only while the other one's
    // lease is out; nothing is ever overspent.
    let mut served = 0;
    for step in 0..6 {
        let (status, _, body) = replicas[step % 2].chat(&key).await;
        assert!(status == 200 || status == 402, "{status} {body}");
        served += i64::from(status == 200);
    }
    // Then one at a time, each after the other replica's lease idled: every request the
    // balance covers is served, on whichever replica it lands.
    for step in 0.. {
        tokio::time::sleep(IDLE_PASSED).await;
        let left = funded - served * CHARGE;
        let (status, _, body) = replicas[step % 2].chat(&key).await;
        if status == 402 {
            assert!(
                left < hold,
                "refused with {left} left for a hold of {hold} (step {step}): {body}"
            );
            break;
        }
        assert_eq!(status, 200, "{body}");
        served += 1;
    }
    assert!(served >= 3, "served {served}");

    for replica in &replicas {
        replica.gateway.settled().await;
    }
    assert_eq!(replicas[1].balance("small").await, funded - served * CHARGE);
    let store = llmgate_credits::PostgresCreditStore::connect(&url)
        .await
        .unwrap();
    let report = store.verify_ledger().await.unwrap();
    assert!(report.problems.is_empty(), "{report:?}");
    let charges: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM credit_ledger WHERE user_id = 'small' AND kind = 'charge'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(charges, served);
    let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM credit_holds WHERE user_id = 'small'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(open, 0, "every lease went back at shutdown");
    let [first, second] = replicas;
    second.server.shutdown().await.unwrap();
    first.server.shutdown().await.unwrap();
}

/// A quiet account (a request every 50 ms, far below a busy one's demand) is served from one
/// take: the lease is sized to its floor of holds, not to the little it spent in the last
/// second, which took again every few requests (a transaction each request waited for).
async fn a_quiet_account_is_served_from_one_take(db: Database) {
    let gate = Gate::start(db).await;
    let key = gate.create_user("quiet", "professional", "user").await;
    add_credits(&gate, "quiet", 1_000 * CHARGE).await;
    for _ in 0..12 {
        let (status, _, body) = gate.chat(&key).await;
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gate.gateway.settled().await;
    // A take is the lease's `hold` entry in the account's ledger.
    let (status, page) = gate
        .call(
            Some(&key),
            "GET",
            "/api/v1/llm/credits/transactions?limit=100",
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let entries = page["data"].as_array().unwrap();
    let takes = entries.iter().filter(|e| e["kind"] == "hold").count();
    let charges = entries.iter().filter(|e| e["kind"] == "charge").count();
    assert_eq!(charges, 12, "{page}");
    // One take; a second only if the machine stalled past the lease's idle time.
    assert!((1..=2).contains(&takes), "{takes} takes for 12 requests");
    assert_eq!(gate.balance("quiet").await, 1_000 * CHARGE - 12 * CHARGE);
    gate.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_quiet_account_is_served_from_one_take() {
    a_quiet_account_is_served_from_one_take(support::databases::sqlite_file()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_quiet_account_is_served_from_one_take() {
    let Some(db) = support::databases::postgres().await else {
        return;
    };
    a_quiet_account_is_served_from_one_take(db).await;
}
