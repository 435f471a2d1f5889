//! Many requests spending one balance at once: exactly as many holds succeed as the balance
//! covers, it never goes below zero, and after settling every credit is accounted for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::join_all;
use llmgate_core::{
    ErrorKind,
    credits::{CreditStore, HoldRequest},
};
use llmgate_credits::PostgresCreditStore;

use support::{ledger_totals, top_up, unique, usage_record};

const HOLD: i64 = 7_919;
const ATTEMPTS: usize = 300;
const AFFORDABLE: usize = 100;

/// A tiny deterministic generator (xorshift64*), so a failure replays the same charges.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Spend one user's balance from every store in `stores` at once (they may be replicas of
/// one database).
async fn spend_race(stores: Vec<Arc<dyn CreditStore>>) {
    let user = unique("racer-");
    let credits = HOLD * AFFORDABLE as i64;
    top_up(&*stores[0], &user, credits).await;

    // Watch the balance while the holds land: it must never read below zero.
    let racing = Arc::new(AtomicBool::new(true));
    let watcher = {
        let store = stores[0].clone();
        let user = user.clone();
        let racing = racing.clone();
        tokio::spawn(async move {
            let mut lowest = i64::MAX;
            while racing.load(Ordering::Relaxed) {
                lowest = lowest.min(store.balance(&user).await.unwrap());
                tokio::task::yield_now().await;
            }
            lowest
        })
    };

    let attempts = (0..ATTEMPTS).map(|i| {
        let store = stores[i % stores.len()].clone();
        let user = user.clone();
        tokio::spawn(async move {
            store
                .hold(HoldRequest {
                    user_id: user,
                    request_id: format!("req-{i}"),
                    amount_micros: HOLD,
                    ttl_secs: 3_600,
                    budget: None,
                })
                .await
        })
    });
    let results: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(|joined| joined.unwrap())
        .collect();
    racing.store(false, Ordering::Relaxed);
    let lowest = watcher.await.unwrap();
    assert!(lowest >= 0, "balance read {lowest}");

    let mut holds = Vec::new();
    for result in results {
        match result {
            Ok(hold) => holds.push(hold),
            Err(error) => assert_eq!(error.kind(), ErrorKind::InsufficientCredits, "{error}"),
        }
    }
    assert_eq!(holds.len(), AFFORDABLE, "holds that succeeded");
    assert_eq!(stores[0].balance(&user).await.unwrap(), 0);

    // Settle them all at once, at random amounts up to (and sometimes past) the hold.
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
    let charges: Vec<i64> = holds
        .iter()
        .map(|_| (random.next() % (HOLD as u64 + 500)) as i64)
        .collect();
    let settles = holds
        .into_iter()
        .zip(&charges)
        .enumerate()
        .map(|(i, (hold, &cost))| {
            let store = stores[(i + 1) % stores.len()].clone();
            let usage = usage_record(&user, &format!("req-{i}"), "m", "p", cost, 1_772_323_200);
            tokio::spawn(async move { store.settle(&hold, &usage).await })
        });
    for settled in join_all(settles).await {
        let balance = settled.unwrap().unwrap();
        assert!(balance >= 0);
    }

    let charged: i64 = charges.iter().map(|&c| c.min(HOLD)).sum();
    let balance = stores[0].balance(&user).await.unwrap();
    assert_eq!(balance, credits - charged);
    let totals = ledger_totals(&*stores[0], &user).await;
    assert_eq!(totals.credits, credits);
    assert_eq!(totals.charges, charged);
    assert_eq!(totals.latest_balance_after, Some(balance));
    // One top-up; a hold, its release and a charge per request: nothing twice, nothing for
    // the refused.
    assert_eq!(totals.entries, 1 + 3 * AFFORDABLE);
    for store in &stores {
        assert_eq!(store.balance(&user).await.unwrap(), balance);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_spends_exactly_what_it_holds() {
    let fixture = support::memory_fixture().await.unwrap();
    spend_race(vec![fixture.store.clone()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_spends_exactly_what_it_holds() {
    let fixture = support::sqlite_fixture().await.unwrap();
    spend_race(vec![fixture.store.clone()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_spends_exactly_what_it_holds() {
    let Some(fixture) = support::postgres_fixture().await else {
        return;
    };
    spend_race(vec![fixture.store.clone()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_postgres_replicas_spend_one_balance_exactly() {
    let Some(fixture) = support::postgres_fixture().await else {
        return;
    };
    let url = fixture.reopen.clone().unwrap();
    let second: Arc<dyn CreditStore> = Arc::new(PostgresCreditStore::connect(&url).await.unwrap());
    spend_race(vec![fixture.store.clone(), second]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sqlite_handles_spend_one_file_exactly() {
    let fixture = support::sqlite_fixture().await.unwrap();
    let url = fixture.reopen.clone().unwrap();
    let second: Arc<dyn CreditStore> = Arc::new(
        llmgate_credits::SqliteCreditStore::connect(&url)
            .await
            .unwrap(),
    );
    spend_race(vec![fixture.store.clone(), second]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cached_store_spends_exactly_what_it_holds() {
    let Some(fixture) = support::cached_sqlite_fixture().await else {
        return;
    };
    spend_race(vec![fixture.store.clone()]).await;
}

/// Two replicas applying the same credit at once: one applies it, the other sees a repeat.
async fn credit_race(stores: Vec<Arc<dyn CreditStore>>) {
    let user = unique("buyer-");
    let key = unique("stripe:cs_");
    let attempts = (0..40).map(|i| {
        let store = stores[i % stores.len()].clone();
        let credit = llmgate_core::credits::Credit {
            user_id: user.clone(),
            kind: llmgate_core::credits::CreditKind::TopUp,
            amount_micros: 1_000,
            idempotency_key: key.clone(),
            reason: "race".into(),
        };
        tokio::spawn(async move { store.credit(credit).await })
    });
    let applied = join_all(attempts)
        .await
        .into_iter()
        .filter(|r| r.as_ref().unwrap().as_ref().unwrap().applied)
        .count();
    assert_eq!(applied, 1);
    assert_eq!(stores[0].balance(&user).await.unwrap(), 1_000);
    assert_eq!(ledger_totals(&*stores[0], &user).await.entries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_applies_a_raced_credit_once() {
    let fixture = support::sqlite_fixture().await.unwrap();
    credit_race(vec![fixture.store.clone()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_postgres_replicas_apply_a_raced_credit_once() {
    let Some(fixture) = support::postgres_fixture().await else {
        return;
    };
    let url = fixture.reopen.clone().unwrap();
    let second: Arc<dyn CreditStore> = Arc::new(PostgresCreditStore::connect(&url).await.unwrap());
    credit_race(vec![fixture.store.clone(), second]).await;
}

/// Settles and releases of one hold racing each other: exactly one wins.
async fn close_race(stores: Vec<Arc<dyn CreditStore>>) {
    let user = unique("closer-");
    top_up(&*stores[0], &user, 10_000).await;
    let hold = stores[0]
        .hold(HoldRequest {
            user_id: user.clone(),
            request_id: "req".into(),
            amount_micros: 4_000,
            ttl_secs: 3_600,
            budget: None,
        })
        .await
        .unwrap();
    let closers = (0..20).map(|i| {
        let store = stores[i % stores.len()].clone();
        let hold = hold.clone();
        let usage = usage_record(&hold.user_id, "req", "m", "p", 1_500, 1_772_323_200);
        tokio::spawn(async move {
            if i % 2 == 0 {
                store.settle(&hold, &usage).await.map(|_| ())
            } else {
                store.release(&hold).await
            }
        })
    });
    for closed in join_all(closers).await {
        closed.unwrap().unwrap();
    }
    let balance = stores[0].balance(&user).await.unwrap();
    let totals = ledger_totals(&*stores[0], &user).await;
    // Either one charge of 1,500 (after the hold's release) or one full release; never both,
    // never twice.
    assert!(balance == 8_500 || balance == 10_000, "balance {balance}");
    assert_eq!(totals.entries, if balance == 8_500 { 4 } else { 3 });
    assert_eq!(balance, totals.credits - totals.charges);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_closes_a_raced_hold_once() {
    let fixture = support::sqlite_fixture().await.unwrap();
    close_race(vec![fixture.store.clone()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_postgres_replicas_close_a_raced_hold_once() {
    let Some(fixture) = support::postgres_fixture().await else {
        return;
    };
    let url = fixture.reopen.clone().unwrap();
    let second: Arc<dyn CreditStore> = Arc::new(PostgresCreditStore::connect(&url).await.unwrap());
    close_race(vec![fixture.store.clone(), second]).await;
}

/// Holds refused at an empty balance racing releases and settles that give credits back. A
/// refused hold reads the balance a second time to tell "too little" from "no row yet"; a
/// give-back committed between its two statements (PostgreSQL, READ COMMITTED) once made that
/// read see enough and the hold was placed without taking its amount off the balance.
async fn edge_race(stores: Vec<Arc<dyn CreditStore>>) {
    const SPENDERS: usize = 12;
    const ROUNDS: usize = 150;
    let user = unique("edge-");
    let credits = HOLD * 3;
    top_up(&*stores[0], &user, credits).await;

    let spenders = (0..SPENDERS).map(|spender| {
        let store = stores[spender % stores.len()].clone();
        let user = user.clone();
        tokio::spawn(async move {
            let mut charged = 0;
            for round in 0..ROUNDS {
                let request_id = format!("edge-{spender}-{round}");
                let held = store
                    .hold(HoldRequest {
                        user_id: user.clone(),
                        request_id: request_id.clone(),
                        amount_micros: HOLD,
                        ttl_secs: 3_600,
                        budget: None,
                    })
                    .await;
                let hold = match held {
                    Ok(hold) => hold,
                    Err(error) => {
                        assert_eq!(error.kind(), ErrorKind::InsufficientCredits, "{error}");
                        continue;
                    }
                };
                tokio::task::yield_now().await;
                if round % 3 == 0 {
                    // A small charge gives most of the hold back.
                    let usage = usage_record(&user, &request_id, "m", "p", 1, 1_772_323_200);
                    store.settle(&hold, &usage).await.unwrap();
                    charged += 1;
                } else {
                    store.release(&hold).await.unwrap();
                }
            }
            charged
        })
    });
    let charged: i64 = join_all(spenders)
        .await
        .into_iter()
        .map(|c| c.unwrap())
        .sum();

    let balance = stores[0].balance(&user).await.unwrap();
    let totals = ledger_totals(&*stores[0], &user).await;
    assert_eq!(totals.charges, charged);
    assert_eq!(
        balance,
        credits - charged,
        "every hold closed: the balance is the credits less the charges"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_postgres_replicas_never_place_a_hold_without_taking_it() {
    let Some(fixture) = support::postgres_fixture().await else {
        return;
    };
    let url = fixture.reopen.clone().unwrap();
    let second: Arc<dyn CreditStore> = Arc::new(PostgresCreditStore::connect(&url).await.unwrap());
    edge_race(vec![fixture.store.clone(), second]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_never_places_a_hold_without_taking_it() {
    let fixture = support::sqlite_fixture().await.unwrap();
    edge_race(vec![fixture.store.clone()]).await;
}
