//! Operating the server, through the real thing: `/metrics` moving under a short load (every
//! family), the metrics on a listener of their own, and `/health/ready` following the database
//! through an outage (a TCP proxy in front of PostgreSQL that the test cuts and restores),
//! while free requests are still served and paid ones are refused with a clear 503.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use llmgate_server::RunningServer;
use llmgate_testkit::db::TestPostgres;
use llmgate_testkit::{Chunking, FakeUpstream, Reply, openai};
use serde_json::{Value, json};
use support::proxy::CuttableProxy;
use support::*;

/// The Prometheus text as `series → value`, a series being `name{labels}` as rendered.
struct Scrape(HashMap<String, f64>);

impl Scrape {
    async fn of(url: &str) -> Scrape {
        let response = client().get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        Scrape::parse(&response.text().await.unwrap())
    }

    fn parse(text: &str) -> Scrape {
        let series = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').unwrap();
                (series.to_owned(), value.parse::<f64>().unwrap())
            })
            .collect();
        Scrape(series)
    }

    /// The sum of `name`'s series whose labels include every `key="value"` of `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(series, _)| {
                let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
                series_name == name
                    && labels
                        .iter()
                        .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            })
            .map(|(_, value)| value)
            .sum()
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

fn ask(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hello"}]
    })
}

fn json_answer() -> Reply {
    Reply::json(200, openai::completion("up-model", "hi there", 40, 60))
}

#[tokio::test]
async fn metrics_move_under_load_for_every_family() {
    let up = FakeUpstream::start().await;
    up.set_default(json_answer());
    let flaky = FakeUpstream::start().await;
    flaky.set_default(Reply::json(
        500,
        openai::error("boom", "server_error", None),
    ));
    // Cooldowns are shared through Redis and outlive this test: names of this run only.
    let main = unique("ops-main");
    let primary = unique("ops-primary");
    let config = yaml_config(
        &format!(
            r#"
storage:
  database_url: "sqlite::memory:"
  redis_url: redis://127.0.0.1:6379
tiers:
  pro: {{ markup: 0.0, byok: false, monthly_credits: 1000, default_power_level: balanced }}
  slow: {{ markup: 0.0, byok: false, monthly_credits: 1000, default_power_level: balanced, rpm: 1 }}
providers:
  - {{ name: up, kind: openai, api_base: "{up}/v1", api_key: sk-test-up-0000 }}
  - {{ name: flaky, kind: openai, api_base: "{flaky}/v1", api_key: sk-test-flaky-0000 }}
models:
  - {{ name: {main}, provider: up, upstream_model: up-model, cost_per_1k: 0.002 }}
  - {{ name: {primary}, provider: flaky, upstream_model: flaky-model, cost_per_1k: 0.002, fallbacks: [{main}] }}
routing:
  num_retries: 1
  cooldown_after_failures: 2
  cooldown_ms: 600000
"#,
            up = up.url(),
            flaky = flaky.url(),
        ),
        &empty_env(),
    );
    let server = start(config).await;
    let metrics_url = format!("{}/metrics", server.url());
    let user = unique("ops-user");
    let key = create_user(&server.url(), &user, "pro").await;
    let limited = unique("ops-limited");
    let limited_key = create_user(&server.url(), &limited, "slow").await;
    let before = Scrape::of(&metrics_url).await;

    // A paid JSON answer.
    let answered = chat_as(&server, &key, ask(&main, false)).await;
    assert_eq!(answered.status(), 200);

    // A paid stream, watched while it is open: its hold is outstanding.
    up.push(
        Reply::sse(&openai::text_chunks(
            "up-model",
            &["a", "b", "c", "d"],
            Some((40, 4)),
        ))
        .chunked(Chunking::AfterEach("\n\n"))
        .frame_delay(Duration::from_millis(150)),
    );
    let mut stream = chat_as(&server, &key, ask(&main, true)).await;
    assert_eq!(stream.status(), 200);
    stream.chunk().await.unwrap().unwrap();
    let during = Scrape::of(&metrics_url).await;
    assert!(
        during.sum("llmgate_holds_outstanding", &[]) >= 1.0,
        "a paid stream holds credits while it runs"
    );
    while stream.chunk().await.unwrap().is_some() {}

    // Two answers through a fallback; the failing primary cools down after the second.
    for _ in 0..2 {
        let fell_back = chat_as(&server, &key, ask(&primary, false)).await;
        assert_eq!(fell_back.status(), 200);
        assert_eq!(fell_back.headers()["x-llmgate-model"], main.as_str());
    }

    // A retry round: the only deployment fails once, then answers.
    up.push(Reply::json(
        503,
        openai::error("busy", "server_error", None),
    ));
    let retried = chat_as(&server, &key, ask(&main, false)).await;
    assert_eq!(retried.status(), 200);
    assert_eq!(retried.headers()["x-llmgate-attempts"], "2");

    // A tier at 1 request per minute: the second is refused.
    assert_eq!(
        chat_as(&server, &limited_key, ask(&main, false))
            .await
            .status(),
        200
    );
    assert_eq!(
        chat_as(&server, &limited_key, ask(&main, false))
            .await
            .status(),
        429
    );

    // Readiness pings the database and Redis.
    let ready = get(&server, "/health/ready").await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(
        ready,
        json!({"status": "ready", "checks": {"database": "ok", "redis": "ok"}})
    );

    let after_text = client()
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let after = Scrape::parse(&after_text);
    let moved = |name: &str, labels: &[(&str, &str)]| {
        let (was, now) = (before.sum(name, labels), after.sum(name, labels));
        assert!(now > was, "{name}{labels:?} did not move: {was} → {now}");
    };
    let main_labels = [("model", main.as_str()), ("provider", "up")];
    moved(
        "llmgate_requests_total",
        &[
            ("model", main.as_str()),
            ("provider", "up"),
            ("key_source", "platform"),
            ("status", "200"),
        ],
    );
    moved("llmgate_requests_total", &[("status", "429")]);
    moved("llmgate_request_duration_seconds_count", &main_labels);
    moved(
        "llmgate_request_duration_seconds_count",
        &[("model", main.as_str()), ("stream", "true")],
    );
    moved(
        "llmgate_gateway_overhead_seconds_count",
        &[("stream", "false")],
    );
    moved(
        "llmgate_gateway_overhead_seconds_count",
        &[("stream", "true")],
    );
    moved("llmgate_upstream_duration_seconds_count", &main_labels);
    moved(
        "llmgate_upstream_requests_total",
        &[("provider", "up"), ("outcome", "ok")],
    );
    moved(
        "llmgate_upstream_requests_total",
        &[
            ("provider", "flaky"),
            ("model", primary.as_str()),
            ("outcome", "error"),
        ],
    );
    moved("llmgate_time_to_first_token_seconds_count", &main_labels);
    moved(
        "llmgate_tokens_total",
        &[("model", main.as_str()), ("kind", "prompt")],
    );
    moved(
        "llmgate_tokens_total",
        &[("model", main.as_str()), ("kind", "completion")],
    );
    moved("llmgate_charged_micros_total", &main_labels);
    moved("llmgate_fallbacks_total", &main_labels);
    moved("llmgate_retries_total", &[]);
    moved("llmgate_rate_limited_total", &[("scope", "user")]);
    moved(
        "llmgate_backend_duration_seconds_count",
        &[("backend", "database"), ("operation", "hold")],
    );
    moved(
        "llmgate_backend_duration_seconds_count",
        &[("backend", "database"), ("operation", "settle")],
    );
    moved(
        "llmgate_backend_duration_seconds_count",
        &[("backend", "redis"), ("operation", "ready")],
    );
    moved(
        "llmgate_backend_duration_seconds_count",
        &[("backend", "redis"), ("operation", "rate_limit")],
    );
    moved(
        "llmgate_backend_duration_seconds_count",
        &[("backend", "redis"), ("operation", "cooldown_publish")],
    );
    assert_eq!(
        after.sum(
            "llmgate_deployment_cooling_down",
            &[("model", primary.as_str())]
        ),
        1.0
    );
    assert!(after.sum("llmgate_deployments_cooling_down", &[]) >= 1.0);
    assert_eq!(
        after.sum("llmgate_deployment_in_flight", &[("model", main.as_str())]),
        0.0
    );
    // The stream's hold was settled: the gauge came back down. The settle is written behind
    // the answer (the ledger queue), and the gauge is the process's, which the other tests of
    // this binary move too: scrape again until it is below (bounded).
    let mut outstanding = after.sum("llmgate_holds_outstanding", &[]);
    for _ in 0..100 {
        if outstanding < during.sum("llmgate_holds_outstanding", &[]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let text = client()
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        outstanding = Scrape::parse(&text).sum("llmgate_holds_outstanding", &[]);
    }
    assert!(outstanding < during.sum("llmgate_holds_outstanding", &[]));
    let charged = after.sum("llmgate_charged_micros_total", &main_labels)
        - before.sum("llmgate_charged_micros_total", &main_labels);
    assert!(charged > 0.0);

    // No key, no user id ever reaches a label.
    for secret in [
        key.as_str(),
        limited_key.as_str(),
        "sk-test-up",
        &user,
        &limited,
        MASTER_KEY,
    ] {
        assert!(
            !after_text.contains(secret),
            "{secret} leaked into /metrics"
        );
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn ad_hoc_model_names_are_counted_as_other() {
    let server = start(demo_config()).await;
    let name = unique("demo/anything");
    let response = chat(&server, ask(&name, false)).await;
    assert_eq!(response.status(), 200);
    let scrape = get(&server, "/metrics").await.text().await.unwrap();
    assert!(!scrape.contains(&name), "an ad-hoc name became a label");
    assert!(
        Scrape::parse(&scrape).sum(
            "llmgate_requests_total",
            &[("model", "other"), ("provider", "demo")]
        ) >= 1.0
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn metrics_listen_serves_metrics_apart_from_the_api() {
    let mut config = demo_config();
    config.server.metrics_listen = Some("127.0.0.1:0".to_owned());
    let server = start(config).await;
    let metrics_addr = server.metrics_addr().unwrap();
    assert_ne!(metrics_addr, server.addr());
    let scrape = Scrape::of(&format!("http://{metrics_addr}/metrics")).await;
    assert!(scrape.sum("llmgate_holds_outstanding", &[]) >= 0.0);
    assert!(scrape.0.keys().any(|s| s.starts_with("llmgate_")));
    let on_api = get(&server, "/metrics").await;
    assert_eq!(on_api.status(), 404);
    let elsewhere = client()
        .get(format!("http://{metrics_addr}/v1/models"))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);
    server.shutdown().await.unwrap();
}

async fn readiness(server: &RunningServer) -> (u16, Value) {
    let response = get(server, "/health/ready").await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn readiness_follows_the_database_through_an_outage() {
    // A database of its own, so this test owns its tables; it needs PostgreSQL even outside CI.
    let db = TestPostgres::create()
        .await
        .expect("this test needs PostgreSQL at 127.0.0.1:5432");
    let database = db.name();
    let proxy = CuttableProxy::start("127.0.0.1:5432").await;
    let up = FakeUpstream::start().await;
    up.set_default(json_answer());
    let config = yaml_config(
        &format!(
            r#"
storage:
  database_url: "postgres://postgres@{proxy}/{database}"
tiers:
  pro: {{ markup: 0.0, byok: false, monthly_credits: 1000, default_power_level: balanced }}
providers:
  - {{ name: demo, kind: demo }}
  - {{ name: up, kind: openai, api_base: "{up}/v1", api_key: sk-test-up-0000 }}
models:
  - {{ name: outage-free, provider: demo, upstream_model: echo, free: true }}
  - {{ name: outage-paid, provider: up, upstream_model: up-model, cost_per_1k: 0.002 }}
routing:
  num_retries: 0
"#,
            proxy = proxy.addr,
            up = up.url()
        ),
        &empty_env(),
    );
    let server = start(config).await;
    let user = unique("outage-user");
    let key = create_user(&server.url(), &user, "pro").await;
    assert_eq!(readiness(&server).await.0, 200);
    // A paid request while the database is there (this also caches the user's key).
    assert_eq!(
        chat_as(&server, &key, ask("outage-paid", false))
            .await
            .status(),
        200
    );
    let upstream_calls = up.request_count();
    let before = Scrape::of(&format!("{}/metrics", server.url())).await;

    proxy.cut();
    let (status, body) = readiness(&server).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["failed"], json!(["database"]));
    assert_ne!(body["checks"]["database"], "ok");

    // A free model is still served; a paid one is refused before any upstream call.
    let free = chat(&server, ask("outage-free", false)).await;
    assert_eq!(free.status(), 200);
    let paid = chat_as(&server, &key, ask("outage-paid", false)).await;
    let error = assert_error(paid, 503, "service_unavailable").await;
    assert!(
        error["message"].as_str().unwrap().contains("database"),
        "{error}"
    );
    assert_eq!(
        up.request_count(),
        upstream_calls,
        "no upstream call unpaid"
    );
    let during = Scrape::of(&format!("{}/metrics", server.url())).await;
    assert!(
        during.sum("llmgate_backend_errors_total", &[("backend", "database")])
            > before.sum("llmgate_backend_errors_total", &[("backend", "database")])
    );

    proxy.restore();
    let mut back = readiness(&server).await;
    for _ in 0..20 {
        if back.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        back = readiness(&server).await;
    }
    assert_eq!(
        back,
        (
            200,
            json!({"status": "ready", "checks": {"database": "ok"}})
        )
    );
    assert_eq!(
        chat_as(&server, &key, ask("outage-paid", false))
            .await
            .status(),
        200
    );
    server.shutdown().await.unwrap();

    // Nothing was charged without the ledger: every hold was closed, once.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM credit_holds")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(open, 0);
    let kinds: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, COUNT(*) FROM credit_ledger WHERE user_id = $1 GROUP BY kind ORDER BY kind",
    )
    .bind(&user)
    .fetch_all(&pool)
    .await
    .unwrap();
    let count = |kind: &str| kinds.iter().find(|(k, _)| k == kind).map_or(0, |(_, n)| *n);
    assert_eq!(count("hold"), 2, "{kinds:?}");
    assert_eq!(count("charge"), 2, "{kinds:?}");
    pool.close().await;
}

/// The deployment files agree with each other: no Docker engine runs here, so the compose
/// file is checked as YAML, and the production config is loaded with exactly the environment
/// compose gives the container.
#[test]
fn deployment_files_fit_together() {
    use llmgate_server::config::{Config, Env};

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let compose: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(root.join("docker-compose.yml")).unwrap())
            .unwrap();
    let services = &compose["services"];
    for name in ["llmgate", "postgres", "redis"] {
        assert!(services[name].is_mapping(), "service {name}");
        if name != "llmgate" {
            assert!(
                services[name]["healthcheck"]["test"].is_sequence(),
                "{name} health"
            );
        }
    }
    let gateway = &services["llmgate"];
    for dependency in ["postgres", "redis"] {
        assert_eq!(
            gateway["depends_on"][dependency]["condition"], "service_healthy",
            "llmgate waits for {dependency}"
        );
    }
    let mount = gateway["volumes"][0].as_str().unwrap();
    let (host, container) = mount.split_once(':').unwrap();
    assert!(root.join(host).is_file(), "{host} is mounted");
    let command: Vec<&str> = gateway["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        command,
        ["serve", "--config", container.trim_end_matches(":ro")]
    );

    // The container's environment as compose builds it: `${VAR:?...}` from the operator.
    let environment: Vec<(String, String)> = gateway["environment"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let value = v.as_str().unwrap();
            let value = if value.contains("${") {
                value.replace(
                    &value[value.find("${").unwrap()..=value.find('}').unwrap()],
                    "secret",
                )
            } else {
                value.to_owned()
            };
            (k.as_str().unwrap().to_owned(), value)
        })
        .collect();
    let mut pairs = environment.clone();
    for (name, value) in pairs.iter_mut() {
        match name.as_str() {
            "LLMGATE_MASTER_KEY" => *value = "lg-master-0123456789abcdef".to_owned(),
            // base64 of 32 bytes
            "LLMGATE_BYOK_KEY" => {
                *value = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_owned()
            }
            _ => {}
        }
    }
    let env = Env::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let config = Config::load_file(&root.join(host), &env).unwrap_or_else(|error| {
        panic!("the production config with compose's environment: {error}")
    });
    config.check().unwrap();
    assert!(config.storage.database_url.starts_with("postgres://"));
    assert_eq!(
        config.storage.redis_url.as_deref(),
        Some("redis://redis:6379")
    );
    assert!(config.byok.encryption_key.is_some());

    // Compose waits longer than the drain before it kills.
    let grace = gateway["stop_grace_period"].as_str().unwrap();
    let grace_s: u64 = grace.trim_end_matches('s').parse().unwrap();
    assert!(grace_s * 1000 > config.server.shutdown_grace_ms, "{grace}");
    // Metrics on their own port, reachable on the compose network only.
    let metrics_port = config
        .server
        .metrics_listen
        .as_deref()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap();
    assert!(
        gateway["expose"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|p| p.as_str() == Some(metrics_port))
    );
    let published = serde_yaml_ng::to_string(&gateway["ports"]).unwrap();
    assert!(
        !published.contains(metrics_port),
        "metrics are not published"
    );

    // The image checks itself without curl, and does not run as root.
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    assert!(dockerfile.contains(r#"CMD ["/usr/local/bin/llmgate", "health""#));
    let user = dockerfile
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .unwrap();
    assert!(!user.contains("root") || user.contains("nonroot"), "{user}");
    assert!(!user.ends_with(" 0") && !user.contains(" 0:"), "{user}");
}
