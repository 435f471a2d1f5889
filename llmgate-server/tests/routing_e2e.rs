#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Routing through the running server, with a fake upstream per provider and real users
//! (created and funded through the admin API): fallbacks, a clean error when every candidate
//! fails, `auto` by power level, the privacy header, user rpm, Retry-After cooldowns, and two
//! server instances holding one rpm limit together through Redis.

mod support;

use std::time::Duration;

use futures::future::join_all;
use llmgate_core::Gateway;
use llmgate_server::RunningServer;
use llmgate_testkit::{FakeUpstream, Reply, anthropic, openai};
use serde_json::{Value, json};
use support::{MASTER_KEY, assert_error, empty_env, yaml_config};

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:012x}", rand::random::<u64>() >> 16)
}

/// A running server with the gateway it serves through (to wait for ledger writes).
struct Gate {
    server: RunningServer,
    gateway: Gateway,
    http: reqwest::Client,
}

impl Gate {
    /// Start a server on `yaml` (an in-memory database unless the YAML names one).
    async fn start(yaml: &str) -> Gate {
        let mut config = yaml_config(yaml, &empty_env());
        if !yaml.contains("database_url") {
            config.storage.database_url = "sqlite::memory:".to_owned();
        }
        let server = support::bind(config).await;
        let gateway = server.state().gateway.clone();
        Gate {
            server: server.spawn().unwrap(),
            gateway,
            http: support::client(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    /// A new user of `tier` (a fresh id); returns the id and the user's own API key.
    async fn user(&self, tier: &str) -> (String, String) {
        let user_id = unique("routing-user");
        let key = support::create_user(&self.server.url(), &user_id, tier).await;
        (user_id, key)
    }

    /// Top `user_id` up with `credits`, as the admin.
    async fn fund(&self, user_id: &str, credits: u32) {
        let response = self
            .http
            .post(self.url("/api/v1/llm/credits/add"))
            .bearer_auth(MASTER_KEY)
            .json(&json!({"user_id": user_id, "amount": credits, "reason": "routing test"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    /// `POST /v1/chat/completions` as `key`, with extra headers.
    async fn chat(&self, key: &str, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// The user's balance in micro-credits, as the user sees it, once every hold is settled.
    async fn balance(&self, key: &str) -> i64 {
        let body = self.settled_get("/api/v1/llm/credits", key).await;
        body["balance_micros"].as_i64().unwrap()
    }

    /// The user's ledger, newest first, once every hold is settled.
    async fn transactions(&self, key: &str) -> Vec<Value> {
        let body = self
            .settled_get("/api/v1/llm/credits/transactions", key)
            .await;
        body["data"].as_array().unwrap().clone()
    }

    /// `GET path` as `key` once every hold is settled, as JSON.
    async fn settled_get(&self, path: &str, key: &str) -> Value {
        self.gateway.settled().await;
        self.http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.server.shutdown().await.unwrap();
    }
}

fn ask(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Which way to the station?"}],
        "max_tokens": 50,
    })
}

fn answer(upstream_model: &str) -> Reply {
    Reply::json(
        200,
        openai::completion(upstream_model, "Second left.", 12, 8),
    )
}

fn server_error() -> Reply {
    Reply::json(500, openai::error("boom", "server_error", None))
}

fn header<'r>(response: &'r reqwest::Response, name: &str) -> &'r str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// The kinds of a user's ledger rows, oldest first.
fn kinds(transactions: &[Value]) -> Vec<String> {
    transactions
        .iter()
        .rev()
        .map(|t| t["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Two priced models on failing upstreams and one on a good one, without retry rounds (so
/// the call count is the failover alone) and without cooldowns getting in the way.
fn failover_yaml(flaky: &str, broken: &str, steady: &str) -> String {
    format!(
        r#"
tiers:
  paid: {{ markup: 0.0, default_power_level: balanced }}
providers:
  - {{ name: flaky, kind: openai, api_base: "{flaky}/v1", api_key: sk-flaky-0000 }}
  - {{ name: broken, kind: openai, api_base: "{broken}/v1", api_key: sk-broken-0000 }}
  - {{ name: steady, kind: openai, api_base: "{steady}/v1", api_key: sk-steady-0000 }}
models:
  - {{ name: primary, provider: flaky, upstream_model: flaky-model, cost_per_1k: 0.01, fallbacks: [backup] }}
  - {{ name: backup, provider: steady, upstream_model: steady-model, cost_per_1k: 0.02 }}
  - {{ name: doomed, provider: flaky, upstream_model: flaky-model, cost_per_1k: 0.01, fallbacks: [doomed-too] }}
  - {{ name: doomed-too, provider: broken, upstream_model: broken-model, cost_per_1k: 0.01 }}
routing:
  num_retries: 0
  cooldown_after_failures: 0
"#
    )
}

#[tokio::test]
async fn a_failing_model_falls_back_and_the_user_is_charged_once() {
    let (flaky, broken, steady) = (
        FakeUpstream::start().await,
        FakeUpstream::start().await,
        FakeUpstream::start().await,
    );
    flaky.set_default(server_error());
    broken.set_default(server_error());
    steady.set_default(answer("steady-model"));
    let gate = Gate::start(&failover_yaml(&flaky.url(), &broken.url(), &steady.url())).await;
    let (user, key) = gate.user("paid").await;
    gate.fund(&user, 100).await;
    let funded = gate.balance(&key).await;

    let response = gate.chat(&key, ask("primary"), &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-llmgate-attempts"), "2");
    assert_eq!(header(&response, "x-llmgate-model"), "backup");
    assert_eq!(header(&response, "x-llmgate-provider"), "steady");
    let cost: i64 = header(&response, "x-llmgate-cost-micros").parse().unwrap();
    assert!(cost > 0, "the fallback is priced");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Second left.");
    assert_eq!((flaky.request_count(), steady.request_count()), (1, 1));

    // One balance lease taken before the first call (the hold); charged once for the call
    // that answered (out of the lease, then the charge); the lease given back once settled.
    let transactions = gate.transactions(&key).await;
    assert_eq!(
        kinds(&transactions),
        ["top_up", "hold", "release", "charge", "release"],
        "{transactions:#?}"
    );
    let charge = transactions.iter().find(|t| t["kind"] == "charge").unwrap();
    assert_eq!(charge["model"], "backup");
    assert_eq!(charge["amount_micros"], -cost);
    assert_eq!(gate.balance(&key).await, funded - cost);
    gate.stop().await;
}

#[tokio::test]
async fn when_every_candidate_fails_the_client_gets_one_clean_error_and_keeps_its_credits() {
    let (flaky, broken, steady) = (
        FakeUpstream::start().await,
        FakeUpstream::start().await,
        FakeUpstream::start().await,
    );
    flaky.set_default(server_error());
    broken.set_default(Reply::json(
        502,
        openai::error("bad gateway upstream", "server_error", None),
    ));
    let gate = Gate::start(&failover_yaml(&flaky.url(), &broken.url(), &steady.url())).await;
    let (user, key) = gate.user("paid").await;
    gate.fund(&user, 100).await;
    let funded = gate.balance(&key).await;

    let response = gate.chat(&key, ask("doomed"), &[]).await;
    assert!(
        [502, 503, 504].contains(&response.status().as_u16()),
        "{}",
        response.status()
    );
    let status = response.status().as_u16();
    let error = assert_error(response, status, "upstream_error").await;
    let message = error["message"].as_str().unwrap();
    assert!(
        !message.contains("127.0.0.1") && !message.contains("sk-"),
        "no upstream address or key in {message}"
    );
    assert_eq!((flaky.request_count(), broken.request_count()), (1, 1));
    assert_eq!(steady.request_count(), 0, "never an unconfigured fallback");

    // The lease was taken for the hold and given back: nothing charged.
    assert_eq!(gate.balance(&key).await, funded);
    assert_eq!(
        kinds(&gate.transactions(&key).await),
        ["top_up", "hold", "release"]
    );
    gate.stop().await;
}

/// A local free model, a cheap good cloud model, and a premium one: eco must prefer the local
/// one over the better cloud model, precision the premium provider over a cheaper model that
/// also meets its quality bar.
struct Levels {
    local: FakeUpstream,
    together: FakeUpstream,
    anthropic: FakeUpstream,
    gate: Gate,
}

impl Levels {
    async fn start() -> Levels {
        let (local, together, anthropic) = (
            FakeUpstream::start().await,
            FakeUpstream::start().await,
            FakeUpstream::start().await,
        );
        local.set_default(answer("llama-3.2-3b"));
        together.set_default(answer("together-model"));
        anthropic.set_default(Reply::json(
            200,
            anthropic::message("claude-upstream", "Second left.", 12, 8),
        ));
        let yaml = format!(
            r#"
tiers:
  paid: {{ markup: 0.0, default_power_level: balanced }}
  private: {{ markup: 0.0, default_power_level: eco, require_private: true }}
providers:
  - {{ name: lab, kind: openai, api_base: "{local}/v1", local: true }}
  - {{ name: together, kind: openai, api_base: "{together}/v1", api_key: sk-together-0000 }}
  - {{ name: anthropic, kind: anthropic, api_base: "{anthropic}", api_key: sk-ant-0000 }}
models:
  - {{ name: tiny-local, provider: lab, upstream_model: llama-3.2-3b, free: true, quality: 0.7 }}
  - {{ name: cheap-cloud, provider: together, upstream_model: together-model, cost_per_1k: 0.0002, quality: 0.96, fallbacks: [tiny-local] }}
  - {{ name: claude-top, provider: anthropic, upstream_model: claude-upstream, input_cost_per_1k: 0.003, output_cost_per_1k: 0.015, quality: 0.98 }}
routing:
  strategy: cost
"#,
            local = local.url(),
            together = together.url(),
            anthropic = anthropic.url(),
        );
        let gate = Gate::start(&yaml).await;
        Levels {
            local,
            together,
            anthropic,
            gate,
        }
    }

    fn counts(&self) -> (usize, usize, usize) {
        (
            self.local.request_count(),
            self.together.request_count(),
            self.anthropic.request_count(),
        )
    }
}

#[tokio::test]
async fn auto_picks_a_local_model_at_eco_and_a_premium_one_at_precision() {
    let levels = Levels::start().await;
    let gate = &levels.gate;
    let (user, key) = gate.user("paid").await;
    gate.fund(&user, 100).await;

    let mut eco = ask("auto");
    eco["power_level"] = json!("eco");
    let response = gate.chat(&key, eco, &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-llmgate-model"), "tiny-local");
    assert_eq!(header(&response, "x-llmgate-power-level"), "eco");
    assert_eq!(header(&response, "x-llmgate-cost-micros"), "0");
    assert_eq!(levels.counts(), (1, 0, 0));

    let response = gate
        .chat(&key, ask("auto"), &[("x-llmgate-power-level", "precision")])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-llmgate-model"), "claude-top");
    assert_eq!(header(&response, "x-llmgate-provider"), "anthropic");
    assert_eq!(header(&response, "x-llmgate-power-level"), "precision");
    assert_ne!(header(&response, "x-llmgate-cost-micros"), "0");
    assert_eq!(levels.counts(), (1, 0, 1));
    let sent = levels.anthropic.last_request().unwrap();
    assert_eq!(sent.json()["model"], "claude-upstream");
    levels.gate.stop().await;
}

#[tokio::test]
async fn the_privacy_header_keeps_a_request_on_private_models() {
    let levels = Levels::start().await;
    let gate = &levels.gate;
    let (user, key) = gate.user("paid").await;
    gate.fund(&user, 100).await;
    let high = [("x-llmgate-privacy", "high")];

    // Without the header the cloud model serves; with it, its private fallback.
    let response = gate.chat(&key, ask("cheap-cloud"), &[]).await;
    assert_eq!(header(&response, "x-llmgate-model"), "cheap-cloud");
    let response = gate.chat(&key, ask("cheap-cloud"), &high).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-llmgate-model"), "tiny-local");
    assert_eq!(
        header(&response, "x-llmgate-attempts"),
        "1",
        "skipped, not tried"
    );
    assert_eq!(levels.counts(), (1, 1, 0));

    // `auto` keeps to private models as well.
    let mut eco = ask("auto");
    eco["power_level"] = json!("eco");
    let response = gate.chat(&key, eco, &high).await;
    assert_eq!(header(&response, "x-llmgate-model"), "tiny-local");

    // No private deployment can serve this model: 403, and no upstream was called.
    let response = gate.chat(&key, ask("claude-top"), &high).await;
    let error = assert_error(response, 403, "permission_denied").await;
    assert_eq!(error["code"], "private_model_required", "{error}");
    assert_eq!(levels.counts(), (2, 1, 0));

    // A tier that requires privacy needs no header.
    let (private_user, private_key) = gate.user("private").await;
    gate.fund(&private_user, 10).await;
    let response = gate.chat(&private_key, ask("cheap-cloud"), &[]).await;
    assert_eq!(header(&response, "x-llmgate-model"), "tiny-local");

    // A value that is no privacy level is refused, naming the header.
    let response = gate
        .chat(&key, ask("cheap-cloud"), &[("x-llmgate-privacy", "secret")])
        .await;
    let error = assert_error(response, 400, "invalid_request_error").await;
    assert_eq!(error["param"], "x-llmgate-privacy", "{error}");
    assert_eq!(levels.counts(), (3, 1, 0));
    levels.gate.stop().await;
}

#[tokio::test]
async fn a_user_over_the_tier_rpm_gets_429_with_retry_after() {
    let upstream = FakeUpstream::start().await;
    upstream.set_default(answer("local-model"));
    let gate = Gate::start(&format!(
        r#"
tiers:
  limited: {{ markup: 0.0, default_power_level: eco, rpm: 2 }}
providers:
  - {{ name: lab, kind: openai, api_base: "{}/v1", local: true }}
models:
  - {{ name: local, provider: lab, upstream_model: local-model, free: true }}
"#,
        upstream.url()
    ))
    .await;
    let (_, key) = gate.user("limited").await;
    let (_, other_key) = gate.user("limited").await;
    for _ in 0..2 {
        assert_eq!(gate.chat(&key, ask("local"), &[]).await.status(), 200);
    }
    let refused = gate.chat(&key, ask("local"), &[]).await;
    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!(
        (1..=60).contains(&retry_after),
        "one request every 30 s: {retry_after}"
    );
    let error = assert_error(refused, 429, "rate_limit_exceeded").await;
    assert_eq!(error["code"], "rate_limit_exceeded", "{error}");
    assert_eq!(
        upstream.request_count(),
        2,
        "refused before any upstream call"
    );
    // The limit is per user: another user of the tier is not affected.
    assert_eq!(gate.chat(&other_key, ask("local"), &[]).await.status(), 200);
    gate.stop().await;
}

#[tokio::test]
async fn an_upstream_retry_after_cools_its_deployment_and_the_next_request_goes_elsewhere() {
    let (east, west) = (FakeUpstream::start().await, FakeUpstream::start().await);
    east.set_default(
        Reply::json(429, openai::error("slow down", "rate_limit_error", None))
            .header("retry-after", "120"),
    );
    west.set_default(answer("west-model"));
    // No failure-count cooldowns and a zero cooldown length: only the Retry-After can keep
    // requests away from `east`.
    let gate = Gate::start(&format!(
        r#"
tiers:
  paid: {{ markup: 0.0, default_power_level: balanced }}
providers:
  - {{ name: east, kind: openai, api_base: "{east}/v1", api_key: sk-east-0000 }}
  - {{ name: west, kind: openai, api_base: "{west}/v1", api_key: sk-west-0000 }}
models:
  - {{ name: shared, provider: east, upstream_model: east-model, cost_per_1k: 0.001, priority: 1 }}
  - {{ name: shared, provider: west, upstream_model: west-model, cost_per_1k: 0.001, priority: 2 }}
routing:
  strategy: priority
  num_retries: 0
  cooldown_after_failures: 0
  cooldown_ms: 0
"#,
        east = east.url(),
        west = west.url(),
    ))
    .await;
    let (user, key) = gate.user("paid").await;
    gate.fund(&user, 100).await;

    let first = gate.chat(&key, ask("shared"), &[]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-llmgate-provider"), "west");
    assert_eq!(header(&first, "x-llmgate-attempts"), "2");
    let cooling: Vec<String> = gate
        .gateway
        .deployment_states()
        .iter()
        .filter(|(_, state)| state.cooling_down)
        .map(|(d, _)| d.provider.clone())
        .collect();
    assert_eq!(cooling, ["east"]);

    for _ in 0..2 {
        let next = gate.chat(&key, ask("shared"), &[]).await;
        assert_eq!(next.status(), 200);
        assert_eq!(header(&next, "x-llmgate-provider"), "west");
        assert_eq!(header(&next, "x-llmgate-attempts"), "1");
    }
    assert_eq!(
        east.request_count(),
        1,
        "east is left alone while it asked for it"
    );
    assert_eq!(west.request_count(), 3);
    gate.stop().await;
}

#[tokio::test]
async fn a_retry_after_longer_than_the_bound_is_answered_with_429_at_once_not_slept_through() {
    let upstream = FakeUpstream::start().await;
    upstream.set_default(
        Reply::json(429, openai::error("slow down", "rate_limit_error", None))
            .header("retry-after", "7"),
    );
    // Two retry rounds and a long backoff cap: before the bound, the client was held 14 s.
    let gate = Gate::start(&format!(
        r#"
tiers:
  paid: {{ markup: 0.0, default_power_level: balanced }}
providers:
  - {{ name: busy, kind: openai, api_base: "{busy}/v1", api_key: sk-busy-0000 }}
models:
  - {{ name: lonely, provider: busy, upstream_model: busy-model, cost_per_1k: 0.001 }}
routing:
  num_retries: 2
  backoff_max_ms: 8000
  max_retry_wait_ms: 2000
"#,
        busy = upstream.url(),
    ))
    .await;
    let (user, key) = gate.user("paid").await;
    gate.fund(&user, 100).await;

    let started = std::time::Instant::now();
    let response = gate.chat(&key, ask("lonely"), &[]).await;
    let took = started.elapsed();
    assert_eq!(header(&response, "retry-after"), "7");
    let error = assert_error(response, 429, "rate_limit_exceeded").await;
    assert_eq!(error["code"], "upstream_rate_limited", "{error}");
    assert!(took < Duration::from_secs(2), "held for {took:?}");
    assert_eq!(upstream.request_count(), 1);
    assert_eq!(gate.balance(&key).await, 100_000_000, "nothing charged");
    gate.stop().await;
}

#[tokio::test]
async fn a_retry_after_within_the_bound_is_waited_for_and_retried() {
    let upstream = FakeUpstream::start().await;
    upstream.push(
        Reply::json(429, openai::error("slow down", "rate_limit_error", None))
            .header("retry-after", "1"),
    );
    upstream.set_default(answer("busy-model"));
    let gate = Gate::start(&format!(
        r#"
tiers:
  paid: {{ markup: 0.0, default_power_level: balanced }}
providers:
  - {{ name: busy, kind: openai, api_base: "{busy}/v1", api_key: sk-busy-0000 }}
models:
  - {{ name: lonely, provider: busy, upstream_model: busy-model, cost_per_1k: 0.001 }}
routing:
  num_retries: 1
  max_retry_wait_ms: 2000
"#,
        busy = upstream.url(),
    ))
    .await;
    let (user, key) = gate.user("paid").await;
    gate.fund(&user, 100).await;

    let started = std::time::Instant::now();
    let response = gate.chat(&key, ask("lonely"), &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-llmgate-attempts"), "2");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(upstream.request_count(), 2);
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_sharing_redis_admit_no_more_than_the_users_rpm_together() {
    let Some(url) = support::redis::test_redis().await else {
        return;
    };
    let upstream = FakeUpstream::start().await;
    upstream.set_default(answer("local-model"));
    // One database and one Redis key prefix for both replicas; the prefix is this run's own,
    // so nothing left in Redis by another run counts.
    let db = support::databases::sqlite_file();
    let yaml = format!(
        r#"
storage:
  database_url: "{db}"
  redis_url: "{url}"
  redis_prefix: "{prefix}:"
tiers:
  shared: {{ markup: 0.0, default_power_level: eco, rpm: 5 }}
providers:
  - {{ name: lab, kind: openai, api_base: "{upstream}/v1", local: true }}
models:
  - {{ name: local, provider: lab, upstream_model: local-model, free: true }}
"#,
        db = db.url,
        prefix = unique("llmgate-test"),
        upstream = upstream.url(),
    );
    let one = Gate::start(&yaml).await;
    let two = Gate::start(&yaml).await;
    let (_, key) = one.user("shared").await;

    // 12 requests at once, alternating between the replicas.
    let sent = (0..12).map(|i| {
        let gate = if i % 2 == 0 { &one } else { &two };
        gate.chat(&key, ask("local"), &[])
    });
    let statuses: Vec<u16> = join_all(sent)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((admitted, limited), (5, 7), "{statuses:?}");
    assert_eq!(upstream.request_count(), 5);

    // Each replica refuses on the other's count too.
    for gate in [&one, &two] {
        let refused = gate.chat(&key, ask("local"), &[]).await;
        assert!(refused.headers().contains_key("retry-after"));
        assert_error(refused, 429, "rate_limit_exceeded").await;
    }
    one.stop().await;
    two.stop().await;
}
