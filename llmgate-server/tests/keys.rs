#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! API keys as governance through the running server: model lists (also through the `openai`
//! Python SDK), budgets held like balances, expiry, revocation, rate limits, and team keys
//! that spend the team's balance. On SQLite and PostgreSQL.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::databases::Db;
use support::users::{Database, Gate, MODEL};

/// What the fake upstream's answer (400 prompt + 600 completion tokens at $0.002/1K, tier
/// starter, power level balanced) costs.
const CHARGE: i64 = 700_000;

async fn gate(db: Db) -> Option<Gate> {
    Some(Gate::start(Database::create(db).await?).await)
}

/// A user of tier starter with 1000 credits; their (unrestricted) key.
async fn funded_user(gate: &Gate, user_id: &str) -> String {
    let key = gate.create_user(user_id, "starter", "user").await;
    let (status, body) = gate
        .admin(
            "POST",
            "/api/v1/llm/credits/add",
            Some(json!({"user_id": user_id, "amount": 1000, "reason": "test"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    key
}

/// Create a key with `settings` using `key`; the response body.
async fn create_key(gate: &Gate, key: &str, settings: Value) -> Value {
    let (status, body) = gate
        .call(Some(key), "POST", "/api/v1/keys", Some(settings))
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["api_key"].as_str().unwrap().starts_with("lg-"));
    body
}

/// Micro-credits as the decimal string of credits the API takes.
fn credits(micros: i64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

fn secret(created: &Value) -> String {
    created["api_key"].as_str().unwrap().to_owned()
}

async fn chat_model(gate: &Gate, key: &str, model: &str) -> (u16, Value) {
    gate.call(
        Some(key),
        "POST",
        "/v1/chat/completions",
        Some(chat_body(model)),
    )
    .await
}

/// The most a request with `body` may cost (what it holds), read from the refusal of a key of
/// `owner` with a budget of 1 micro-credit: a request served from a balance lease leaves no
/// hold of its own in the ledger to read it from.
async fn hold_of(gate: &Gate, owner: &str, body: Value) -> i64 {
    let probe = secret(&create_key(gate, owner, json!({"max_budget": "0.000001"})).await);
    let (status, refused) = gate
        .call(Some(&probe), "POST", "/v1/chat/completions", Some(body))
        .await;
    assert_eq!(status, 402, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    let after = message.split("may cost up to ").nth(1).unwrap();
    after.split(' ').next().unwrap().parse().unwrap()
}

/// The body `chat_model` sends.
fn chat_body(model: &str) -> Value {
    json!({"model": model, "max_tokens": 1000,
           "messages": [{"role": "user", "content": "hi"}]})
}

async fn keys_of(gate: &Gate, key: &str) -> Vec<Value> {
    let (status, body) = gate.call(Some(key), "GET", "/api/v1/keys", None).await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

/// A key's listing once its `last_used_at` is there: the gateway writes it in the background,
/// so a listing right after a request may come first. Waits at most five seconds.
async fn listed_once_used(gate: &Gate, key: &str, key_id: &str) -> Value {
    for _ in 0..100 {
        let listed = keys_of(gate, key).await;
        let listed = listed.into_iter().find(|k| k["key_id"] == key_id).unwrap();
        if listed["last_used_at"].is_string() {
            return listed;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("key {key_id} was used but its last_used_at never appeared");
}

/// A key limited to one model: 403 `model_not_allowed` on another (before any upstream
/// call), `/v1/models` lists only its model, and the existing key is unrestricted.
async fn a_model_limited_key_sees_and_uses_only_its_models(db: Db) {
    let Some(gate) = gate(db).await else {
        return;
    };
    let own = funded_user(&gate, "ann").await;
    let limited = secret(&create_key(&gate, &own, json!({"name": "ci", "models": [MODEL]})).await);
    let (status, body) = chat_model(&gate, &limited, "demo/echo").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "model_not_allowed");
    assert_eq!(chat_model(&gate, &limited, MODEL).await.0, 200);
    let (_, models) = gate.call(Some(&limited), "GET", "/v1/models", None).await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [MODEL]);
    // The migration left the first key unrestricted.
    let (_, all) = gate.call(Some(&own), "GET", "/v1/models", None).await;
    assert!(all["data"].as_array().unwrap().len() >= 2);
    assert_eq!(chat_model(&gate, &own, "demo/echo").await.0, 200);
    // `auto` only when listed; globs match.
    let (status, body) = chat_model(&gate, &limited, "auto").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("model_not_allowed"))
    );
    let globbed = secret(&create_key(&gate, &own, json!({"models": ["demo/*"]})).await);
    assert_eq!(chat_model(&gate, &globbed, "demo/echo").await.0, 200);
    assert_eq!(chat_model(&gate, &globbed, MODEL).await.0, 403);
    // Embeddings and Messages refuse it too, in their own shapes.
    let (status, body) = gate
        .call(
            Some(&limited),
            "POST",
            "/v1/messages",
            Some(json!({"model": "demo/echo", "max_tokens": 10,
                        "messages": [{"role": "user", "content": "hi"}]})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "error", "{body}");
    // A restricted key cannot mint itself an unrestricted one.
    let (status, _) = gate
        .call(Some(&limited), "POST", "/api/v1/keys", Some(json!({})))
        .await;
    assert_eq!(status, 403);
    // Only the model calls that were allowed reached the upstream.
    assert_eq!(gate.upstream.requests().len(), 1);
    gate.stop().await;
}

/// A budget of N calls' worth serves N and then 402s `key_budget_exceeded`, with the spend
/// exact in the listing and the owner charged exactly N.
async fn a_key_budget_serves_exactly_what_it_covers(db: Db) {
    let Some(gate) = gate(db).await else {
        return;
    };
    let own = funded_user(&gate, "bob").await;
    assert_eq!(chat_model(&gate, &own, MODEL).await.0, 200);
    let hold = hold_of(&gate, &own, chat_body(MODEL)).await;
    assert!(hold > CHARGE);
    const N: i64 = 3;
    let budget = (N - 1) * CHARGE + hold;
    let created = create_key(
        &gate,
        &own,
        json!({"max_budget": credits(budget), "budget_period": "daily"}),
    )
    .await;
    assert_eq!(created["max_budget_micros"], budget);
    let budgeted = secret(&created);
    let before = gate.balance("bob").await;
    let mut statuses = Vec::new();
    for _ in 0..N + 2 {
        let (status, body) = chat_model(&gate, &budgeted, MODEL).await;
        if status == 402 {
            assert_eq!(body["error"]["code"], "key_budget_exceeded", "{body}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 402, 402]);
    assert_eq!(gate.balance("bob").await, before - N * CHARGE);
    let key_id = created["key_id"].as_str().unwrap();
    let listed = listed_once_used(&gate, &own, key_id).await;
    assert_eq!(listed["spend_micros"], N * CHARGE);
    assert_eq!(listed["budget_period"], "daily");
    assert!(listed.get("api_key").is_none());
    // Raising the budget lets it spend again at once on this replica.
    let (status, body) = gate
        .call(
            Some(&own),
            "PATCH",
            &format!("/api/v1/keys/{key_id}"),
            Some(json!({"max_budget": 1000})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(chat_model(&gate, &budgeted, MODEL).await.0, 200);
    gate.stop().await;
}

/// An expired key is 401 `key_expired`; a revoked one 401; rpm is 429 with Retry-After.
async fn expired_revoked_and_rate_limited_keys_are_refused(db: Db) {
    let Some(gate) = gate(db).await else {
        return;
    };
    let own = funded_user(&gate, "cy").await;
    let expired =
        secret(&create_key(&gate, &own, json!({"expires_at": "2020-01-01T00:00:00Z"})).await);
    let (status, body) = chat_model(&gate, &expired, MODEL).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("key_expired"))
    );
    let created = create_key(&gate, &own, json!({"rpm": 1})).await;
    let limited = secret(&created);
    assert_eq!(chat_model(&gate, &limited, "demo/echo").await.0, 200);
    let (status, headers, body) = gate
        .call_full(
            Some(&limited),
            "POST",
            "/v1/chat/completions",
            Some(json!({"model": "demo/echo", "messages": [{"role": "user", "content": "x"}]})),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert!(headers.contains_key("retry-after"));
    // tpm: a request bigger than the minute's allowance takes all of it, the next waits.
    let tokens = secret(&create_key(&gate, &own, json!({"tpm": 50})).await);
    assert_eq!(chat_model(&gate, &tokens, "demo/echo").await.0, 200);
    let (status, body) = chat_model(&gate, &tokens, "demo/echo").await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("50 tokens")
    );
    // An expiring key may not manage keys either.
    let soon = secret(
        &create_key(
            &gate,
            &own,
            json!({"expires_at": "2999-01-01T00:00:00+01:00"}),
        )
        .await,
    );
    assert_eq!(chat_model(&gate, &soon, "demo/echo").await.0, 200);
    let (status, _) = gate
        .call(Some(&soon), "POST", "/api/v1/keys", Some(json!({})))
        .await;
    assert_eq!(status, 403);
    let key_id = created["key_id"].as_str().unwrap();
    let (status, _) = gate
        .call(
            Some(&own),
            "DELETE",
            &format!("/api/v1/keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(chat_model(&gate, &limited, MODEL).await.0, 401);
    // Another user cannot touch it: 404, as if it did not exist.
    let other = funded_user(&gate, "dee").await;
    let mine = create_key(&gate, &own, json!({})).await;
    let path = format!("/api/v1/keys/{}", mine["key_id"].as_str().unwrap());
    assert_eq!(gate.call(Some(&other), "DELETE", &path, None).await.0, 404);
    assert_eq!(
        gate.call(Some(&other), "PATCH", &path, Some(json!({})))
            .await
            .0,
        404
    );
    gate.stop().await;
}

/// A team key made by an owner spends the team's balance at the team's tier, not the owner's;
/// a non-member can neither read the team's balance nor make a team key.
async fn a_team_key_is_charged_to_the_team(db: Db) {
    let Some(gate) = gate(db).await else {
        return;
    };
    let owner = funded_user(&gate, "olga").await;
    let member = funded_user(&gate, "max").await;
    let outsider = funded_user(&gate, "otto").await;
    let (status, body) = gate
        .admin(
            "POST",
            "/api/v1/admin/teams",
            Some(json!({"team_id": "core", "tier": "starter"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for (user, role) in [("olga", "owner"), ("max", "member")] {
        let (status, body) = gate
            .admin(
                "POST",
                "/api/v1/admin/teams/core/members",
                Some(json!({"user_id": user, "role": role})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = gate
        .admin(
            "POST",
            "/api/v1/llm/credits/add",
            Some(json!({"team_id": "core", "amount": 50, "reason": "team budget"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let team_before = body["balance_micros"].as_i64().unwrap();
    let owner_before = gate.balance("olga").await;
    let team_key = secret(&create_key(&gate, &owner, json!({"team_id": "core"})).await);
    assert_eq!(chat_model(&gate, &team_key, MODEL).await.0, 200);
    gate.gateway.settled().await;
    assert_eq!(gate.balance("olga").await, owner_before);
    let (status, team) = gate
        .call(
            Some(&member),
            "GET",
            "/api/v1/llm/credits?team_id=core",
            None,
        )
        .await;
    assert_eq!(status, 200, "{team}");
    assert_eq!(team["balance_micros"], team_before - CHARGE);
    let (status, page) = gate
        .call(
            Some(&member),
            "GET",
            "/api/v1/llm/credits/transactions?team_id=core",
            None,
        )
        .await;
    assert_eq!(status, 200);
    // The newest entries: the charge, and the return of the balance lease it was served from
    // if that went back already.
    let charge = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "charge")
        .unwrap();
    assert_eq!(charge["amount_micros"], -CHARGE);
    // Non-members: 403 on the team's books and on making its keys; a member is not an owner.
    for path in [
        "/api/v1/llm/credits?team_id=core",
        "/api/v1/llm/credits/transactions?team_id=core",
        "/api/v1/llm/usage?team_id=core",
    ] {
        let (status, body) = gate.call(Some(&outsider), "GET", path, None).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (403, &json!("not_team_member")),
            "{path}"
        );
    }
    for key in [&outsider, &member] {
        let (status, body) = gate
            .call(
                Some(key),
                "POST",
                "/api/v1/keys",
                Some(json!({"team_id": "core"})),
            )
            .await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (403, &json!("not_team_owner"))
        );
    }
    // A demoted owner's team key stops working.
    gate.admin("DELETE", "/api/v1/admin/teams/core/members/olga", None)
        .await;
    assert_eq!(chat_model(&gate, &team_key, MODEL).await.0, 401);
    gate.stop().await;
}

on_both_databases!(
    a_model_limited_key_sees_and_uses_only_its_models,
    a_key_budget_serves_exactly_what_it_covers,
    expired_revoked_and_rate_limited_keys_are_refused,
    a_team_key_is_charged_to_the_team,
);

/// The done-when cases through the `openai` Python SDK: the limited key's model list, its 403
/// on another model, an expired key's 401, and a budget of two calls' worth: two served, then
/// 402 `key_budget_exceeded`.
#[tokio::test]
async fn the_openai_sdk_sees_limited_expired_and_budgeted_keys() {
    let Some(gate) = gate(Db::Sqlite).await else {
        return;
    };
    if !support::python::has("openai") {
        return;
    }
    let own = funded_user(&gate, "py").await;
    // The SDK's request (no max_tokens) holds more than `chat_model`'s: measure that one.
    let (status, _) = gate
        .call(
            Some(&own),
            "POST",
            "/v1/chat/completions",
            Some(json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})),
        )
        .await;
    assert_eq!(status, 200);
    let hold = hold_of(
        &gate,
        &own,
        json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    // Two calls' worth.
    let budgeted =
        secret(&create_key(&gate, &own, json!({"max_budget": credits(CHARGE + hold)})).await);
    let limited = secret(&create_key(&gate, &own, json!({"models": [MODEL]})).await);
    let expired =
        secret(&create_key(&gate, &own, json!({"expires_at": "2020-01-01T00:00:00Z"})).await);
    let script = r#"
import os, openai
client = openai.OpenAI(base_url=os.environ["BASE_URL"] + "/v1", api_key=os.environ["KEY"])
print([m.id for m in client.models.list()])
try:
    client.chat.completions.create(model="demo/echo", messages=[{"role": "user", "content": "hi"}])
except openai.PermissionDeniedError as e:
    print(e.status_code, e.code)
ok = client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi"}])
print(ok.choices[0].message.content)
expired = openai.OpenAI(base_url=os.environ["BASE_URL"] + "/v1", api_key=os.environ["EXPIRED"])
try:
    expired.models.list()
except openai.AuthenticationError as e:
    print(e.status_code, e.code)
budgeted = openai.OpenAI(base_url=os.environ["BASE_URL"] + "/v1", api_key=os.environ["BUDGETED"])
outcomes = []
for _ in range(4):
    try:
        budgeted.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi"}])
        outcomes.append("200")
    except openai.APIStatusError as e:
        outcomes.append(f"{e.status_code} {e.code}")
print(outcomes)
"#;
    let stdout = support::python::run_with(
        script,
        vec![
            ("BASE_URL", gate.url("")),
            ("KEY", limited),
            ("EXPIRED", expired),
            ("BUDGETED", budgeted),
        ],
    )
    .await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "['fake-model']",
            "403 model_not_allowed",
            "hello",
            "401 key_expired",
            "['200', '200', '402 key_budget_exceeded', '402 key_budget_exceeded']"
        ]
    );
    gate.stop().await;
}

/// Revocation, a budget change and an expiry made through one replica are seen by another
/// (same PostgreSQL) within the key cache's 5 s.
#[tokio::test]
async fn revocation_budget_and_expiry_changes_reach_the_other_replica_within_the_cache_time() {
    let Some(db) = support::databases::postgres().await else {
        return;
    };
    let url = db.url.clone();
    let first = Gate::start(db).await;
    let second = Gate::start(support::users::Database::shared(&url)).await;
    let own = funded_user(&first, "rita").await;
    let created = create_key(&first, &own, json!({})).await;
    let key = secret(&created);
    // Both replicas have it cached.
    assert_eq!(chat_model(&first, &key, "demo/echo").await.0, 200);
    assert_eq!(chat_model(&second, &key, "demo/echo").await.0, 200);
    let path = format!("/api/v1/keys/{}", created["key_id"].as_str().unwrap());
    assert_eq!(first.call(Some(&own), "DELETE", &path, None).await.0, 200);
    let revoked = Instant::now();
    assert_eq!(chat_model(&first, &key, "demo/echo").await.0, 401);
    loop {
        let (status, _) = chat_model(&second, &key, "demo/echo").await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked.elapsed() < Duration::from_secs(6),
            "the second replica still serves a key revoked {:?} ago",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A budget cut to nothing and an expiry moved into the past through the first replica
    // are seen by the second within the same bound.
    let budgeted = create_key(&first, &own, json!({})).await;
    let expiring = create_key(&first, &own, json!({})).await;
    let (budgeted_key, expiring_key) = (secret(&budgeted), secret(&expiring));
    assert_eq!(chat_model(&second, &budgeted_key, MODEL).await.0, 200);
    assert_eq!(chat_model(&second, &expiring_key, MODEL).await.0, 200);
    for (created, change) in [
        (&budgeted, json!({"max_budget": 0})),
        (&expiring, json!({"expires_at": "2020-01-01T00:00:00Z"})),
    ] {
        let path = format!("/api/v1/keys/{}", created["key_id"].as_str().unwrap());
        let (status, body) = first.call(Some(&own), "PATCH", &path, Some(change)).await;
        assert_eq!(status, 200, "{body}");
    }
    let changed = Instant::now();
    for (key, refusal) in [(&budgeted_key, 402), (&expiring_key, 401)] {
        assert_eq!(chat_model(&first, key, MODEL).await.0, refusal);
        loop {
            let (status, _) = chat_model(&second, key, MODEL).await;
            if status == refusal {
                break;
            }
            assert_eq!(status, 200);
            assert!(
                changed.elapsed() < Duration::from_secs(6),
                "not seen after {:?}",
                changed.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    second.server.shutdown().await.unwrap();
    first.stop().await;
}

/// 40 concurrent requests split across two replicas on one PostgreSQL, with a key budget of
/// N calls' worth and a slow upstream (so holds overlap): never more than N served, then the
/// stragglers one by one fill it to exactly N; the spend and the owner's charge are exact.
/// A budget checked by reading the spend and then holding (not in the hold's transaction)
/// serves most of the 40 here.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_concurrent_requests_on_two_replicas_never_pass_a_key_budget() {
    let Some(db) = support::databases::postgres().await else {
        return;
    };
    let url = db.url.clone();
    let replicas = [
        Gate::start(db).await,
        Gate::start(support::users::Database::shared(&url)).await,
    ];
    let own = funded_user(&replicas[0], "race").await;
    assert_eq!(chat_model(&replicas[0], &own, MODEL).await.0, 200);
    let hold = hold_of(&replicas[0], &own, chat_body(MODEL)).await;
    const N: i64 = 5;
    let budget = (N - 1) * CHARGE + hold;
    let created = create_key(
        &replicas[0],
        &own,
        json!({"max_budget": credits(budget), "budget_period": "total"}),
    )
    .await;
    let key = secret(&created);
    let before = replicas[0].balance("race").await;
    for replica in &replicas {
        replica.upstream.set_default(
            llmgate_testkit::Reply::json(
                200,
                llmgate_testkit::openai::completion("fake-upstream-model", "hello", 400, 600),
            )
            .first_byte_delay(Duration::from_millis(300)),
        );
    }
    let urls: Vec<String> = replicas
        .iter()
        .map(|r| r.url("/v1/chat/completions"))
        .collect();
    let client = support::client();
    let calls = (0..40).map(|i| {
        let (client, url, key) = (client.clone(), urls[i % 2].clone(), key.clone());
        async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"model": MODEL, "max_tokens": 1000,
                              "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let mut statuses = futures::future::join_all(calls).await;
    let concurrent_served = statuses.iter().filter(|&&s| s == 200).count() as i64;
    assert!(
        concurrent_served <= N,
        "served {concurrent_served} of a budget of {N}: {statuses:?}"
    );
    for i in 0..10 {
        statuses.push(chat_model(&replicas[i % 2], &key, MODEL).await.0);
    }
    let served = statuses.iter().filter(|&&s| s == 200).count() as i64;
    let refused = statuses.iter().filter(|&&s| s == 402).count() as i64;
    assert_eq!((served, refused), (N, 50 - N), "{statuses:?}");
    for replica in &replicas {
        replica.gateway.settled().await;
    }
    let listed = keys_of(&replicas[1], &own).await;
    let listed = listed
        .iter()
        .find(|k| k["key_id"] == created["key_id"])
        .unwrap();
    assert_eq!(listed["spend_micros"], N * CHARGE);
    assert_eq!(replicas[0].balance("race").await, before - N * CHARGE);
    let [first, second] = replicas;
    second.server.shutdown().await.unwrap();
    first.stop().await;
}
