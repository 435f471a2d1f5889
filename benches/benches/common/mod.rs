//! The rig the gateway benches share: an in-process `llmgate` server (in-memory SQLite, a tier
//! `bench` with a markup, then the caller's providers and models, with `${UPSTREAM}` set to a
//! fake upstream's URL) and a user of that tier with plenty of credits; and timing one request
//! path over a keep-alive connection ([`bench`]).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use criterion::BenchmarkGroup;
use llmgate_benches::load::client::{self, Connection, Target, Timing};
use llmgate_core::keys::Secret;
use llmgate_server::config::{Config, Env};
use llmgate_server::{RunningServer, Server};
use tokio::runtime::Runtime;

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

/// Which part of a request's timing a bench reports.
#[allow(dead_code, reason = "not every bench of the rig times paths")]
#[derive(Clone, Copy)]
pub enum Measure {
    /// To the last body byte.
    Total,
    /// To the first body byte.
    FirstByte,
}

/// Bench `id`: `target` answering `body`, timed from sending the request to the byte `measure`
/// picks (the whole answer is read either way).
#[allow(dead_code, reason = "not every bench of the rig times paths")]
pub fn bench(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &Runtime,
    id: &str,
    target: &Target,
    body: &Bytes,
    measure: Measure,
) {
    let mut connection = runtime
        .block_on(Connection::open(target.addr))
        .expect("connect");
    group.bench_function(id, |b| {
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                let timing: Timing = runtime
                    .block_on(connection.post(target, body))
                    .expect("request");
                elapsed += match measure {
                    Measure::Total => timing.total,
                    Measure::FirstByte => timing.first_byte,
                };
                black_box(timing);
            }
            elapsed
        });
    });
}
