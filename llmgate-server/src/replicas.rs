//! What replicas share through Redis besides the balance cache: the per-user and
//! per-deployment rate limits, and deployment cooldowns (a deployment one replica saw fail is
//! skipped by the others too). Without `storage.redis_url` both stay in the process.

use std::sync::Arc;
use std::time::Duration;

use llmgate_core::GatewayBuilder;
use llmgate_credits::{RedisCooldowns, RedisLimitSettings, RedisRateLimiter};

use crate::config::{ConfigError, Problem};
use crate::telemetry::{MeteredCooldowns, MeteredRateLimiter};

/// How often a replica pulls the cooldowns the others published.
const COOLDOWN_SYNC: Duration = Duration::from_secs(1);

/// Point the gateway's rate limiter and cooldowns at Redis (timed as `backend="redis"`), under
/// `key_prefix` (`storage.redis_prefix`). Does not wait for Redis: while it is down, limits
/// fail open and cooldowns stay local.
pub async fn share_through_redis(
    builder: GatewayBuilder,
    redis_url: &str,
    key_prefix: &str,
) -> Result<GatewayBuilder, ConfigError> {
    let settings = RedisLimitSettings::default().with_key_prefix(key_prefix);
    let problem = |error: llmgate_core::Error| ConfigError {
        source_name: None,
        problems: vec![Problem::new("storage.redis_url", error.message())],
    };
    let limiter = RedisRateLimiter::connect(redis_url, settings.clone())
        .await
        .map_err(problem)?;
    let cooldowns = RedisCooldowns::connect(redis_url, settings)
        .await
        .map_err(problem)?;
    Ok(builder
        .rate_limiter(Arc::new(MeteredRateLimiter::new(Arc::new(limiter))))
        .shared_cooldowns(
            Arc::new(MeteredCooldowns::new(Arc::new(cooldowns))),
            COOLDOWN_SYNC,
        ))
}
