//! What the running server does while PostgreSQL is unreachable (a TCP proxy in front of it
//! that the test cuts), for each kind of caller: users of a BYOK tier keep getting free models
//! (and their own keys keep working) once the BYOK answers cached before the outage are past
//! their time to live, while priced requests on the platform key are refused before any
//! upstream call. Past the key cache's time to live, keys seen before the outage still sign
//! their owners in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use llmgate_testkit::db::TestPostgres;
use llmgate_testkit::{FakeUpstream, Reply, openai};
use serde_json::{Value, json};
use support::databases::unique;
use support::proxy::CuttableProxy;
use support::users::byok_key;
use support::*;

/// Longer than the vault's 5 s cache: every BYOK answer cached before the cut has expired.
const PAST_THE_VAULT_CACHE: Duration = Duration::from_millis(5_500);

/// Longer than the key → user cache's 5 s (and than the vault's, which it follows).
const PAST_THE_KEY_CACHE: Duration = Duration::from_millis(6_000);

/// The user's own key for the `up` provider.
const OWN_KEY: &str = "sk-own-key-of-bob-0123456789";

fn ask(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 20})
}

async fn put_own_key(server: &llmgate_server::RunningServer, key: &str) {
    let response = client()
        .put(format!("{}/api/v1/llm/providers/up/key", server.url()))
        .bearer_auth(key)
        .json(&json!({"api_key": OWN_KEY}))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
}

#[tokio::test]
async fn byok_tier_users_keep_free_models_and_their_own_keys_through_a_database_outage() {
    let db = TestPostgres::create()
        .await
        .expect("this test needs PostgreSQL at 127.0.0.1:5432");
    let database = db.name();
    let proxy = CuttableProxy::start("127.0.0.1:5432").await;
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, openai::completion("up-model", "hi", 3, 2)));
    let config = yaml_config(
        &format!(
            r#"
storage:
  database_url: "postgres://postgres@{proxy}/{database}"
byok:
  encryption_key: "{sealing}"
tiers:
  starter: {{ markup: 0.0, byok: true, monthly_credits: 1000, default_power_level: balanced }}
providers:
  - {{ name: demo, kind: demo }}
  - {{ name: up, kind: openai, api_base: "{up}/v1", api_key: sk-platform-up-0000 }}
models:
  - {{ name: outage-free, provider: demo, upstream_model: echo, free: true }}
  - {{ name: outage-paid, provider: up, upstream_model: up-model, cost_per_1k: 0.002 }}
routing:
  num_retries: 0
"#,
            proxy = proxy.addr,
            sealing = byok_key(),
            up = up.url()
        ),
        &empty_env(),
    );
    let server = start(config).await;
    // Ann has used the free model (her "no key of your own" answer is cached), Bob has his
    // own key for `up` and used it, Cat has only signed in (nothing about her keys cached).
    let ann = create_user(&server.url(), &unique("ann"), "starter").await;
    let bob = create_user(&server.url(), &unique("bob"), "starter").await;
    let cat = create_user(&server.url(), &unique("cat"), "starter").await;
    put_own_key(&server, &bob).await;
    assert_eq!(
        chat_as(&server, &ann, ask("outage-free")).await.status(),
        200
    );
    assert_eq!(
        chat_as(&server, &bob, ask("outage-paid")).await.status(),
        200
    );
    assert_eq!(
        up.last_request().unwrap().header("authorization").unwrap(),
        format!("Bearer {OWN_KEY}")
    );
    let models = client()
        .get(format!("{}/v1/models", server.url()))
        .bearer_auth(&cat)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);

    proxy.cut();
    tokio::time::sleep(PAST_THE_VAULT_CACHE).await;

    for (who, key) in [
        ("ann", &ann),
        ("cat", &cat),
        ("master", &MASTER_KEY.to_owned()),
    ] {
        let response = chat_as(&server, key, ask("outage-free")).await;
        let status = response.status();
        assert_eq!(status, 200, "{who}: {}", response.text().await.unwrap());
    }
    // Bob's own key, last read before the outage, still serves him, uncharged.
    let upstream_calls = up.request_count();
    let own = chat_as(&server, &bob, ask("outage-paid")).await;
    assert_eq!(own.status(), 200, "{}", own.text().await.unwrap());
    assert_eq!(up.request_count(), upstream_calls + 1);
    assert_eq!(
        up.last_request().unwrap().header("authorization").unwrap(),
        format!("Bearer {OWN_KEY}")
    );
    // A priced model on the platform key needs the ledger: refused before any upstream call.
    let paid = chat_as(&server, &ann, ask("outage-paid")).await;
    let error = assert_error(paid, 503, "service_unavailable").await;
    assert!(
        error["message"].as_str().unwrap().contains("database"),
        "{error}"
    );
    assert_eq!(
        up.request_count(),
        upstream_calls + 1,
        "no upstream call unpaid"
    );

    // Past the key cache's 5 s too: keys known before the outage still sign their owners in.
    tokio::time::sleep(PAST_THE_KEY_CACHE - PAST_THE_VAULT_CACHE).await;
    for key in [&ann, &bob, &cat] {
        let response = chat_as(&server, key, ask("outage-free")).await;
        let status = response.status();
        assert_eq!(status, 200, "{}", response.text().await.unwrap());
    }
    // A key nobody presented before the outage cannot be checked: 503, not 401.
    let unknown = chat_as(
        &server,
        "lg-never-seen-0000000000000000",
        ask("outage-free"),
    )
    .await;
    assert_error(unknown, 503, "service_unavailable").await;

    proxy.restore();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_redis_outage_leaves_every_request_served_and_only_readiness_fails() {
    let db = TestPostgres::create()
        .await
        .expect("this test needs PostgreSQL at 127.0.0.1:5432");
    let redis = CuttableProxy::start("127.0.0.1:6379").await;
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, openai::completion("up-model", "hi", 3, 2)));
    let config = yaml_config(
        &format!(
            r#"
storage:
  database_url: "{database}"
  redis_url: "redis://{redis}"
  redis_prefix: "{prefix}:"
tiers:
  starter: {{ markup: 0.0, byok: false, monthly_credits: 1000, default_power_level: balanced, rpm: 100 }}
providers:
  - {{ name: demo, kind: demo }}
  - {{ name: up, kind: openai, api_base: "{up}/v1", api_key: sk-platform-up-0000 }}
models:
  - {{ name: outage-free, provider: demo, upstream_model: echo, free: true }}
  - {{ name: outage-paid, provider: up, upstream_model: up-model, cost_per_1k: 0.002, rpm: 100 }}
routing:
  num_retries: 0
"#,
            database = db.url,
            redis = redis.addr,
            prefix = unique("outage"),
            up = up.url()
        ),
        &empty_env(),
    );
    let server = start(config).await;
    let key = create_user(&server.url(), &unique("dan"), "starter").await;
    let ready = get(&server, "/health/ready").await;
    assert_eq!(
        ready.status(),
        200,
        "this test needs Redis at 127.0.0.1:6379"
    );
    assert_eq!(
        chat_as(&server, &key, ask("outage-paid")).await.status(),
        200
    );

    redis.cut();
    for model in ["outage-free", "outage-paid"] {
        let response = chat_as(&server, &key, ask(model)).await;
        let status = response.status();
        assert_eq!(status, 200, "{model}: {}", response.text().await.unwrap());
    }
    let ready = get(&server, "/health/ready").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["failed"], json!(["redis"]), "{body}");
    assert_eq!(body["checks"]["database"], "ok", "{body}");

    redis.restore();
    server.shutdown().await.unwrap();
}
