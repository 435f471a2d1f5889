//! One ledger contract, run against every `CreditStore` backend: the in-memory reference,
//! SQLite, PostgreSQL and the Redis cache over SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

/// 2026-03-01T00:00:00Z.
const MARCH_1: i64 = 1_772_323_200;
const DAY: i64 = 86_400;

mod cases {
    use std::sync::Arc;

    use llmgate_core::{
        ErrorKind,
        credits::{
            BudgetHold, Credit, CreditKind, CreditStore, Hold, HoldRequest, KeySource, Page,
            TransactionKind, UsageGroup, UsageQuery,
        },
    };

    use super::support::{ledger_totals, top_up, unique, usage_record};
    use super::{DAY, MARCH_1};

    fn hold_request(user_id: &str, amount_micros: i64, ttl_secs: u64) -> HoldRequest {
        HoldRequest {
            user_id: user_id.to_owned(),
            request_id: unique("req-"),
            amount_micros,
            ttl_secs,
            budget: None,
        }
    }

    fn credit(user_id: &str, key: &str, amount_micros: i64) -> Credit {
        Credit {
            user_id: user_id.to_owned(),
            kind: CreditKind::TopUp,
            amount_micros,
            idempotency_key: key.to_owned(),
            reason: "test".to_owned(),
        }
    }

    fn page(limit: u32, before_id: Option<i64>) -> Page {
        Page { limit, before_id }
    }

    pub async fn hold_reserves_and_settle_charges_the_cost(store: Arc<dyn CreditStore>) {
        top_up(&*store, "ann", 10_000).await;
        let hold = store.hold(hold_request("ann", 3_000, 600)).await.unwrap();
        assert_eq!(hold.user_id, "ann");
        assert_eq!(hold.amount_micros, 3_000);
        assert_eq!(store.balance("ann").await.unwrap(), 7_000);

        let mut usage = usage_record("ann", "req-1", "gpt-x", "openai", 1_200, MARCH_1);
        usage.key_source = KeySource::Platform;
        assert_eq!(store.settle(&hold, &usage).await.unwrap(), 8_800);
        assert_eq!(store.balance("ann").await.unwrap(), 8_800);

        let entries = store.transactions("ann", page(10, None)).await.unwrap();
        let kinds: Vec<_> = entries.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            [
                TransactionKind::Charge,
                TransactionKind::Release,
                TransactionKind::Hold,
                TransactionKind::TopUp
            ]
        );
        let charge = &entries[0];
        assert_eq!(charge.amount_micros, -1_200);
        assert_eq!(charge.balance_after_micros, 8_800);
        assert_eq!(charge.model.as_deref(), Some("gpt-x"));
        assert_eq!(charge.provider.as_deref(), Some("openai"));
        assert_eq!(charge.prompt_tokens, Some(10));
        assert_eq!(charge.completion_tokens, Some(20));
        assert_eq!(charge.key_source, Some(KeySource::Platform));
        assert_eq!(charge.request_id.as_deref(), Some("req-1"));
        // The settle gives the whole hold back, then takes the charge: a bank statement.
        let released = &entries[1];
        assert_eq!(released.amount_micros, 3_000);
        assert_eq!(released.balance_after_micros, 10_000);
        assert_eq!(released.request_id.as_deref(), Some("req-1"));
        let held = &entries[2];
        assert_eq!(held.amount_micros, -3_000);
        assert_eq!(held.balance_after_micros, 7_000);
        assert!(held.request_id.is_some());
        assert!(entries.windows(2).all(|pair| pair[0].id > pair[1].id));
        let sum: i64 = entries.iter().map(|t| t.amount_micros).sum();
        assert_eq!(sum, 8_800, "the entries add up to the balance");
    }

    pub async fn settle_caps_the_charge_at_the_hold(store: Arc<dyn CreditStore>) {
        top_up(&*store, "bob", 5_000).await;
        let hold = store.hold(hold_request("bob", 1_000, 600)).await.unwrap();
        let usage = usage_record("bob", "r", "m", "p", 9_999, MARCH_1);
        assert_eq!(store.settle(&hold, &usage).await.unwrap(), 4_000);

        let hold = store.hold(hold_request("bob", 1_000, 600)).await.unwrap();
        let usage = usage_record("bob", "r2", "m", "p", -50, MARCH_1);
        assert_eq!(store.settle(&hold, &usage).await.unwrap(), 4_000);

        let entries = store.transactions("bob", page(10, None)).await.unwrap();
        assert_eq!(entries[0].amount_micros, 0);
        assert_eq!(entries[2].amount_micros, -1_000);
        let usage = store
            .usage(&UsageQuery {
                user_id: Some("bob".into()),
                from_day: None,
                to_day: None,
                group_by: UsageGroup::Model,
            })
            .await
            .unwrap();
        assert_eq!(usage.len(), 1);
        assert_eq!(
            usage[0].cost_micros, 1_000,
            "usage records the capped charge"
        );
        assert_eq!(usage[0].requests, 2);
    }

    pub async fn settling_twice_or_releasing_a_settled_hold_changes_nothing(
        store: Arc<dyn CreditStore>,
    ) {
        top_up(&*store, "cat", 2_000).await;
        let hold = store.hold(hold_request("cat", 1_500, 600)).await.unwrap();
        let usage = usage_record("cat", "r", "m", "p", 500, MARCH_1);
        assert_eq!(store.settle(&hold, &usage).await.unwrap(), 1_500);
        let before = store.transactions("cat", page(100, None)).await.unwrap();

        let again = usage_record("cat", "r", "m", "p", 1_500, MARCH_1);
        assert_eq!(store.settle(&hold, &again).await.unwrap(), 1_500);
        store.release(&hold).await.unwrap();
        assert_eq!(store.balance("cat").await.unwrap(), 1_500);
        assert_eq!(
            store.transactions("cat", page(100, None)).await.unwrap(),
            before
        );
        let usage = store
            .usage(&UsageQuery {
                user_id: Some("cat".into()),
                from_day: None,
                to_day: None,
                group_by: UsageGroup::Day,
            })
            .await
            .unwrap();
        assert_eq!(usage[0].requests, 1);
        assert_eq!(usage[0].cost_micros, 500);

        // A hold id that never existed is a no-op too.
        let ghost = Hold {
            id: "999999".into(),
            user_id: "cat".into(),
            amount_micros: 10,
        };
        assert_eq!(store.settle(&ghost, &again).await.unwrap(), 1_500);
        store.release(&ghost).await.unwrap();
        assert_eq!(store.balance("cat").await.unwrap(), 1_500);
    }

    pub async fn release_gives_the_whole_hold_back_once(store: Arc<dyn CreditStore>) {
        top_up(&*store, "dan", 1_000).await;
        let hold = store.hold(hold_request("dan", 600, 600)).await.unwrap();
        assert_eq!(store.balance("dan").await.unwrap(), 400);
        store.release(&hold).await.unwrap();
        assert_eq!(store.balance("dan").await.unwrap(), 1_000);
        store.release(&hold).await.unwrap();
        assert_eq!(store.balance("dan").await.unwrap(), 1_000);
        let usage = usage_record("dan", "r", "m", "p", 600, MARCH_1);
        assert_eq!(store.settle(&hold, &usage).await.unwrap(), 1_000);

        let entries = store.transactions("dan", page(10, None)).await.unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].kind, TransactionKind::Release);
        assert_eq!(entries[0].amount_micros, 600);
        assert_eq!(entries[0].balance_after_micros, 1_000);
    }

    pub async fn insufficient_credits_change_nothing(store: Arc<dyn CreditStore>) {
        top_up(&*store, "eve", 500).await;
        let before = store.transactions("eve", page(10, None)).await.unwrap();
        let error = store.hold(hold_request("eve", 501, 600)).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InsufficientCredits);
        assert_eq!(error.status(), 402);
        assert_eq!(store.balance("eve").await.unwrap(), 500);
        assert_eq!(
            store.transactions("eve", page(10, None)).await.unwrap(),
            before
        );

        let error = store
            .hold(hold_request("nobody", 1, 600))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InsufficientCredits);
        assert_eq!(store.balance("nobody").await.unwrap(), 0);
        assert!(
            store
                .transactions("nobody", page(10, None))
                .await
                .unwrap()
                .is_empty()
        );

        // Exactly the balance is enough.
        store.hold(hold_request("eve", 500, 600)).await.unwrap();
        assert_eq!(store.balance("eve").await.unwrap(), 0);
    }

    fn budgeted(user_id: &str, key_id: &str, period_start: i64, amount: i64) -> HoldRequest {
        HoldRequest {
            budget: Some(BudgetHold {
                key_id: key_id.to_owned(),
                period_start,
                max_micros: 1_000,
            }),
            ..hold_request(user_id, amount, 600)
        }
    }

    /// A key budget counts open holds and settled charges; a refusal changes nothing; a settle
    /// keeps only the charge, a release frees the whole hold; another period starts afresh.
    pub async fn key_budgets_count_holds_and_charges(store: Arc<dyn CreditStore>) {
        top_up(&*store, "kim", 10_000).await;
        let key = unique("key_");
        let a = store
            .hold(budgeted("kim", &key, MARCH_1, 600))
            .await
            .unwrap();
        let refused = store
            .hold(budgeted("kim", &key, MARCH_1, 401))
            .await
            .unwrap_err();
        assert_eq!(
            (refused.status(), refused.code()),
            (402, Some("key_budget_exceeded"))
        );
        assert_eq!(store.balance("kim").await.unwrap(), 9_400);
        let b = store
            .hold(budgeted("kim", &key, MARCH_1, 400))
            .await
            .unwrap();
        let usage = usage_record("kim", "r", "m", "p", 100, MARCH_1);
        store.settle(&a, &usage).await.unwrap();
        // 100 spent + 400 held.
        let c = store
            .hold(budgeted("kim", &key, MARCH_1, 500))
            .await
            .unwrap();
        store.release(&b).await.unwrap();
        // 100 spent + 500 held.
        store
            .hold(budgeted("kim", &key, MARCH_1, 400))
            .await
            .unwrap();
        assert!(store.hold(budgeted("kim", &key, MARCH_1, 1)).await.is_err());
        store.release(&c).await.unwrap();
        store
            .hold(budgeted("kim", &key, MARCH_1, 500))
            .await
            .unwrap();
        // The next day's period is its own.
        store
            .hold(budgeted("kim", &key, MARCH_1 + DAY, 1_000))
            .await
            .unwrap();
        assert_eq!(
            store.balance("kim").await.unwrap(),
            10_000 - 100 - 400 - 500 - 1_000
        );
        // A balance too small refuses first, and leaves the budget untouched.
        let other = unique("key_");
        top_up(&*store, "lee", 300).await;
        assert_eq!(
            store
                .hold(budgeted("lee", &other, MARCH_1, 400))
                .await
                .unwrap_err()
                .code(),
            Some("insufficient_credits")
        );
        top_up(&*store, "lee", 10_000).await;
        store
            .hold(budgeted("lee", &other, MARCH_1, 1_000))
            .await
            .unwrap();
    }

    /// Twenty holds at once against a budget with room for five: exactly five are placed.
    pub async fn concurrent_holds_never_pass_a_key_budget(store: Arc<dyn CreditStore>) {
        top_up(&*store, "lou", 1_000_000).await;
        let key = unique("key_");
        let holds = (0..20).map(|_| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move { store.hold(budgeted("lou", &key, MARCH_1, 200)).await })
        });
        let placed = futures::future::join_all(holds)
            .await
            .into_iter()
            .filter(|held| held.as_ref().unwrap().is_ok())
            .count();
        assert_eq!(placed, 5);
        assert_eq!(store.balance("lou").await.unwrap(), 1_000_000 - 1_000);
    }

    pub async fn zero_hold_works_for_a_user_without_credits(store: Arc<dyn CreditStore>) {
        let hold = store.hold(hold_request("zed", 0, 600)).await.unwrap();
        assert_eq!(store.balance("zed").await.unwrap(), 0);
        let usage = usage_record("zed", "r", "m", "p", 5, MARCH_1);
        assert_eq!(store.settle(&hold, &usage).await.unwrap(), 0);
        assert!(store.hold(hold_request("zed", -1, 600)).await.is_err());
    }

    pub async fn credits_apply_once_per_idempotency_key(store: Arc<dyn CreditStore>) {
        let key = unique("stripe:cs_");
        let first = store.credit(credit("fay", &key, 700)).await.unwrap();
        assert!(first.applied);
        assert_eq!(first.balance_micros, 700);
        let repeat = store.credit(credit("fay", &key, 700)).await.unwrap();
        assert!(!repeat.applied);
        assert_eq!(repeat.balance_micros, 700);
        // Keys are global: the same key for someone else is a repeat too.
        let other = store.credit(credit("gus", &key, 700)).await.unwrap();
        assert!(!other.applied);
        assert_eq!(other.balance_micros, 0);
        assert_eq!(store.balance("fay").await.unwrap(), 700);
        assert_eq!(store.balance("gus").await.unwrap(), 0);

        let refund = Credit {
            kind: CreditKind::Refund,
            ..credit("fay", &unique("refund-"), 50)
        };
        assert_eq!(store.credit(refund).await.unwrap().balance_micros, 750);
        let grant = Credit {
            kind: CreditKind::Grant,
            ..credit("fay", &unique("grant-"), 250)
        };
        assert_eq!(store.credit(grant).await.unwrap().balance_micros, 1_000);

        let entries = store.transactions("fay", page(10, None)).await.unwrap();
        let kinds: Vec<_> = entries.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            [
                TransactionKind::Grant,
                TransactionKind::Refund,
                TransactionKind::TopUp
            ]
        );
        assert_eq!(entries[2].idempotency_key.as_deref(), Some(key.as_str()));
        assert_eq!(entries[2].reason.as_deref(), Some("test"));

        for amount in [0, -5] {
            let error = store
                .credit(credit("fay", &unique("bad-"), amount))
                .await
                .unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidRequest);
        }
        assert_eq!(store.balance("fay").await.unwrap(), 1_000);
    }

    pub async fn transactions_page_newest_first(store: Arc<dyn CreditStore>) {
        for amount in 1..=5 {
            top_up(&*store, "hal", amount).await;
            top_up(&*store, "ivy", 100).await;
        }
        let first = store.transactions("hal", page(2, None)).await.unwrap();
        let amounts: Vec<_> = first.iter().map(|t| t.amount_micros).collect();
        assert_eq!(amounts, [5, 4]);
        let second = store
            .transactions("hal", page(2, Some(first[1].id)))
            .await
            .unwrap();
        let amounts: Vec<_> = second.iter().map(|t| t.amount_micros).collect();
        assert_eq!(amounts, [3, 2]);
        let third = store
            .transactions("hal", page(2, Some(second[1].id)))
            .await
            .unwrap();
        assert_eq!(third.len(), 1);
        assert_eq!(third[0].amount_micros, 1);
        assert_eq!(third[0].balance_after_micros, 1);
        assert!(
            store
                .transactions("hal", page(2, Some(third[0].id)))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .transactions("hal", page(0, None))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(first[0].balance_after_micros, 15);
    }

    pub async fn usage_groups_by_model_provider_and_day_within_inclusive_days(
        store: Arc<dyn CreditStore>,
    ) {
        let record = |user: &str, model: &str, provider: &str, cost: i64, at: i64| {
            usage_record(user, &unique("r-"), model, provider, cost, at)
        };
        store
            .record_usage(&record("joe", "m-a", "p-1", 10, MARCH_1 + 5))
            .await
            .unwrap();
        store
            .record_usage(&record("joe", "m-a", "p-1", 20, MARCH_1 + DAY - 1))
            .await
            .unwrap();
        store
            .record_usage(&record("joe", "m-b", "p-1", 0, MARCH_1 + DAY))
            .await
            .unwrap();
        store
            .record_usage(&record("joe", "m-a", "p-2", 40, MARCH_1 + 2 * DAY))
            .await
            .unwrap();
        store
            .record_usage(&record("kim", "m-a", "p-1", 1_000, MARCH_1 + DAY))
            .await
            .unwrap();
        // A settled charge lands in usage as well.
        top_up(&*store, "joe", 1_000).await;
        let hold = store.hold(hold_request("joe", 100, 600)).await.unwrap();
        store
            .settle(&hold, &record("joe", "m-b", "p-2", 60, MARCH_1 + DAY + 7))
            .await
            .unwrap();

        let query = |user: Option<&str>, from: Option<&str>, to: Option<&str>, group| UsageQuery {
            user_id: user.map(str::to_owned),
            from_day: from.map(str::to_owned),
            to_day: to.map(str::to_owned),
            group_by: group,
        };
        let summary = |rows: Vec<llmgate_core::credits::UsageRow>| {
            rows.into_iter()
                .map(|r| {
                    assert_eq!(r.prompt_tokens, 10 * r.requests);
                    assert_eq!(r.completion_tokens, 20 * r.requests);
                    (r.key, r.requests, r.cost_micros)
                })
                .collect::<Vec<_>>()
        };

        let by_day = store
            .usage(&query(Some("joe"), None, None, UsageGroup::Day))
            .await
            .unwrap();
        assert_eq!(
            summary(by_day),
            [
                ("2026-03-01".to_owned(), 2, 30),
                ("2026-03-02".to_owned(), 2, 60),
                ("2026-03-03".to_owned(), 1, 40),
            ]
        );
        let by_model = store
            .usage(&query(Some("joe"), None, None, UsageGroup::Model))
            .await
            .unwrap();
        assert_eq!(
            summary(by_model),
            [("m-a".to_owned(), 3, 70), ("m-b".to_owned(), 2, 60)]
        );
        let by_provider = store
            .usage(&query(
                Some("joe"),
                Some("2026-03-02"),
                Some("2026-03-02"),
                UsageGroup::Provider,
            ))
            .await
            .unwrap();
        assert_eq!(
            summary(by_provider),
            [("p-1".to_owned(), 1, 0), ("p-2".to_owned(), 1, 60)]
        );
        let from_second = store
            .usage(&query(None, Some("2026-03-02"), None, UsageGroup::Model))
            .await
            .unwrap();
        assert_eq!(
            summary(from_second),
            [("m-a".to_owned(), 2, 1_040), ("m-b".to_owned(), 2, 60)]
        );
        let until_first = store
            .usage(&query(None, None, Some("2026-03-01"), UsageGroup::Provider))
            .await
            .unwrap();
        assert_eq!(summary(until_first), [("p-1".to_owned(), 2, 30)]);
        let nothing = store
            .usage(&query(
                Some("joe"),
                Some("2026-04-01"),
                None,
                UsageGroup::Day,
            ))
            .await
            .unwrap();
        assert!(nothing.is_empty());
    }

    pub async fn expired_holds_are_reclaimed_once(store: Arc<dyn CreditStore>) {
        top_up(&*store, "lea", 1_000).await;
        let expired = store.hold(hold_request("lea", 300, 0)).await.unwrap();
        let live = store.hold(hold_request("lea", 200, 3_600)).await.unwrap();
        assert_eq!(store.balance("lea").await.unwrap(), 500);
        assert_eq!(store.reclaim_expired().await.unwrap(), 1);
        assert_eq!(store.balance("lea").await.unwrap(), 800);
        assert_eq!(store.reclaim_expired().await.unwrap(), 0);
        // The reclaimed hold is closed: settling it now charges nothing.
        let usage = usage_record("lea", "r", "m", "p", 100, MARCH_1);
        assert_eq!(store.settle(&expired, &usage).await.unwrap(), 800);
        assert_eq!(store.settle(&live, &usage).await.unwrap(), 900);
        let entries = store.transactions("lea", page(10, None)).await.unwrap();
        let kinds: Vec<_> = entries.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            [
                TransactionKind::Charge,
                TransactionKind::Release,
                TransactionKind::Release,
                TransactionKind::Hold,
                TransactionKind::Hold,
                TransactionKind::TopUp
            ]
        );
    }

    pub async fn balance_equals_credits_minus_charges_in_the_ledger(store: Arc<dyn CreditStore>) {
        let user = "max";
        top_up(&*store, user, 50_000).await;
        let mut open = 0;
        for round in 0..12_i64 {
            let hold = store
                .hold(hold_request(user, 1_000 + round, 600))
                .await
                .unwrap();
            match round % 4 {
                0 => store.release(&hold).await.unwrap(),
                1 => open += hold.amount_micros,
                _ => {
                    let usage = usage_record(user, "r", "m", "p", 37 * round, MARCH_1);
                    store.settle(&hold, &usage).await.unwrap();
                }
            }
            if round == 5 {
                let refund = Credit {
                    kind: CreditKind::Refund,
                    ..credit(user, &unique("refund-"), 123)
                };
                store.credit(refund).await.unwrap();
            }
        }
        let balance = store.balance(user).await.unwrap();
        let totals = ledger_totals(&*store, user).await;
        assert_eq!(totals.credits, 50_123);
        assert_eq!(balance, totals.credits - totals.charges - open);
        assert_eq!(totals.latest_balance_after, Some(balance));
    }

    /// The two worked examples of docs/credits.md, priced from their token classes, settled
    /// one alone and one in a batch: the charges are exact and every class is kept on the
    /// charge entry and summed in usage.
    pub async fn token_classes_are_charged_exactly_and_kept(store: Arc<dyn CreditStore>) {
        use llmgate_core::{
            credits::LedgerWrite,
            pricing::{Decimal, ModelPrice, PriceTerms, TokenClasses},
        };
        let dec = |text: &str| text.parse::<Decimal>().unwrap();
        let terms = |price| PriceTerms {
            price,
            markup: dec("0.4"),
            multiplier: dec("0.25"),
            credits_per_usd: dec("1000"),
        };
        let anthropic = terms(
            ModelPrice::new(dec("0.003"), dec("0.015"))
                .with_cache_prices(dec("0.0003"), dec("0.00375")),
        )
        .charge_micros(&TokenClasses {
            uncached_prompt: 100,
            cache_read: 2000,
            cache_write: 1000,
            output: 500,
            reasoning: 0,
        })
        .unwrap();
        let openai = terms(
            ModelPrice::new(dec("0.002"), dec("0.008"))
                .with_cache_prices(dec("0.0005"), dec("0.002")),
        )
        .charge_micros(&TokenClasses {
            uncached_prompt: 1000,
            cache_read: 2000,
            cache_write: 0,
            output: 500,
            reasoning: 300,
        })
        .unwrap();
        assert_eq!((anthropic, openai), (4_252_500, 2_450_000));

        let user = unique("classes-");
        top_up(&*store, &user, 10_000_000).await;
        let mut first = usage_record(&user, "req-a", "claude", "anthropic", anthropic, MARCH_1);
        (first.prompt_tokens, first.completion_tokens) = (3100, 500);
        (first.cache_read_tokens, first.cache_write_tokens) = (2000, 1000);
        let hold = store
            .hold(hold_request(&user, 5_000_000, 600))
            .await
            .unwrap();
        store.settle(&hold, &first).await.unwrap();

        let mut second = usage_record(&user, "req-b", "claude", "anthropic", openai, MARCH_1);
        (second.prompt_tokens, second.completion_tokens) = (3000, 500);
        (second.cache_read_tokens, second.reasoning_tokens) = (2000, 300);
        let hold = store
            .hold(hold_request(&user, 5_000_000, 600))
            .await
            .unwrap();
        let written = store
            .write_batch(&[LedgerWrite::Settle {
                hold,
                usage: second,
            }])
            .await;
        assert!(written[0].is_ok(), "{written:?}");
        assert_eq!(
            store.balance(&user).await.unwrap(),
            10_000_000 - anthropic - openai
        );

        let entries = store.transactions(&user, page(10, None)).await.unwrap();
        let charges: Vec<_> = entries
            .iter()
            .filter(|t| t.kind == TransactionKind::Charge)
            .map(|t| {
                (
                    t.amount_micros,
                    t.prompt_tokens,
                    t.cache_read_tokens,
                    t.cache_write_tokens,
                    t.completion_tokens,
                    t.reasoning_tokens,
                )
            })
            .collect();
        assert_eq!(
            charges,
            [
                (
                    -2_450_000,
                    Some(3000),
                    Some(2000),
                    Some(0),
                    Some(500),
                    Some(300)
                ),
                (
                    -4_252_500,
                    Some(3100),
                    Some(2000),
                    Some(1000),
                    Some(500),
                    Some(0)
                ),
            ]
        );
        let usage = store
            .usage(&UsageQuery {
                user_id: Some(user.clone()),
                from_day: None,
                to_day: None,
                group_by: UsageGroup::Model,
            })
            .await
            .unwrap();
        assert_eq!(usage.len(), 1);
        let row = &usage[0];
        assert_eq!(
            (
                row.requests,
                row.prompt_tokens,
                row.cache_read_tokens,
                row.cache_write_tokens,
                row.completion_tokens,
                row.reasoning_tokens,
                row.cost_micros
            ),
            (2, 6100, 4000, 1000, 1000, 300, 6_702_500)
        );
    }

    pub async fn monthly_grant_applies_once_per_calendar_month(store: Arc<dyn CreditStore>) {
        use llmgate_credits::grant_monthly;
        let first = grant_monthly(&*store, "ned", 1_000, MARCH_1).await.unwrap();
        assert!(first.applied);
        let later_in_march = MARCH_1 + 30 * DAY + DAY - 1;
        let repeat = grant_monthly(&*store, "ned", 1_000, later_in_march)
            .await
            .unwrap();
        assert!(!repeat.applied);
        assert_eq!(repeat.balance_micros, 1_000);
        let april = grant_monthly(&*store, "ned", 1_000, MARCH_1 + 31 * DAY)
            .await
            .unwrap();
        assert!(april.applied);
        assert_eq!(april.balance_micros, 2_000);
        let none = grant_monthly(&*store, "ned", 0, MARCH_1 + 70 * DAY)
            .await
            .unwrap();
        assert!(!none.applied);
        let entries = store.transactions("ned", page(10, None)).await.unwrap();
        let keys: Vec<_> = entries
            .iter()
            .map(|t| (t.kind, t.idempotency_key.clone().unwrap()))
            .collect();
        assert_eq!(
            keys,
            [
                (TransactionKind::Grant, "grant:ned:2026-04".to_owned()),
                (TransactionKind::Grant, "grant:ned:2026-03".to_owned()),
            ]
        );
    }
}

/// One `#[tokio::test]` per case for one backend.
macro_rules! contract {
    ($backend:ident => $fixture:path) => {
        contract!($backend => $fixture;
            hold_reserves_and_settle_charges_the_cost,
            settle_caps_the_charge_at_the_hold,
            settling_twice_or_releasing_a_settled_hold_changes_nothing,
            release_gives_the_whole_hold_back_once,
            insufficient_credits_change_nothing,
            zero_hold_works_for_a_user_without_credits,
            credits_apply_once_per_idempotency_key,
            transactions_page_newest_first,
            usage_groups_by_model_provider_and_day_within_inclusive_days,
            expired_holds_are_reclaimed_once,
            balance_equals_credits_minus_charges_in_the_ledger,
            monthly_grant_applies_once_per_calendar_month,
            token_classes_are_charged_exactly_and_kept,
            key_budgets_count_holds_and_charges,
            concurrent_holds_never_pass_a_key_budget,
        );
    };
    ($backend:ident => $fixture:path; $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(fixture) = $fixture().await else { return };
                    super::cases::$case(fixture.store.clone()).await;
                }
            )*
        }
    };
}

contract!(memory => crate::support::memory_fixture);
contract!(sqlite => crate::support::sqlite_fixture);
contract!(postgres => crate::support::postgres_fixture);
contract!(redis_cached_sqlite => crate::support::cached_sqlite_fixture);
