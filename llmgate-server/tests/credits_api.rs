#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The credits endpoints through a running server, on SQLite and on PostgreSQL: the spec's
//! worked example charged exactly, streams charged from their usage chunk, 402 before any
//! upstream call, free models in usage, the ledger's pagination, usage grouping and date
//! filters, amounts refused, and a hold that outlives `storage.hold_ttl_secs` reclaimed.

#[macro_use]
mod support;

use llmgate_core::memory::{day_of, unix_now};
use llmgate_testkit::{Reply, openai};
use serde_json::{Value, json};
use support::money::*;

on_both_databases!(
    worked_example_is_charged_exactly_700000_micros,
    streamed_request_is_charged_from_its_usage_chunk,
    balance_below_the_hold_is_402_and_upstream_sees_nothing,
    free_model_costs_nothing_and_still_shows_in_usage,
    transactions_page_newest_first_with_a_cursor,
    usage_groups_and_filters_by_day_and_user,
    bad_amounts_are_refused_and_change_nothing,
    added_credits_apply_once_per_idempotency_key,
    users_see_only_their_own_credits,
);

async fn worked_example_is_charged_exactly_700000_micros(db: Db) {
    let Some((_db, fakes, gateway)) = setup(db, Options::default()).await else {
        return;
    };
    let key = gateway.user("ann", "starter").await;
    gateway.add_credits("ann", json!(10)).await;
    answer_with_usage(&fakes.upstream, "up-cheap", 400, 600);

    let response = gateway.chat(&key, ask("cheap", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmgate-cost-micros"], "700000");
    assert_eq!(response.headers()["x-llmgate-key-source"], "platform");

    let (status, credits) = gateway.get("/api/v1/llm/credits", &key).await;
    assert_eq!(status, 200);
    assert_eq!(
        credits,
        json!({"user_id": "ann", "tier": "starter", "balance_micros": 9_300_000,
               "balance": "9.3", "low_balance": false})
    );

    let (_, page) = gateway.get("/api/v1/llm/credits/transactions", &key).await;
    let entries = page["data"].as_array().unwrap();
    let charge = entries.iter().find(|e| e["kind"] == "charge").unwrap();
    assert_eq!(charge["amount_micros"], -700_000);
    assert_eq!(charge["amount"], "-0.7");
    // The balance lease taken for the request is out of the balance (it counts as spendable,
    // as the credits endpoint shows), so the running balance reads lower until it goes back;
    // the entries add up to it all the same.
    let sum: i64 = entries
        .iter()
        .map(|e| e["amount_micros"].as_i64().unwrap())
        .sum();
    assert_eq!(entries[0]["balance_after_micros"], sum);
    let lease_out = 9_300_000 - charge["balance_after_micros"].as_i64().unwrap();
    assert!(lease_out >= 0, "{lease_out}");
    assert_eq!(charge["model"], "cheap");
    assert_eq!(charge["provider"], "fake");
    assert_eq!(charge["prompt_tokens"], 400);
    assert_eq!(charge["completion_tokens"], 600);
    assert_eq!(charge["key_source"], "platform");
    // Exactly one charge, after the credit; newest first.
    assert_eq!(entries.iter().filter(|e| e["kind"] == "charge").count(), 1);
    assert_eq!(entries.last().unwrap()["kind"], "top_up");
    let ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    gateway.stop().await;
}

async fn streamed_request_is_charged_from_its_usage_chunk(db: Db) {
    let Some((_db, fakes, gateway)) = setup(db, Options::default()).await else {
        return;
    };
    let key = gateway.user("ann", "starter").await;
    gateway.add_credits("ann", json!("10")).await;
    fakes.upstream.push(Reply::sse(&openai::text_chunks(
        "up-cheap",
        &["Hel", "lo"],
        Some((400, 600)),
    )));

    let response = gateway.chat(&key, ask("cheap", true)).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let events: Vec<&str> = body
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let usage_chunk: Value = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .find(|chunk| chunk.get("usage").is_some_and(|u| !u.is_null()))
        .unwrap();
    assert_eq!(usage_chunk["llmgate"]["cost_micros"], 700_000);
    assert_eq!(gateway.balance(&key).await, 9_300_000);
    gateway.stop().await;
}

async fn balance_below_the_hold_is_402_and_upstream_sees_nothing(db: Db) {
    let Some((_db, fakes, gateway)) = setup(db, Options::default()).await else {
        return;
    };
    let key = gateway.user("ann", "starter").await;
    // The hold covers the prompt bound plus 4000 output tokens (balanced): about 2.8 credits.
    gateway.add_credits("ann", json!(1)).await;
    answer_with_usage(&fakes.upstream, "up-cheap", 400, 600);

    let response = gateway.chat(&key, ask("cheap", false)).await;
    assert_eq!(response.status(), 402);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "insufficient_credits");
    let stream = gateway.chat(&key, ask("cheap", true)).await;
    assert_eq!(stream.status(), 402);
    assert_eq!(fakes.upstream.request_count(), 0);
    assert_eq!(gateway.balance(&key).await, 1_000_000);

    // Nothing but the top-up reached the ledger.
    let (_, page) = gateway.get("/api/v1/llm/credits/transactions", &key).await;
    let kinds: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["top_up"]);
    gateway.stop().await;
}

async fn free_model_costs_nothing_and_still_shows_in_usage(db: Db) {
    let Some((_db, fakes, gateway)) = setup(db, Options::default()).await else {
        return;
    };
    // No credits at all: a free model needs none.
    let key = gateway.user("ann", "starter").await;
    answer_with_usage(&fakes.upstream, "up-gratis", 12, 30);

    let response = gateway.chat(&key, ask("gratis", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmgate-cost-micros"], "0");
    assert_eq!(gateway.balance(&key).await, 0);

    let (status, usage) = gateway.get("/api/v1/llm/usage?group_by=model", &key).await;
    assert_eq!(status, 200);
    assert_eq!(
        usage["data"],
        json!([{"key": "gratis", "requests": 1, "prompt_tokens": 12, "completion_tokens": 30,
                "cache_read_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0,
                "cost_micros": 0, "cost": "0"}])
    );
    gateway.stop().await;
}

async fn transactions_page_newest_first_with_a_cursor(db: Db) {
    let Some((_db, _fakes, gateway)) = setup(db, Options::default()).await else {
        return;
    };
    let key = gateway.user("ann", "starter").await;
    for credits in 1..=5 {
        gateway.add_credits("ann", json!(credits)).await;
    }

    let mut seen = Vec::new();
    let mut path = "/api/v1/llm/credits/transactions?limit=2".to_owned();
    loop {
        let (status, page) = gateway.get(&path, &key).await;
        assert_eq!(status, 200, "{page}");
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|e| {
            (
                e["id"].as_i64().unwrap(),
                e["amount_micros"].as_i64().unwrap(),
            )
        }));
        match page["next_before"].as_i64() {
            Some(before) => {
                assert_eq!(before, seen.last().unwrap().0);
                path = format!("/api/v1/llm/credits/transactions?limit=2&before={before}");
            }
            None => break,
        }
    }
    let amounts: Vec<i64> = seen.iter().map(|(_, a)| *a).collect();
    assert_eq!(
        amounts,
        [5_000_000, 4_000_000, 3_000_000, 2_000_000, 1_000_000]
    );
    assert!(seen.windows(2).all(|w| w[0].0 > w[1].0));

    // A page that holds everything has no next cursor; the default page holds 50.
    let (_, all) = gateway.get("/api/v1/llm/credits/transactions", &key).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 5);
    assert_eq!(all["next_before"], Value::Null);
    let (_, exact) = gateway
        .get("/api/v1/llm/credits/transactions?limit=5", &key)
        .await;
    assert_eq!(exact["next_before"], Value::Null);

    for bad in [
        "limit=0",
        "limit=501",
        "limit=ten",
        "before=x",
        "before=-3",
        "page=2",
    ] {
        let (status, body) = gateway
            .get(&format!("/api/v1/llm/credits/transactions?{bad}"), &key)
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    gateway.stop().await;
}

async fn usage_groups_and_filters_by_day_and_user(db: Db) {
    let Some((_db, fakes, gateway)) = setup(db, Options::default()).await else {
        return;
    };
    let ann = gateway.user("ann", "starter").await;
    let bob = gateway.user("bob", "starter").await;
    gateway.add_credits("ann", json!(10)).await;
    gateway.add_credits("bob", json!(10)).await;
    for (key, model, upstream_model) in [
        (&ann, "cheap", "up-cheap"),
        (&ann, "cheap", "up-cheap"),
        (&ann, "gratis", "up-gratis"),
        (&bob, "cheap", "up-cheap"),
    ] {
        answer_with_usage(&fakes.upstream, upstream_model, 400, 600);
        assert_eq!(gateway.chat(key, ask(model, false)).await.status(), 200);
    }
    let today = day_of(unix_now());
    let yesterday = day_of(unix_now() - 86_400);
    let tomorrow = day_of(unix_now() + 86_400);

    let rows = |body: &Value| -> Vec<(String, u64, i64)> {
        let mut rows: Vec<_> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["key"].as_str().unwrap().to_owned(),
                    r["requests"].as_u64().unwrap(),
                    r["cost_micros"].as_i64().unwrap(),
                )
            })
            .collect();
        rows.sort();
        rows
    };
    let (_, by_model) = gateway.get("/api/v1/llm/usage?group_by=model", &ann).await;
    assert_eq!(
        rows(&by_model),
        [("cheap".into(), 2, 1_400_000), ("gratis".into(), 1, 0)]
    );
    let (_, default_group) = gateway.get("/api/v1/llm/usage", &ann).await;
    assert_eq!(rows(&default_group), rows(&by_model));
    let (_, by_provider) = gateway
        .get("/api/v1/llm/usage?group_by=provider", &ann)
        .await;
    assert_eq!(rows(&by_provider), [("fake".into(), 3, 1_400_000)]);
    assert_eq!(by_provider["data"][0]["cost"], "1.4");
    let (_, by_day) = gateway
        .get(
            &format!("/api/v1/llm/usage?group_by=day&from={today}&to={today}"),
            &ann,
        )
        .await;
    assert_eq!(rows(&by_day), [(today.clone(), 3, 1_400_000)]);
    assert_eq!(by_day["data"][0]["prompt_tokens"], 1200);
    for empty in [format!("from={tomorrow}"), format!("to={yesterday}")] {
        let (status, body) = gateway
            .get(&format!("/api/v1/llm/usage?group_by=day&{empty}"), &ann)
            .await;
        assert_eq!(status, 200);
        assert_eq!(body["data"], json!([]), "{empty}");
    }

    // Users see their own; admins name one user or see everyone.
    let (status, _) = gateway.get("/api/v1/llm/usage?user_id=bob", &ann).await;
    assert_eq!(status, 403);
    let (_, own) = gateway.get("/api/v1/llm/usage?user_id=ann", &ann).await;
    assert_eq!(rows(&own), rows(&by_model));
    let (_, bobs) = gateway
        .get("/api/v1/llm/usage?user_id=bob", MASTER_KEY)
        .await;
    assert_eq!(rows(&bobs), [("cheap".into(), 1, 700_000)]);
    let (_, everyone) = gateway
        .get("/api/v1/llm/usage?group_by=provider", MASTER_KEY)
        .await;
    assert_eq!(rows(&everyone), [("fake".into(), 4, 2_100_000)]);
    let _ = bob;

    for bad in [
        "from=2025-02-30",
        "from=2025/01/01",
        "to=yesterday",
        "from=2025-01-02&to=2025-01-01",
        "group_by=week",
        "group=model",
    ] {
        let (status, body) = gateway.get(&format!("/api/v1/llm/usage?{bad}"), &ann).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    gateway.stop().await;
}

async fn bad_amounts_are_refused_and_change_nothing(db: Db) {
    let Some((_db, _fakes, gateway)) = setup(db, Options::default()).await else {
        return;
    };
    let key = gateway.user("ann", "starter").await;
    gateway.add_credits("ann", json!("2.5")).await;
    for amount in [
        json!(0),
        json!(-1),
        json!("-1"),
        json!("abc"),
        json!(""),
        json!("1.0000001"),
        json!(0.0000001),
        json!(true),
        json!(null),
        json!([1]),
        json!("1e3"),
        json!("99999999999999999999"),
    ] {
        let (status, body) = gateway
            .post(
                "/api/v1/llm/credits/add",
                MASTER_KEY,
                json!({"user_id": "ann", "amount": amount, "reason": "test"}),
            )
            .await;
        assert_eq!(status, 400, "{amount}: {body}");
        assert_eq!(body["error"]["param"], "amount", "{amount}");
    }
    for body in [
        json!({"user_id": "ann", "reason": "no amount"}),
        json!({"user_id": "ann", "amount": 1}),
        json!({"user_id": "ann", "amount": 1, "reason": "  "}),
        json!({"user_id": "ann", "amount": 1, "reason": "x", "currency": "usd"}),
        json!({"amount": 1, "reason": "the master key has no account to credit"}),
    ] {
        let (status, _) = gateway
            .post("/api/v1/llm/credits/add", MASTER_KEY, body.clone())
            .await;
        assert_eq!(status, 400, "{body}");
    }
    // Unknown users are 404, users may not add credits (not even to themselves).
    let (status, body) = gateway
        .post(
            "/api/v1/llm/credits/add",
            MASTER_KEY,
            json!({"user_id": "ghost", "amount": 1, "reason": "typo"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("user_not_found"))
    );
    let (status, _) = gateway
        .post(
            "/api/v1/llm/credits/add",
            &key,
            json!({"user_id": "ann", "amount": 1, "reason": "free money"}),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(gateway.balance(&key).await, 2_500_000);

    // Exact decimals: 0.1 + 0.2 is 0.3 here.
    gateway.add_credits("ann", json!(0.1)).await;
    let added = gateway.add_credits("ann", json!("0.2")).await;
    assert_eq!(added["balance_micros"], 2_800_000);
    assert_eq!(added["balance"], "2.8");
    assert_eq!(added["amount_micros"], 200_000);
    gateway.stop().await;
}

async fn added_credits_apply_once_per_idempotency_key(db: Db) {
    let Some((_db, _fakes, gateway)) = setup(db, Options::default()).await else {
        return;
    };
    let key = gateway.user("ann", "starter").await;
    let add = json!({"user_id": "ann", "amount": "12.5", "reason": "refund ticket 42",
                     "idempotency_key": "ticket-42"});
    let (status, first) = gateway
        .post("/api/v1/llm/credits/add", MASTER_KEY, add.clone())
        .await;
    assert_eq!(status, 200);
    assert_eq!(first["applied"], true);
    assert_eq!(first["balance_micros"], 12_500_000);
    let (status, again) = gateway
        .post("/api/v1/llm/credits/add", MASTER_KEY, add)
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["applied"], false);
    assert_eq!(again["balance_micros"], 12_500_000);
    // Without a key every call applies.
    gateway.add_credits("ann", json!(1)).await;
    gateway.add_credits("ann", json!(1)).await;
    assert_eq!(gateway.balance(&key).await, 14_500_000);
    gateway.stop().await;
}

async fn users_see_only_their_own_credits(db: Db) {
    let Some((_db, _fakes, gateway)) = setup(db, Options::default()).await else {
        return;
    };
    let ann = gateway.user("ann", "starter").await;
    let _bob = gateway.user("bob", "free").await;
    gateway.add_credits("bob", json!(3)).await;
    for path in [
        "/api/v1/llm/credits?user_id=bob",
        "/api/v1/llm/credits/transactions?user_id=bob",
    ] {
        let (status, body) = gateway.get(path, &ann).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, bob) = gateway
        .get("/api/v1/llm/credits?user_id=bob", MASTER_KEY)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            bob["user_id"].as_str(),
            bob["tier"].as_str(),
            bob["balance"].as_str()
        ),
        (Some("bob"), Some("free"), Some("3"))
    );
    let (_, bobs_ledger) = gateway
        .get("/api/v1/llm/credits/transactions?user_id=bob", MASTER_KEY)
        .await;
    assert_eq!(bobs_ledger["data"][0]["user_id"], "bob");
    let (status, _) = gateway
        .get("/api/v1/llm/credits?user_id=ghost", MASTER_KEY)
        .await;
    assert_eq!(status, 404);
    let (status, _) = gateway.get("/api/v1/llm/credits", "lg-not-a-key").await;
    assert_eq!(status, 401);
    gateway.stop().await;
}

#[tokio::test]
async fn a_hold_outliving_storage_hold_ttl_secs_is_reclaimed_and_the_request_goes_uncharged() {
    let Some(database) = Database::create(Db::Postgres).await else {
        return;
    };
    let fakes = Fakes::start().await;
    let mut config = config(&database, &fakes, Options::default());
    config.storage.hold_ttl_secs = 1;
    config.storage.reclaim_every_secs = 1;
    let gateway = Gateway::start(config).await;
    let key = gateway.user("ann", "starter").await;
    gateway.add_credits("ann", json!(10)).await;
    // The answer comes after the hold expired and a reclaim gave it back.
    fakes.upstream.push(
        Reply::json(200, openai::completion("up-cheap", "late", 400, 600))
            .first_byte_delay(std::time::Duration::from_secs(3)),
    );

    let response = gateway.chat(&key, ask("cheap", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(gateway.balance(&key).await, 10_000_000);
    let (_, page) = gateway.get("/api/v1/llm/credits/transactions", &key).await;
    let kinds: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["release", "hold", "top_up"]);
    gateway.stop().await;
}
