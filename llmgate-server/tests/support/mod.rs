//! Shared test support: a real server on 127.0.0.1:0 and an HTTP client for it, throwaway
//! databases, and the fixtures of the money tests ([`money`]) and the user tests ([`users`]).
//! Include with `mod support;`.
#![allow(
    dead_code,
    unused_imports,
    unused_macros,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

/// A test body run once on SQLite and once on PostgreSQL (the file imports `Db`; include
/// support with `#[macro_use] mod support;`).
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Db::Sqlite).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Db::Postgres).await;
            })*
        }
    };
}

pub mod agents;
pub mod databases;
pub mod money;
pub mod proxy;
pub mod python;
pub mod redis;
pub mod users;

use llmgate_core::keys::Secret;
use llmgate_server::config::{Config, Env, StorageConfig};
use llmgate_server::{RunningServer, Server};
use serde_json::{Value, json};

pub const MASTER_KEY: &str = "lg-master-test-0123456789abcdef";

/// An environment with none of the well-known provider variables.
pub fn empty_env() -> Env {
    Env::from_pairs([("LLMGATE_TEST", "1")])
}

/// The built-in default, as `llmgate serve` runs it with no config and no keys.
pub fn demo_config() -> Config {
    Config::builtin(&empty_env())
}

/// Parse a YAML config (references resolved from `env`) and check it.
pub fn yaml_config(yaml: &str, env: &Env) -> Config {
    let config = Config::from_yaml(yaml, env).unwrap();
    config.check().unwrap();
    config
}

/// A server for `config` on 127.0.0.1:0 with [`MASTER_KEY`], bound but not yet serving.
pub async fn bind(config: Config) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Server::new(config, &Secret::new(MASTER_KEY), listener)
        .await
        .unwrap()
}

/// Start a server. A config left on the default database (`sqlite://llmgate.db`, which would
/// land in the crate directory) gets a private in-memory SQLite database instead.
pub async fn start(mut config: Config) -> RunningServer {
    if config.storage.database_url == StorageConfig::default().database_url {
        config.storage.database_url = "sqlite::memory:".to_owned();
    }
    bind(config).await.spawn().unwrap()
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

/// `GET path` without a key.
pub async fn get(server: &RunningServer, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", server.url()))
        .send()
        .await
        .unwrap()
}

/// `POST /v1/chat/completions` with the master key.
pub async fn chat(server: &RunningServer, body: Value) -> reqwest::Response {
    chat_as(server, MASTER_KEY, body).await
}

/// `POST /v1/chat/completions` with `key`.
pub async fn chat_as(server: &RunningServer, key: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/chat/completions", server.url()))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// `POST {base_url}/api/v1/admin/users` with the master key for a user of `tier`; returns the
/// new user's API key.
pub async fn create_user(base_url: &str, user_id: &str, tier: &str) -> String {
    let response = client()
        .post(format!("{base_url}/api/v1/admin/users"))
        .bearer_auth(MASTER_KEY)
        .json(&json!({ "user_id": user_id, "tier": tier, "role": "user" }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "creating {user_id}: {body}");
    body["api_key"].as_str().unwrap().to_owned()
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|event| !event.trim().is_empty())
        .map(|event| {
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {event:?}"))
                .to_owned()
        })
        .collect()
}

/// The chunks of a finished stream, which must end with `data: [DONE]`.
pub fn stream_chunks(text: &str) -> Vec<Value> {
    let events = sse_data(text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

/// The text the chunks' deltas add up to.
pub fn streamed_content(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// Asserts the OpenAI error shape and returns the `error` object.
pub async fn assert_error(response: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/json");
    let body: Value = response.json().await.unwrap();
    let error = body["error"].clone();
    assert_eq!(error["type"], kind, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    for field in ["param", "code"] {
        assert!(error.get(field).is_some(), "`{field}` missing in {body}");
    }
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    error
}

/// The entry of model `id` in a `/v1/models` answer.
pub fn listed_model(models: &Value, id: &str) -> Value {
    models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap()
        .clone()
}
