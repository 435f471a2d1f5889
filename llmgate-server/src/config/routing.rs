//! `routing:` — how deployments are ranked, retried and cooled down.

use llmgate_core::Strategy;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// `cost`, `latency`, `least_busy`, `weighted` or `priority`.
    pub strategy: Strategy,
    /// Retry rounds after the first round over a model's deployments and fallbacks.
    pub num_retries: u32,
    /// Consecutive failures that put a deployment in cooldown (0: never).
    pub cooldown_after_failures: u32,
    pub cooldown_ms: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::Cost,
            num_retries: 2,
            cooldown_after_failures: 3,
            cooldown_ms: 30_000,
        }
    }
}
