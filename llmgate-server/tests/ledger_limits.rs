//! A balance near the 64-bit limit once wedged the ledger: an admin credit of 9,223,372,036,854
//! credits, a request in flight, a credit of 3 more — the settle's give-back overflowed, was
//! retried forever, SIGTERM left "ledger writes still pending", and the next start failed.
//! Now balances are bounded (credits that would cross the bound are a clear 400), and a write
//! the database refuses is parked instead of retried: shutdown completes and the next start
//! works even when a balance was pushed over the edge behind the gateway's back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use llmgate_testkit::{Reply, openai};
use serde_json::{Value, json};
use support::money::{self, Db, Gateway, MASTER_KEY, Options, ask, client};

async fn add_credits(gateway: &Gateway, user: &str, amount: Value) -> (u16, Value) {
    gateway
        .post(
            "/api/v1/llm/credits/add",
            MASTER_KEY,
            json!({"user_id": user, "amount": amount, "reason": "test"}),
        )
        .await
}

async fn credits_past_the_bound_are_refused(db: Db) {
    let Some((_database, _fakes, gateway)) = money::setup(db, Options::default()).await else {
        return;
    };
    gateway.user("whale", "starter").await;
    // The amount of the report: about the 64-bit limit in micro-credits.
    let (status, body) = add_credits(&gateway, "whale", json!("9223372036854")).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum of 10000000000 credits"),
        "{body}"
    );
    // Up to the bound is fine; one micro-credit more is not, and nothing changed.
    let (status, body) = add_credits(&gateway, "whale", json!("10000000000")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = add_credits(&gateway, "whale", json!("0.000001")).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = gateway
        .get("/api/v1/llm/credits?user_id=whale", MASTER_KEY)
        .await;
    assert_eq!(status, 200, "{body}");
    gateway.stop().await;
}

#[tokio::test]
async fn sqlite_refuses_credits_past_the_balance_bound() {
    credits_past_the_bound_are_refused(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_refuses_credits_past_the_balance_bound() {
    credits_past_the_bound_are_refused(Db::Postgres).await;
}

async fn execute(url: &str, statement: &'static str) {
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(statement).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(statement).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

async fn a_settle_the_database_refuses_is_parked_not_retried(db: Db) {
    let Some((database, fakes, gateway)) = money::setup(db, Options::default()).await else {
        return;
    };
    let key = gateway.user("edge", "starter").await;
    add_credits(&gateway, "edge", json!(100)).await;
    // A slow answer keeps the request (and its hold) in flight.
    fakes.upstream.push(
        Reply::json(200, openai::completion("up-cheap", "Hello!", 400, 600))
            .first_byte_delay(Duration::from_millis(700)),
    );
    let in_flight = {
        let url = gateway.url("/v1/chat/completions");
        tokio::spawn(async move {
            client()
                .post(url)
                .bearer_auth(key)
                .json(&ask("cheap", false))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    money::wait_for_requests(&fakes.upstream, 1).await;
    // Behind the gateway's back the balance is pushed to the edge of 64 bits: giving the
    // hold's remainder back now overflows, however often it is tried.
    execute(
        &database.url,
        "UPDATE credit_balances SET balance_micros = 9223372036854775000 WHERE user_id = 'edge'",
    )
    .await;
    assert_eq!(in_flight.await.unwrap(), 200, "the client was served");

    // The refused settle is parked, not retried: the ledger queue drains and the server stops.
    tokio::time::timeout(Duration::from_secs(5), gateway.state.gateway.settled())
        .await
        .expect("the ledger queue drained");
    tokio::time::timeout(Duration::from_secs(8), gateway.stop())
        .await
        .expect("shutdown was not held up by a write that cannot succeed");

    // The next start does not depend on it: the open hold it cannot give back is left open.
    let restarted = Gateway::start(money::config(&database, &fakes, Options::default())).await;
    let (status, body) = restarted.get("/health/ready", MASTER_KEY).await;
    assert_eq!(status, 200, "{body}");
    restarted.stop().await;
}

#[tokio::test]
async fn sqlite_parks_a_settle_the_database_refuses_and_restarts() {
    a_settle_the_database_refuses_is_parked_not_retried(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_parks_a_settle_the_database_refuses_and_restarts() {
    a_settle_the_database_refuses_is_parked_not_retried(Db::Postgres).await;
}
