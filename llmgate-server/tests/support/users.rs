//! Shared by the users, permissions and BYOK tests: a gateway with a fake OpenAI-compatible
//! upstream, its own test database, BYOK on, and helpers to act as the admin or a user.

use base64::Engine;
use llmgate_core::Gateway;
use llmgate_server::RunningServer;
use llmgate_testkit::{FakeUpstream, Reply, openai};
use serde_json::{Value, json};

pub use super::databases::{Database, postgres, sqlite_file, unique};
pub use super::{MASTER_KEY, bind, client};

/// The platform's key for the fake provider.
pub const PLATFORM_KEY: &str = "sk-platform-0123456789abcdef";
/// The fake provider's name and the priced model on it.
pub const PROVIDER: &str = "fakeai";
pub const MODEL: &str = "fake-model";

/// A fresh BYOK sealing key, as the config takes it.
pub fn byok_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

/// The config: the fake provider with a platform key and a priced model, the free demo
/// model, the seed's tiers (free without BYOK, starter with), and BYOK on when a key is given.
pub fn config_yaml(upstream: &str, database_url: &str, byok: Option<&str>) -> String {
    let byok = byok.map_or(String::new(), |key| {
        format!("byok:\n  encryption_key: \"{key}\"\n")
    });
    format!(
        r#"
storage:
  database_url: "{database_url}"
{byok}providers:
  - name: {PROVIDER}
    kind: openai
    api_base: "{upstream}"
    api_key: {PLATFORM_KEY}
  - name: demo
    kind: demo
    local: true
models:
  - name: {MODEL}
    provider: {PROVIDER}
    upstream_model: fake-upstream-model
    input_cost_per_1k: 0.002
    output_cost_per_1k: 0.002
  - name: demo/echo
    provider: demo
    upstream_model: echo
    cost_per_1k: 0
"#
    )
}

/// A running gateway over its own database with a fake upstream.
pub struct Gate {
    pub server: RunningServer,
    pub gateway: Gateway,
    pub upstream: FakeUpstream,
    pub db: Database,
    pub client: reqwest::Client,
}

impl Gate {
    pub async fn start(db: Database) -> Gate {
        Self::start_with(db, Some(&byok_key())).await
    }

    pub async fn start_with(db: Database, byok: Option<&str>) -> Gate {
        Self::start_configured(db, byok, None).await
    }

    /// With `storage.redis_url` set too.
    pub async fn start_with_redis(db: Database, redis_url: &str) -> Gate {
        Self::start_configured(db, Some(&byok_key()), Some(redis_url)).await
    }

    async fn start_configured(db: Database, byok: Option<&str>, redis: Option<&str>) -> Gate {
        let upstream = FakeUpstream::start().await;
        upstream.set_default(Reply::json(
            200,
            openai::completion("fake-upstream-model", "hello", 400, 600),
        ));
        let mut yaml = config_yaml(&upstream.url(), &db.url, byok);
        if let Some(redis) = redis {
            let database = format!("  database_url: \"{}\"\n", db.url);
            yaml = yaml.replace(&database, &format!("{database}  redis_url: \"{redis}\"\n"));
        }
        let config = super::yaml_config(&yaml, &super::empty_env());
        let server = bind(config).await;
        let gateway = server.state().gateway.clone();
        Gate {
            server: server.spawn().unwrap(),
            gateway,
            upstream,
            db,
            client: client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    /// Send `method path` with `key` (none when `None`) and an optional JSON body.
    pub async fn call(
        &self,
        key: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, _, body) = self.call_full(key, method, path, body).await;
        (status, body)
    }

    /// [`Gate::call`] with the master key.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(Some(MASTER_KEY), method, path, body).await
    }

    /// Like [`Gate::call`], with the response headers.
    pub async fn call_full(
        &self,
        key: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self.client.request(method.parse().unwrap(), self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, body)
    }

    /// Create a user as the admin; returns their API key.
    pub async fn create_user(&self, user_id: &str, tier: &str, role: &str) -> String {
        let (status, body) = self
            .call(
                Some(MASTER_KEY),
                "POST",
                "/api/v1/admin/users",
                Some(json!({ "user_id": user_id, "tier": tier, "role": role })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["api_key"].as_str().unwrap().to_owned()
    }

    /// A user's balance in micro-credits once every charge in flight is written.
    pub async fn balance(&self, user_id: &str) -> i64 {
        self.gateway.settled().await;
        let (status, body) = self
            .call(
                Some(MASTER_KEY),
                "GET",
                &format!("/api/v1/admin/users/{user_id}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["balance_micros"].as_i64().unwrap()
    }

    /// A JSON chat with the priced model.
    pub async fn chat(&self, key: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        self.call_full(
            Some(key),
            "POST",
            "/v1/chat/completions",
            Some(json!({
                "model": MODEL,
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 1000,
            })),
        )
        .await
    }

    /// Shut down; the database stays until the returned handle is dropped.
    pub async fn stop(self) -> Database {
        self.server.shutdown().await.unwrap();
        self.db
    }
}
