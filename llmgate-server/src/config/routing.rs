//! `routing:` — how deployments are ranked, retried and cooled down.

use llmgate_core::routing::Strategy;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// `cost`, `latency`, `least_busy`, `weighted` or `priority`.
    pub strategy: Strategy,
    /// Retry rounds after the first round over a model's deployments and fallbacks.
    pub num_retries: u32,
    /// The most upstream calls one request makes, failover and retries together (at least 1).
    pub max_attempts: u32,
    /// The backoff before retry round `n` is a random point in the upper half of
    /// `min(backoff_base_ms × 2^(n-1), backoff_max_ms)`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// The longest one wait before a retry round, an upstream `Retry-After` included. A
    /// deployment that asks for longer cools down until then and the next candidate is tried
    /// at once; with none left, the client gets the upstream's error and its `Retry-After`.
    pub max_retry_wait_ms: u64,
    /// Models tried after every named model's own fallbacks, in order.
    pub default_fallbacks: Vec<String>,
    /// Consecutive failures that put a deployment in cooldown (0: never).
    pub cooldown_after_failures: u32,
    pub cooldown_ms: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::Cost,
            num_retries: 2,
            max_attempts: 10,
            backoff_base_ms: 250,
            backoff_max_ms: 8_000,
            max_retry_wait_ms: 2_000,
            default_fallbacks: Vec::new(),
            cooldown_after_failures: 3,
            cooldown_ms: 30_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{Config, Env};

    fn problems(yaml: &str) -> Vec<String> {
        let config = Config::from_yaml(yaml, &Env::from_pairs([("X", "y")])).unwrap();
        config.validate().iter().map(ToString::to_string).collect()
    }

    const MODELS: &str = r#"
providers:
  - { name: demo, kind: demo }
models:
  - { name: a, provider: demo, upstream_model: echo, free: true }
  - { name: b, provider: demo, upstream_model: echo, free: true }
"#;

    #[test]
    fn every_routing_knob_is_read_and_checked() {
        let yaml = format!(
            "{MODELS}routing:\n  strategy: priority\n  num_retries: 1\n  max_attempts: 4\n  \
             backoff_base_ms: 10\n  backoff_max_ms: 20\n  max_retry_wait_ms: 30\n  default_fallbacks: [b]\n  \
             cooldown_after_failures: 2\n  cooldown_ms: 500\n"
        );
        assert!(problems(&yaml).is_empty(), "{:?}", problems(&yaml));
        let config = Config::from_yaml(&yaml, &Env::from_pairs([("X", "y")])).unwrap();
        let routing = &config.routing;
        assert_eq!(routing.strategy, llmgate_core::routing::Strategy::Priority);
        assert_eq!(
            (routing.num_retries, routing.max_attempts),
            (1, 4),
            "{routing:?}"
        );
        assert_eq!(
            (
                Duration::from_millis(routing.backoff_base_ms),
                Duration::from_millis(routing.backoff_max_ms)
            ),
            (Duration::from_millis(10), Duration::from_millis(20))
        );
        assert_eq!(routing.max_retry_wait_ms, 30);
        assert_eq!(routing.default_fallbacks, ["b"]);

        let bad = format!(
            "{MODELS}routing:\n  max_attempts: 0\n  backoff_base_ms: 100\n  backoff_max_ms: 50\n  \
             default_fallbacks: [b, nope, b]\n"
        );
        assert_eq!(
            problems(&bad),
            [
                "routing.max_attempts: must be greater than 0",
                "routing.backoff_max_ms: must be at least routing.backoff_base_ms (100)",
                "routing.default_fallbacks[1]: unknown model \"nope\"",
                "routing.default_fallbacks[2]: \"b\" is listed twice",
            ]
        );
        let typo = Config::from_yaml(
            "routing:\n  max_attempt: 3\n",
            &Env::from_pairs([("X", "y")]),
        )
        .unwrap_err();
        assert_eq!(typo.problems[0].path, "routing.max_attempt", "{typo}");
    }

    #[test]
    fn deployment_limits_and_the_storage_values_are_checked() {
        let yaml = r#"
storage:
  redis_prefix: ""
  hold_ttl_secs: 0
  reclaim_every_secs: 0
providers:
  - { name: demo, kind: demo }
models:
  - { name: a, provider: demo, upstream_model: echo, free: true, rpm: 0, tpm: 0 }
"#;
        assert_eq!(
            problems(yaml),
            [
                "storage.redis_prefix: must be non-empty and contain no spaces",
                "storage.hold_ttl_secs: must be at least 1",
                "storage.reclaim_every_secs: must be at least 1",
                "models[0].rpm: must be greater than 0",
                "models[0].tpm: must be greater than 0",
            ]
        );
    }

    #[test]
    fn the_gateway_gets_the_default_fallbacks() {
        let yaml = format!(
            "{MODELS}  - {{ name: c, provider: demo, upstream_model: echo, free: true, \
             fallbacks: [a] }}\nrouting:\n  default_fallbacks: [b]\n"
        );
        let config = Config::from_yaml(&yaml, &Env::from_pairs([("X", "y")])).unwrap();
        assert!(config.validate().is_empty(), "{:?}", config.validate());
        let gateway = crate::state::build_gateway(&config).unwrap();
        let request: llmgate_core::chat::ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "c",
            "messages": [{"role": "user", "content": "hi"}],
        }))
        .unwrap();
        let chain: Vec<String> = gateway
            .route_preview(&llmgate_core::Caller::admin(), &request)
            .unwrap()
            .iter()
            .map(|d| d.name.clone())
            .collect();
        assert_eq!(chain, ["c", "a", "b"]);
    }
}
