//! Support for the credits and billing tests: a throwaway SQLite file or PostgreSQL database
//! per test, a server over it with a fake OpenAI-compatible upstream, a fake Stripe and an
//! alert receiver, and users created through the server's own user directory.
//!
//! PostgreSQL is the real service (`LLMGATE_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). When it is unreachable a test prints `SKIPPED`
//! and passes, except with `CI=true`, where it fails.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use llmgate_core::Secret;
use llmgate_credits::users::UserRole;
use llmgate_server::config::{Config, Env};
use llmgate_server::{AppState, RunningServer, Server};
use llmgate_testkit::{FakeUpstream, Reply, openai, stripe};
use serde_json::{Value, json};
use sqlx::Connection;

pub const MASTER_KEY: &str = "lg-master-test-0123456789abcdef";
pub const STRIPE_SECRET_KEY: &str = "sk_test_fake_51Hsecretsecretsecret";
pub const WEBHOOK_SECRET: &str = "whsec_test_fake_signing_secret";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn unique(prefix: &str) -> String {
    format!("{prefix}{:016x}", rand::random::<u64>())
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A database that lives as long as the test: a SQLite file in its own directory, or a fresh
/// PostgreSQL database dropped (forcibly) at the end.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Dir(PathBuf),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// `None` (after printing why) when PostgreSQL is unreachable outside CI.
    pub async fn create(db: Db) -> Option<Self> {
        match db {
            Db::Sqlite => {
                let dir = std::env::temp_dir().join(unique("llmgate-billing-test-"));
                std::fs::create_dir_all(&dir).unwrap();
                Some(Self {
                    url: format!("sqlite://{}", dir.join("ledger.db").display()),
                    cleanup: Cleanup::Dir(dir),
                })
            }
            Db::Postgres => {
                let admin_url = std::env::var("LLMGATE_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
                let name = unique("llmgate_test_");
                let created = tokio::time::timeout(Duration::from_secs(5), async {
                    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                        .execute(&mut admin)
                        .await?;
                    admin.close().await
                })
                .await;
                match created {
                    Ok(Ok(())) => Some(Self {
                        url: with_database(&admin_url, &name),
                        cleanup: Cleanup::Postgres { admin_url, name },
                    }),
                    Ok(Err(error)) => unavailable(&error),
                    Err(_) => unavailable(&"connecting timed out"),
                }
            }
        }
    }
}

fn unavailable(why: &dyn std::fmt::Display) -> Option<TestDb> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("PostgreSQL is required when CI=true but is unreachable: {why}");
    }
    eprintln!("SKIPPED: PostgreSQL is unreachable ({why}); set it up to run this test");
    None
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[start..].find('/') {
        Some(slash) => &base[..start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { admin_url, name } => {
                // Drop runs inside the test's runtime, which cannot block on itself.
                let (admin_url, name) = (admin_url.clone(), name.clone());
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(async {
                        let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut admin)
                        .await?;
                        admin.close().await
                    })
                })
                .join();
                if !matches!(dropped, Ok(Ok(()))) {
                    eprintln!("warning: could not drop a test database");
                }
            }
        }
    }
}

/// The fakes a gateway under test talks to.
#[derive(Debug)]
pub struct Fakes {
    /// An OpenAI-compatible provider.
    pub upstream: FakeUpstream,
    pub stripe: FakeUpstream,
    /// Receives low-balance alerts.
    pub alerts: FakeUpstream,
}

impl Fakes {
    pub async fn start() -> Self {
        let fakes = Self {
            upstream: FakeUpstream::start().await,
            stripe: FakeUpstream::start().await,
            alerts: FakeUpstream::start().await,
        };
        fakes
            .alerts
            .set_default(Reply::json(200, json!({"ok": true})));
        fakes
    }
}

/// What a test wants in the config besides the database and the fakes.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub stripe: bool,
    /// `billing.low_credit_alert.threshold_credits`.
    pub alert_threshold: Option<&'static str>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            stripe: true,
            alert_threshold: None,
        }
    }
}

/// The config: tier `starter` as in the spec but without a monthly grant (tests add exactly
/// what they need), a paid model `cheap` at $0.002/1K and a free model `gratis`.
pub fn config(db: &TestDb, fakes: &Fakes, options: Options) -> Config {
    let mut billing = String::from("billing:\n  credits_per_usd: 1000\n");
    if options.stripe {
        billing.push_str(
            "  stripe:\n    secret_key: os.environ/STRIPE_SECRET_KEY\n    webhook_secret: os.environ/STRIPE_WEBHOOK_SECRET\n    api_base: ${STRIPE_URL}\n    success_url: https://example.com/billing/done\n    cancel_url: https://example.com/billing/cancelled\n",
        );
    }
    if let Some(threshold) = options.alert_threshold {
        billing.push_str(&format!(
            "  low_credit_alert:\n    threshold_credits: {threshold}\n    webhook_url: ${{ALERT_URL}}/hooks/llmgate\n"
        ));
    }
    let yaml = format!(
        r#"
storage:
  database_url: ${{DB_URL}}
{billing}
tiers:
  starter: {{ markup: 0.4, byok: true, monthly_credits: 0, default_power_level: balanced }}
  free: {{ markup: 0.0, byok: false, monthly_credits: 0, default_power_level: eco }}
providers:
  - name: fake
    kind: openai
    api_base: ${{UPSTREAM_URL}}/v1
    api_key: sk-upstream-fake-key-1234
    timeout_ms: 10000
models:
  - name: cheap
    provider: fake
    upstream_model: up-cheap
    input_cost_per_1k: 0.002
    output_cost_per_1k: 0.002
  - name: gratis
    provider: fake
    upstream_model: up-gratis
    input_cost_per_1k: 0
    output_cost_per_1k: 0
"#
    );
    let env = Env::from_pairs([
        ("DB_URL", db.url.clone()),
        ("UPSTREAM_URL", fakes.upstream.url()),
        ("STRIPE_URL", fakes.stripe.url()),
        ("ALERT_URL", fakes.alerts.url()),
        ("STRIPE_SECRET_KEY", STRIPE_SECRET_KEY.to_owned()),
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
    ]);
    let config = Config::from_yaml(&yaml, &env).unwrap();
    config.check().unwrap();
    config
}

/// A running server and its state (for creating users).
pub struct Gateway {
    pub server: RunningServer,
    pub state: AppState,
}

impl Gateway {
    pub async fn start(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server::new(config, &Secret::new(MASTER_KEY), listener)
            .await
            .unwrap();
        let state = server.state().clone();
        Self {
            server: server.spawn().unwrap(),
            state,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    /// A user with a live API key (the key is returned).
    pub async fn user(&self, user_id: &str, tier: &str) -> String {
        let (_, key) = self
            .state
            .storage
            .users
            .create(user_id, tier, UserRole::User)
            .await
            .unwrap();
        key.key.expose().to_owned()
    }

    /// Add credits with the master key through `POST /api/v1/llm/credits/add`.
    pub async fn add_credits(&self, user_id: &str, amount: Value) -> Value {
        let response = client()
            .post(self.url("/api/v1/llm/credits/add"))
            .bearer_auth(MASTER_KEY)
            .json(&json!({"user_id": user_id, "amount": amount, "reason": "test"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let response = client()
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        let response = client()
            .post(self.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The balance as `GET /api/v1/llm/credits` reports it to the user.
    pub async fn balance(&self, key: &str) -> i64 {
        let (status, body) = self.get("/api/v1/llm/credits", key).await;
        assert_eq!(status, 200, "{body}");
        body["balance_micros"].as_i64().unwrap()
    }

    /// Deliver a webhook payload signed with `header`.
    pub async fn webhook(&self, payload: &[u8], header: Option<&str>) -> (u16, Value) {
        let mut request = client()
            .post(self.url("/api/v1/billing/stripe/webhook"))
            .header("content-type", "application/json")
            .body(payload.to_vec());
        if let Some(header) = header {
            request = request.header("stripe-signature", header);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn stop(self) {
        self.server.shutdown().await.unwrap();
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

/// A chat request for `model` with a short prompt.
pub fn ask(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream,
           "messages": [{"role": "user", "content": "say hello"}]})
}

/// Script the upstream to answer once with usage `prompt`/`completion`.
pub fn answer_with_usage(upstream: &FakeUpstream, model: &str, prompt: u64, completion: u64) {
    upstream.push(Reply::json(
        200,
        openai::completion(model, "Hello!", prompt, completion),
    ));
}

/// A signed `checkout.session.completed` for `session_id`, as Stripe would deliver it now.
pub fn signed_completion(session_id: &str, user_id: &str, package: &str) -> (Vec<u8>, String) {
    let payload = stripe::checkout_completed(&unique("evt_"), session_id, user_id, package, 450)
        .to_string()
        .into_bytes();
    let header = stripe::signature_header(&payload, WEBHOOK_SECRET, now());
    (payload, header)
}

pub fn now() -> i64 {
    llmgate_core::memory::unix_now()
}

/// Wait (bounded) until `fake` has received `count` requests.
pub async fn wait_for_requests(fake: &FakeUpstream, count: usize) {
    for _ in 0..200 {
        if fake.request_count() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "expected {count} requests, got {} after 5 s",
        fake.request_count()
    );
}
