//! `routing:` — how deployments are ranked and retried.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingStrategy {
    #[default]
    Cost,
    Latency,
    LeastBusy,
    Weighted,
    Priority,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    pub strategy: RoutingStrategy,
    /// Further attempts after the first, across deployments and fallbacks.
    pub num_retries: u32,
    /// Consecutive failures that put a deployment in cooldown.
    pub cooldown_after_failures: u32,
    pub cooldown_ms: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            strategy: RoutingStrategy::Cost,
            num_retries: 2,
            cooldown_after_failures: 3,
            cooldown_ms: 30_000,
        }
    }
}
