//! Balance leases, run against every `CreditStore` backend: the in-memory reference, SQLite,
//! PostgreSQL and the Redis cache over SQLite. Takes, charges and returns move exactly their
//! amounts, the entries add up to the balance, a retried write applies once, a lease that was
//! reclaimed charges nothing, and concurrent takes never overdraw.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

/// 2026-03-01T00:00:00Z.
const MARCH_1: i64 = 1_772_323_200;

mod cases {
    use std::sync::Arc;

    use llmgate_core::credits::{
        CreditStore, LeaseCharge, LeaseOutcome, LeaseRequest, LeaseReturn, LedgerWrite,
        Transaction, TransactionKind, UsageGroup, UsageQuery, Written,
    };

    use super::MARCH_1;
    use super::support::{ledger_totals, top_up, usage_record};

    fn ask(user_id: &str, lease_id: Option<&str>, need: i64, want: i64) -> LeaseRequest {
        LeaseRequest {
            user_id: user_id.to_owned(),
            lease_id: lease_id.map(str::to_owned),
            need_micros: need,
            want_micros: want,
            floor_micros: 0,
            ttl_secs: 600,
        }
    }

    async fn take(store: &dyn CreditStore, request: LeaseRequest) -> (String, i64) {
        match store.take_lease(request).await.unwrap() {
            LeaseOutcome::Taken {
                lease_id,
                taken_micros,
            } => (lease_id, taken_micros),
            short => panic!("expected a take, got {short:?}"),
        }
    }

    /// A user's ledger entries, oldest first (a test's few fit one page).
    async fn oldest_first(store: &dyn CreditStore, user_id: &str) -> Vec<Transaction> {
        let page = llmgate_core::credits::Page {
            limit: 50,
            before_id: None,
        };
        let mut entries = store.transactions(user_id, page).await.unwrap();
        entries.reverse();
        entries
    }

    fn charge(user_id: &str, lease_id: &str, seq: i64, cost: i64) -> LeaseCharge {
        let mut usage = usage_record(user_id, &format!("req-{seq}"), "m", "p", cost, MARCH_1);
        usage.cost_micros = cost;
        LeaseCharge {
            lease_id: lease_id.to_owned(),
            seq,
            usage,
            ttl_secs: 600,
        }
    }

    fn give_back(user_id: &str, lease_id: &str, seq: i64, amount: i64, close: bool) -> LeaseReturn {
        LeaseReturn {
            lease_id: lease_id.to_owned(),
            user_id: user_id.to_owned(),
            seq,
            amount_micros: amount,
            close,
        }
    }

    pub async fn take_charge_and_return_move_exact_amounts(store: Arc<dyn CreditStore>) {
        assert!(store.leases());
        top_up(&*store, "ann", 10_000).await;
        let (lease, taken) = take(&*store, ask("ann", None, 1_000, 4_000)).await;
        assert_eq!(taken, 4_000);
        // A lease only moves money aside: the account may still spend all of it.
        assert_eq!(store.balance("ann").await.unwrap(), 10_000);
        let charged = store.charge_lease(&charge("ann", &lease, 1, 700)).await;
        assert_eq!(charged.unwrap(), Written::LeaseCharged(Some(9_300)));
        let returned = store
            .return_lease(&give_back("ann", &lease, 2, 1_000, false))
            .await;
        assert_eq!(returned.unwrap(), Written::LeaseReturned);
        // Extending the lease keeps its id.
        let (again, more) = take(&*store, ask("ann", Some(&lease), 500, 500)).await;
        assert_eq!((again.as_str(), more), (lease.as_str(), 500));
        let closed = store
            .return_lease(&give_back("ann", &lease, 3, 0, true))
            .await;
        assert_eq!(closed.unwrap(), Written::LeaseReturned);
        assert_eq!(store.balance("ann").await.unwrap(), 9_300);

        let totals = ledger_totals(&*store, "ann").await;
        assert_eq!(
            (totals.sum, totals.charges, totals.credits),
            (9_300, 700, 10_000)
        );
        let entries = oldest_first(&*store, "ann").await;
        let moves: Vec<_> = entries.iter().map(|t| (t.kind, t.amount_micros)).collect();
        assert_eq!(
            moves,
            [
                (TransactionKind::TopUp, 10_000),
                (TransactionKind::Hold, -4_000),
                (TransactionKind::Release, 700),
                (TransactionKind::Charge, -700),
                (TransactionKind::Release, 1_000),
                (TransactionKind::Hold, -500),
                (TransactionKind::Release, 2_800),
            ]
        );
        let charge_entry = entries
            .iter()
            .find(|t| t.kind == TransactionKind::Charge)
            .unwrap();
        assert_eq!(charge_entry.request_id.as_deref(), Some("req-1"));
        assert_eq!(charge_entry.model.as_deref(), Some("m"));
        let usage = store
            .usage(&UsageQuery {
                user_id: Some("ann".into()),
                from_day: None,
                to_day: None,
                group_by: UsageGroup::Model,
            })
            .await
            .unwrap();
        assert_eq!((usage[0].requests, usage[0].cost_micros), (1, 700));
    }

    pub async fn a_take_leaves_half_of_the_surplus(store: Arc<dyn CreditStore>) {
        top_up(&*store, "bea", 1_000).await;
        let (_, first) = take(&*store, ask("bea", None, 100, 10_000)).await;
        assert_eq!(first, 550);
        // Another replica (no lease of its own yet) finds 450.
        let (_, second) = take(&*store, ask("bea", None, 100, 10_000)).await;
        assert_eq!(second, 275);
        let short = store.take_lease(ask("bea", None, 200, 200)).await.unwrap();
        assert_eq!(
            short,
            LeaseOutcome::Short {
                balance_micros: 175
            }
        );
        assert_eq!(store.balance("bea").await.unwrap(), 1_000);
        assert_eq!(ledger_totals(&*store, "bea").await.sum, 175);
    }

    pub async fn a_retried_write_applies_once(store: Arc<dyn CreditStore>) {
        top_up(&*store, "cid", 5_000).await;
        let (lease, _) = take(&*store, ask("cid", None, 2_000, 2_000)).await;
        let write = charge("cid", &lease, 1, 300);
        assert!(matches!(
            store.charge_lease(&write).await.unwrap(),
            Written::LeaseCharged(Some(_))
        ));
        assert_eq!(
            store.charge_lease(&write).await.unwrap(),
            Written::LeaseCharged(None)
        );
        let give = give_back("cid", &lease, 2, 700, false);
        let batch = [
            LedgerWrite::LeaseReturn(give.clone()),
            LedgerWrite::LeaseReturn(give),
        ];
        let results = store.write_batch(&batch).await;
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Ok(Written::LeaseReturned)))
        );
        assert_eq!(store.balance("cid").await.unwrap(), 4_700);
        let totals = ledger_totals(&*store, "cid").await;
        assert_eq!((totals.charges, totals.sum), (300, 5_000 - 2_000 + 700));
    }

    pub async fn a_reclaimed_lease_charges_nothing(store: Arc<dyn CreditStore>) {
        top_up(&*store, "dan", 5_000).await;
        let mut request = ask("dan", None, 1_000, 1_000);
        request.ttl_secs = 0;
        let (lease, _) = take(&*store, request).await;
        assert_eq!(store.reclaim_expired().await.unwrap(), 1);
        let charged = store
            .charge_lease(&charge("dan", &lease, 1, 400))
            .await
            .unwrap();
        assert_eq!(charged, Written::LeaseGone);
        let closed = store
            .return_lease(&give_back("dan", &lease, 2, 0, true))
            .await;
        assert!(matches!(
            closed.unwrap(),
            Written::LeaseReturned | Written::LeaseGone
        ));
        // A take asking for the gone lease opens a new one.
        let (fresh, _) = take(&*store, ask("dan", Some(&lease), 100, 100)).await;
        assert_ne!(fresh, lease);
        assert_eq!(store.balance("dan").await.unwrap(), 5_000);
        let totals = ledger_totals(&*store, "dan").await;
        assert_eq!((totals.charges, totals.sum), (0, 4_900));
    }

    /// A charge of lease `lease_id` for request `request`.
    fn charge_for(lease_id: &str, seq: i64, cost: i64, request: &str) -> LedgerWrite {
        let mut write = charge("fay", lease_id, seq, cost);
        write.usage.request_id = request.to_owned();
        LedgerWrite::LeaseCharge(write)
    }

    /// One batch with the charges of two leases of one account interleaved, a charge applied
    /// before, a write number repeated, an over-drawn charge, a return between two runs of
    /// charges and a lease that does not exist: each charge applies once, in order, with its
    /// two entries; the same batch again applies nothing.
    pub async fn a_batch_of_mixed_lease_writes_applies_each_once(store: Arc<dyn CreditStore>) {
        top_up(&*store, "fay", 100_000).await;
        let (a, _) = take(&*store, ask("fay", None, 10_000, 10_000)).await;
        let (b, _) = take(&*store, ask("fay", None, 10_000, 10_000)).await;
        let LedgerWrite::LeaseCharge(first) = charge_for(&a, 1, 100, "a1") else {
            unreachable!()
        };
        assert_eq!(
            store.charge_lease(&first).await.unwrap(),
            Written::LeaseCharged(Some(99_900))
        );
        let batch = [
            charge_for(&a, 1, 100, "a1"),
            charge_for(&a, 2, 100, "a2"),
            charge_for(&b, 1, 200, "b1"),
            charge_for(&a, 3, 300, "a3"),
            LedgerWrite::LeaseReturn(give_back("fay", &a, 4, 1_000, false)),
            charge_for(&b, 2, 400, "b2"),
            charge_for(&a, 5, 500, "a5"),
            charge_for(&a, 5, 500, "a5"),
            charge_for(&b, 3, 1_000_000, "b3"),
            charge_for("no-such-lease", 1, 100, "x"),
        ];
        let results: Vec<Written> = store
            .write_batch(&batch)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let applied = |at: usize| matches!(results[at], Written::LeaseCharged(Some(_)));
        assert_eq!(results[0], Written::LeaseCharged(None), "applied before");
        assert!(applied(1) && applied(2) && applied(5) && applied(6));
        // What the account may spend is exact after the last charge of each run of charges
        // (earlier ones may report it as of the run's end).
        assert_eq!(results[3], Written::LeaseCharged(Some(99_300)));
        assert_eq!(results[4], Written::LeaseReturned);
        assert_eq!(results[6], Written::LeaseCharged(Some(98_400)));
        assert_eq!(
            results[7],
            Written::LeaseCharged(None),
            "a repeated write number"
        );
        assert!(matches!(
            results[8],
            Written::LeaseCharged(None) | Written::LeaseGone
        ));
        assert_eq!(results[9], Written::LeaseGone);

        let check = |store: Arc<dyn CreditStore>| async move {
            assert_eq!(store.balance("fay").await.unwrap(), 98_400);
            let totals = ledger_totals(&*store, "fay").await;
            // Two leases of 10,000 taken, 1,000 returned: the balance row holds 81,000.
            assert_eq!((totals.charges, totals.sum), (1_600, 81_000));
            let entries = oldest_first(&*store, "fay").await;
            let moves: Vec<_> = entries
                .iter()
                .skip(3)
                .map(|t| {
                    (
                        t.kind,
                        t.amount_micros,
                        t.request_id.clone().unwrap_or_default(),
                    )
                })
                .collect();
            let pair = |cost: i64, request: &str| {
                [
                    (TransactionKind::Release, cost, request.to_owned()),
                    (TransactionKind::Charge, -cost, request.to_owned()),
                ]
            };
            let mut expected: Vec<_> = [
                pair(100, "a1"),
                pair(100, "a2"),
                pair(200, "b1"),
                pair(300, "a3"),
            ]
            .concat();
            expected.push((TransactionKind::Release, 1_000, String::new()));
            expected.extend([pair(400, "b2"), pair(500, "a5")].concat());
            assert_eq!(moves, expected);
            let charged = entries
                .iter()
                .find(|t| t.kind == TransactionKind::Charge)
                .unwrap();
            assert_eq!(
                (
                    charged.model.as_deref(),
                    charged.prompt_tokens,
                    charged.completion_tokens
                ),
                (Some("m"), Some(10), Some(20))
            );
            let usage = store
                .usage(&UsageQuery {
                    user_id: Some("fay".into()),
                    from_day: None,
                    to_day: None,
                    group_by: UsageGroup::Model,
                })
                .await
                .unwrap();
            assert_eq!((usage[0].requests, usage[0].cost_micros), (6, 1_600));
        };
        check(store.clone()).await;

        // The whole batch again (a retry after a lost answer): nothing applies twice.
        let again = store.write_batch(&batch).await;
        assert!(again.iter().all(|written| matches!(
            written,
            Ok(Written::LeaseCharged(None) | Written::LeaseGone | Written::LeaseReturned)
        )));
        check(store).await;
    }

    /// Every backend sizes a take as `credits::lease_take` does (PostgreSQL in SQL, in the
    /// take's one statement), over a grid of balances, needs, wants and floors: for a new
    /// lease and for one extended, and refuses, changing nothing, when the balance is short.
    pub async fn takes_are_sized_as_lease_take_sizes_them(store: Arc<dyn CreditStore>) {
        let mut account = 0;
        for balance in [1, 99, 100, 101, 1_000, 12_345, 1_000_000_007] {
            for need in [1, 100, 1_000] {
                for want in [0, need, 5_000, 1_000_000_000_000] {
                    for floor in [0, 64, 1_000_000] {
                        account += 1;
                        let user = format!("grid-{account}");
                        top_up(&*store, &user, balance).await;
                        let mut request = ask(&user, None, need, want);
                        request.floor_micros = floor;
                        let outcome = store.take_lease(request.clone()).await.unwrap();
                        let point = (balance, need, want, floor);
                        if balance < need {
                            let short = LeaseOutcome::Short {
                                balance_micros: balance,
                            };
                            assert_eq!(outcome, short, "{point:?}");
                            assert_eq!(ledger_totals(&*store, &user).await.sum, balance);
                            continue;
                        }
                        let LeaseOutcome::Taken {
                            lease_id,
                            taken_micros,
                        } = outcome
                        else {
                            panic!("{point:?}: {outcome:?}");
                        };
                        let expected = llmgate_core::credits::lease_take(balance, &request);
                        assert_eq!(taken_micros, expected, "{point:?}");
                        // The same lease extended from what is left.
                        let left = balance - taken_micros;
                        request.lease_id = Some(lease_id.clone());
                        let again = store.take_lease(request.clone()).await.unwrap();
                        let expected_again = if left < need {
                            LeaseOutcome::Short {
                                balance_micros: left,
                            }
                        } else {
                            LeaseOutcome::Taken {
                                lease_id,
                                taken_micros: llmgate_core::credits::lease_take(left, &request),
                            }
                        };
                        assert_eq!(again, expected_again, "{point:?}, again");
                        assert_eq!(store.balance(&user).await.unwrap(), balance, "{point:?}");
                    }
                }
            }
        }
    }

    pub async fn concurrent_takes_never_overdraw(store: Arc<dyn CreditStore>) {
        top_up(&*store, "eve", 10_000).await;
        let takes = (0..40).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take_lease(ask("eve", None, 300, 300)).await })
        });
        let mut taken = 0;
        for outcome in futures::future::join_all(takes).await {
            match outcome.unwrap().unwrap() {
                LeaseOutcome::Taken { taken_micros, .. } => taken += taken_micros,
                LeaseOutcome::Short { balance_micros } => assert!(balance_micros < 300),
            }
        }
        assert_eq!(taken, 33 * 300);
        let totals = ledger_totals(&*store, "eve").await;
        assert_eq!(totals.sum, 10_000 - taken);
        assert_eq!(store.balance("eve").await.unwrap(), 10_000);
    }
}

/// One `#[tokio::test]` per case for one backend.
macro_rules! leases {
    ($backend:ident => $fixture:path) => {
        mod $backend {
            leases!(@cases $fixture;
                take_charge_and_return_move_exact_amounts,
                a_take_leaves_half_of_the_surplus,
                a_retried_write_applies_once,
                a_reclaimed_lease_charges_nothing,
                concurrent_takes_never_overdraw,
                takes_are_sized_as_lease_take_sizes_them,
                a_batch_of_mixed_lease_writes_applies_each_once,
            );
        }
    };
    (@cases $fixture:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(fixture) = $fixture().await else { return };
                super::cases::$case(fixture.store.clone()).await;
            }
        )*
    };
}

leases!(memory => crate::support::memory_fixture);
leases!(sqlite => crate::support::sqlite_fixture);
leases!(postgres => crate::support::postgres_fixture);
leases!(redis_cached_sqlite => crate::support::cached_sqlite_fixture);

/// The SQL ledgers stay exact for `ledger verify` after a batch of mixed lease writes.
mod verified {
    use std::sync::Arc;

    use llmgate_credits::{PostgresCreditStore, SqliteCreditStore};

    use crate::support::{TestPostgres, TestSqlite};

    #[tokio::test]
    async fn sqlite_verifies_after_mixed_lease_batches() {
        let db = TestSqlite::new();
        let store = Arc::new(SqliteCreditStore::connect(&db.url).await.unwrap());
        super::cases::a_batch_of_mixed_lease_writes_applies_each_once(store.clone()).await;
        let report = store.verify_ledger().await.unwrap();
        assert!(report.is_exact(), "{report:?}");
    }

    #[tokio::test]
    async fn postgres_verifies_after_mixed_lease_batches() {
        let Some(db) = TestPostgres::create().await else {
            return;
        };
        let store = Arc::new(PostgresCreditStore::connect(&db.url).await.unwrap());
        super::cases::a_batch_of_mixed_lease_writes_applies_each_once(store.clone()).await;
        let report = store.verify_ledger().await.unwrap();
        assert!(report.is_exact(), "{report:?}");
    }
}

/// PostgreSQL's take and a batch's lease charges are single statements whose snapshot is taken
/// before they wait for the rows they lock: a row that changed meanwhile (here a transaction
/// holding it commits a change) is what they compute from and write.
mod waits {
    use std::sync::Arc;
    use std::time::Duration;

    use llmgate_core::credits::{
        CreditStore, LeaseCharge, LeaseOutcome, LeaseRequest, LedgerWrite, Written,
    };
    use llmgate_credits::PostgresCreditStore;
    use sqlx::{Connection, PgConnection};
    use tokio::task::JoinHandle;

    use super::MARCH_1;
    use crate::support::{TestPostgres, top_up, usage_record};

    fn ask(user_id: &str, lease_id: Option<String>, need: i64) -> LeaseRequest {
        LeaseRequest {
            user_id: user_id.into(),
            lease_id,
            need_micros: need,
            want_micros: need,
            floor_micros: 0,
            ttl_secs: 600,
        }
    }

    /// A connection with `statement` run in a transaction left open (behind the ledger's
    /// back, no entries: only the row's lock and value matter here).
    async fn holding(url: &str, statement: &str) -> PgConnection {
        let mut other = PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("BEGIN; {statement}")))
            .execute(&mut other)
            .await
            .unwrap();
        other
    }

    /// `task`'s outcome, once it waited for a row `other` holds and `other` committed.
    async fn after_the_wait<T>(url: &str, mut other: PgConnection, task: JoinHandle<T>) -> T {
        until_one_waits(url).await;
        sqlx::raw_sql("COMMIT").execute(&mut other).await.unwrap();
        task.await.unwrap()
    }

    /// Until one backend of the database waits for a row lock.
    async fn until_one_waits(url: &str) {
        let mut watcher = PgConnection::connect(url).await.unwrap();
        for _ in 0..500 {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut watcher)
            .await
            .unwrap();
            if waiting > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("nothing waits for a row lock");
    }

    #[tokio::test]
    async fn a_take_waiting_on_a_growing_balance_takes_from_what_it_grew_to() {
        let Some(db) = TestPostgres::create().await else {
            return;
        };
        let store = Arc::new(PostgresCreditStore::connect(&db.url).await.unwrap());
        top_up(&*store, "gus", 100).await;
        let other = holding(
            &db.url,
            "UPDATE credit_balances SET balance_micros = balance_micros + 1000 \
             WHERE user_id = 'gus'",
        )
        .await;
        let take = tokio::spawn({
            let store = store.clone();
            async move { store.take_lease(ask("gus", None, 150)).await }
        });
        let outcome = after_the_wait(&db.url, other, take).await.unwrap();
        assert!(
            matches!(
                outcome,
                LeaseOutcome::Taken {
                    taken_micros: 150,
                    ..
                }
            ),
            "{outcome:?}"
        );
        assert_eq!(store.balance("gus").await.unwrap(), 1_100);
    }

    #[tokio::test]
    async fn a_charge_waiting_on_a_growing_lease_charges_what_it_grew_to() {
        let Some(db) = TestPostgres::create().await else {
            return;
        };
        let store = Arc::new(PostgresCreditStore::connect(&db.url).await.unwrap());
        top_up(&*store, "hal", 10_000).await;
        let LeaseOutcome::Taken { lease_id, .. } =
            store.take_lease(ask("hal", None, 200)).await.unwrap()
        else {
            panic!("no lease");
        };
        let other = holding(
            &db.url,
            &format!(
                "UPDATE credit_holds SET amount_micros = amount_micros + 1000 WHERE id = {lease_id}"
            ),
        )
        .await;
        // More than the lease held before the other transaction grew it.
        let mut usage = usage_record("hal", "req-1", "m", "p", 500, MARCH_1);
        usage.cost_micros = 500;
        let charge = LedgerWrite::LeaseCharge(LeaseCharge {
            lease_id: lease_id.clone(),
            seq: 1,
            usage,
            ttl_secs: 600,
        });
        let batch = tokio::spawn({
            let store = store.clone();
            async move { store.write_batch(&[charge]).await }
        });
        let written = after_the_wait(&db.url, other, batch).await;
        assert!(
            matches!(written[..], [Ok(Written::LeaseCharged(Some(_)))]),
            "{written:?}"
        );
        let mut check = PgConnection::connect(&db.url).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT amount_micros FROM credit_holds WHERE id = $1")
            .bind(lease_id.parse::<i64>().unwrap())
            .fetch_one(&mut check)
            .await
            .unwrap();
        assert_eq!(left, 200 + 1_000 - 500);
    }
}
