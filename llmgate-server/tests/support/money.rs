//! Support for the credits and billing tests: a server over a test database with a fake
//! OpenAI-compatible upstream, a fake Stripe and an alert receiver, and users created through
//! the server's own user directory.

use std::time::Duration;

use llmgate_credits::users::UserRole;
use llmgate_server::config::{Config, Env};
use llmgate_server::{AppState, RunningServer};
use llmgate_testkit::{FakeUpstream, Reply, openai, stripe};
use serde_json::{Value, json};

pub use super::databases::{Database, Db, unique};
pub use super::{MASTER_KEY, bind, client};

pub const STRIPE_SECRET_KEY: &str = "sk_test_fake_51Hsecretsecretsecret";
pub const WEBHOOK_SECRET: &str = "whsec_test_fake_signing_secret";

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
pub fn config(db: &Database, fakes: &Fakes, options: Options) -> Config {
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

/// A test database of kind `db`, the fakes, and a gateway over both configured with `options`;
/// `None` when the database is not available (see [`Database::create`]).
pub async fn setup(db: Db, options: Options) -> Option<(Database, Fakes, Gateway)> {
    let database = Database::create(db).await?;
    let fakes = Fakes::start().await;
    let gateway = Gateway::start(config(&database, &fakes, options)).await;
    Some((database, fakes, gateway))
}

/// A running server and its state (for creating users).
pub struct Gateway {
    pub server: RunningServer,
    pub state: AppState,
}

impl Gateway {
    pub async fn start(config: Config) -> Self {
        let server = bind(config).await;
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

    /// `POST /v1/chat/completions` with `key`.
    pub async fn chat(&self, key: &str, body: Value) -> reqwest::Response {
        client()
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
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
