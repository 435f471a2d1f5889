//! The gateway config of a stress run: one paid model that answers and one that always falls
//! back to it, priced at one credit per token so holds and charges are easy to reason about,
//! and the tiers whose monthly grants fund the users.

/// Monthly grant of the users at the edge: about three holds, so refusals come quickly.
pub const EDGE_GRANT_CREDITS: u64 = 3_000;
/// Monthly grant of the users who are never short.
pub const RICH_GRANT_CREDITS: u64 = 10_000_000;

/// A replica silent this long is taken for stopped and its holds are reclaimed by the others.
/// Replicas beat every second; the margin covers a loaded machine (a 20-minute run of all
/// variants at once with 3 s saw live replicas taken for stopped).
pub const REPLICA_TIMEOUT_SECS: u64 = 6;

/// Where and how a replica stores its state.
#[derive(Debug, Clone)]
pub struct Storage {
    pub database_url: String,
    /// `(url, key prefix)` of a Redis shared by the replicas.
    pub redis: Option<(String, String)>,
    pub hold_ttl_secs: u64,
}

/// The YAML config of one replica; `listen` is set for the real binary only.
pub fn yaml(storage: &Storage, upstream_url: &str, listen: Option<u16>) -> String {
    let listen = listen.map_or_else(String::new, |port| format!("  listen: 127.0.0.1:{port}\n"));
    let redis = storage
        .redis
        .as_ref()
        .map_or_else(String::new, |(url, prefix)| {
            format!("  redis_url: \"{url}\"\n  redis_prefix: \"{prefix}\"\n")
        });
    format!(
        r#"
server:
{listen}  shutdown_grace_ms: 3000
storage:
  database_url: "{database}"
  hold_ttl_secs: {ttl}
  reclaim_every_secs: 1
  replica_timeout_secs: {REPLICA_TIMEOUT_SECS}
{redis}billing:
  credits_per_usd: 1000
tiers:
  newcomer: {{ markup: 0, byok: false, monthly_credits: 0, default_power_level: balanced }}
  edge: {{ markup: 0, byok: false, monthly_credits: {EDGE_GRANT_CREDITS}, default_power_level: balanced }}
  rich: {{ markup: 0, byok: false, monthly_credits: {RICH_GRANT_CREDITS}, default_power_level: balanced }}
power_levels:
  balanced: {{ cost_multiplier: 1 }}
providers:
  - {{ name: fake, kind: openai, api_base: "{upstream_url}/v1", api_key: sk-stress-fake-0000, timeout_ms: 30000 }}
models:
  - {{ name: steady, provider: fake, upstream_model: up-steady, input_cost_per_1k: 1, output_cost_per_1k: 1 }}
  - {{ name: flaky, provider: fake, upstream_model: up-flaky, input_cost_per_1k: 1, output_cost_per_1k: 1, fallbacks: [steady] }}
routing:
  num_retries: 0
  cooldown_after_failures: 0
"#,
        database = storage.database_url,
        ttl = storage.hold_ttl_secs,
    )
}
