//! Two PostgreSQL replicas on one hot account: a batch of lease writes must not hold the
//! account's balance row while it waits (so no take or batch of another replica queues
//! behind the whole batch), and two replicas charging one account at once both finish with
//! every write answered and the ledger exact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use llmgate_core::credits::{
    CreditStore, LeaseCharge, LeaseOutcome, LeaseRequest, LeaseReturn, LedgerWrite, Written,
};
use llmgate_credits::PostgresCreditStore;
use sqlx::{Connection, PgConnection};

use support::{TestPostgres, ledger_totals, top_up, usage_record};

/// 2026-03-01T00:00:00Z.
const MARCH_1: i64 = 1_772_323_200;

async fn take(store: &dyn CreditStore, user_id: &str, lease_id: Option<&str>, need: i64) -> String {
    let request = LeaseRequest {
        user_id: user_id.to_owned(),
        lease_id: lease_id.map(str::to_owned),
        need_micros: need,
        want_micros: need,
        floor_micros: 0,
        ttl_secs: 600,
    };
    match store.take_lease(request).await.unwrap() {
        LeaseOutcome::Taken { lease_id, .. } => lease_id,
        short => panic!("expected a take, got {short:?}"),
    }
}

fn charge(user_id: &str, lease_id: &str, seq: i64, cost: i64) -> LedgerWrite {
    let mut usage = usage_record(
        user_id,
        &format!("{lease_id}-{seq}"),
        "m",
        "p",
        cost,
        MARCH_1,
    );
    usage.cost_micros = cost;
    LedgerWrite::LeaseCharge(LeaseCharge {
        lease_id: lease_id.to_owned(),
        seq,
        usage,
        ttl_secs: 600,
    })
}

/// The server process id of the session that is waiting for a lock `blocker` holds, once
/// there is one.
async fn waiting_behind(probe: &mut PgConnection, blocker: i32) -> i32 {
    loop {
        let waiting: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))",
        )
        .bind(blocker)
        .fetch_optional(&mut *probe)
        .await
        .unwrap();
        if let Some(pid) = waiting {
            return pid;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A replica's writer batch waits for one of its lease rows (its own take holds it, as a
/// take locks its lease row before the balance row). Meanwhile the balance row must be free:
/// the take waits for it next, and so does every other replica. Before, each charge locked
/// the balance row as it was written, so the batch held it across everything after its first
/// charge — here a deadlock with the take, on one account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_waiting_for_a_lease_row_holds_no_balance_row() {
    let Some(db) = TestPostgres::create().await else {
        return;
    };
    let store = Arc::new(PostgresCreditStore::connect(&db.url).await.unwrap());
    top_up(&*store, "hot", 1_000_000).await;
    let first = take(&*store, "hot", None, 10_000).await;
    let second = take(&*store, "hot", None, 10_000).await;

    // The take of `second`, stopped after locking its lease row.
    let mut take_in_progress = PgConnection::connect(&db.url).await.unwrap();
    let blocker: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut take_in_progress)
        .await
        .unwrap();
    sqlx::query("BEGIN")
        .execute(&mut take_in_progress)
        .await
        .unwrap();
    sqlx::query("SELECT id FROM credit_holds WHERE id = $1 FOR UPDATE")
        .bind(second.parse::<i64>().unwrap())
        .execute(&mut take_in_progress)
        .await
        .unwrap();

    let batch = vec![
        charge("hot", &first, 1, 100),
        charge("hot", &first, 2, 100),
        charge("hot", &second, 1, 300),
    ];
    let writer = {
        let store = store.clone();
        tokio::spawn(async move { store.write_batch(&batch).await })
    };
    let mut probe = PgConnection::connect(&db.url).await.unwrap();
    waiting_behind(&mut probe, blocker).await;

    // What the take (or another replica) would do next: lock the balance row.
    sqlx::query("BEGIN").execute(&mut probe).await.unwrap();
    let balance = sqlx::query_scalar::<_, i64>(
        "SELECT balance_micros FROM credit_balances WHERE user_id = 'hot' FOR UPDATE NOWAIT",
    )
    .fetch_one(&mut probe)
    .await;
    sqlx::query("ROLLBACK").execute(&mut probe).await.unwrap();
    sqlx::query("ROLLBACK")
        .execute(&mut take_in_progress)
        .await
        .unwrap();
    let written = writer.await.unwrap();
    assert!(
        balance.is_ok(),
        "the batch held the balance row while it waited: {balance:?}"
    );
    assert!(
        written
            .iter()
            .all(|w| matches!(w, Ok(Written::LeaseCharged(Some(_))))),
        "{written:?}"
    );
    let totals = ledger_totals(&*store, "hot").await;
    assert_eq!(totals.charges, 500);
    let report = store.verify_ledger().await.unwrap();
    assert!(report.is_exact(), "{report:?}");
}

/// One replica's rounds on its leases of `accounts` (in that order within each batch): take
/// more, a batch of charges of every account with a return between, `rounds` times; then
/// close. Returns how much it charged.
async fn replica_rounds(store: Arc<PostgresCreditStore>, accounts: [&str; 2], rounds: i64) -> i64 {
    let mut leases: Vec<String> = Vec::new();
    for user in accounts {
        leases.push(take(&*store, user, None, 50_000).await);
    }
    let mut seq = 0;
    let mut charged = 0;
    for round in 0..rounds {
        for (user, lease) in accounts.iter().zip(&mut leases) {
            let taken = take(&*store, user, Some(lease), 1_000).await;
            assert_eq!(&taken, lease, "the lease is extended, not replaced");
        }
        let mut batch = Vec::new();
        for (user, lease) in accounts.iter().zip(&leases) {
            for _ in 0..8 {
                seq += 1;
                batch.push(charge(user, lease, seq, 10 + round));
                charged += 10 + round;
            }
            seq += 1;
            batch.push(LedgerWrite::LeaseReturn(LeaseReturn {
                lease_id: lease.clone(),
                user_id: (*user).to_owned(),
                seq,
                amount_micros: 500,
                close: false,
            }));
        }
        for written in store.write_batch(&batch).await {
            assert!(
                matches!(
                    written,
                    Ok(Written::LeaseCharged(Some(_)) | Written::LeaseReturned)
                ),
                "{written:?}"
            );
        }
    }
    seq += 1;
    let closes: Vec<LedgerWrite> = accounts
        .iter()
        .zip(&leases)
        .map(|(user, lease)| {
            LedgerWrite::LeaseReturn(LeaseReturn {
                lease_id: lease.clone(),
                user_id: (*user).to_owned(),
                seq,
                amount_micros: 0,
                close: true,
            })
        })
        .collect();
    for written in store.write_batch(&closes).await {
        assert!(matches!(written, Ok(Written::LeaseReturned)), "{written:?}");
    }
    charged
}

/// Two replicas (two stores, one database) charge the same two accounts at once, each naming
/// them in the opposite order, while taking more of both: every write is answered as alone,
/// and the ledger is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_charging_one_hot_account_both_finish_exactly() {
    let Some(db) = TestPostgres::create().await else {
        return;
    };
    let one = Arc::new(PostgresCreditStore::connect(&db.url).await.unwrap());
    let two = Arc::new(PostgresCreditStore::connect(&db.url).await.unwrap());
    top_up(&*one, "hot", 10_000_000).await;
    top_up(&*one, "warm", 10_000_000).await;
    let rounds = 40;
    let (a, b) = tokio::join!(
        tokio::spawn(replica_rounds(one.clone(), ["hot", "warm"], rounds)),
        tokio::spawn(replica_rounds(two.clone(), ["warm", "hot"], rounds)),
    );
    let charged = a.unwrap() + b.unwrap();
    let hot = ledger_totals(&*one, "hot").await;
    let warm = ledger_totals(&*one, "warm").await;
    assert_eq!(hot.charges + warm.charges, charged);
    assert_eq!(hot.charges, warm.charges);
    // Every lease closed: the balance is what was credited less what was charged.
    assert_eq!(hot.sum, 10_000_000 - hot.charges);
    assert_eq!(one.balance("hot").await.unwrap(), 10_000_000 - hot.charges);
    let report = one.verify_ledger().await.unwrap();
    assert!(report.is_exact(), "{report:?}");
}
