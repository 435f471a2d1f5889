//! The rig the gateway benches share: an in-process `llmgate` server (in-memory SQLite, a tier
//! `bench` with a markup, then the caller's providers and models, with `${UPSTREAM}` set to a
//! fake upstream's URL) and a user of that tier with plenty of credits; [`paths`] times request
//! paths through it.

pub mod paths;

use std::net::SocketAddr;

use bytes::Bytes;
use llmgate_benches::load::client;
use llmgate_core::keys::Secret;
use llmgate_server::config::{Config, Env};
use llmgate_server::{RunningServer, Server};

const MASTER_KEY: &str = "lg-master-bench-0123456789abcdef";

/// The configuration before the caller's providers and models.
const HEAD: &str = r#"
storage:
  database_url: "sqlite::memory:"
tiers:
  bench: { markup: 0.4, byok: false, monthly_credits: 0, default_power_level: balanced }
"#;

/// The running gateway, its address and the funded user's key.
pub struct Gateway {
    pub _server: RunningServer,
    pub addr: SocketAddr,
    pub key: String,
}

/// Start the gateway with `providers_and_models` (YAML) in front of `upstream_url` and fund a
/// user.
pub async fn start(providers_and_models: &str, upstream_url: &str) -> Gateway {
    let env = Env::from_pairs([("UPSTREAM", upstream_url.to_owned())]);
    let config = Config::from_yaml(&format!("{HEAD}{providers_and_models}"), &env).expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = Server::new(config, &Secret::new(MASTER_KEY), listener)
        .await
        .expect("server")
        .spawn()
        .expect("spawn");
    let addr = address(&server.url());
    let user = serde_json::json!({"user_id": "bench", "tier": "bench", "role": "user"});
    let created = admin(addr, "/api/v1/admin/users", &user).await;
    let created: serde_json::Value = serde_json::from_slice(&created).expect("user JSON");
    let key = created["api_key"].as_str().expect("api_key").to_owned();
    let fund = serde_json::json!({"user_id": "bench", "amount": "100000000", "reason": "bench"});
    admin(addr, "/api/v1/llm/credits/add", &fund).await;
    Gateway {
        _server: server,
        addr,
        key,
    }
}

/// POST `body` to the admin API at `path` with the master key; the answer's body.
async fn admin(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Bytes {
    let master = format!("Bearer {MASTER_KEY}");
    let (_, answer) = client::call(addr, path, &master, Bytes::from(body.to_string()))
        .await
        .expect(path);
    answer
}

/// The socket address of an `http://host:port` URL.
pub fn address(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().expect("address")
}
