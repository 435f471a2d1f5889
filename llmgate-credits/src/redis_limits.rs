//! Limits and cooldowns shared by every replica through Redis: [`RedisRateLimiter`] (GCRA in
//! one Lua script, so concurrent gateways together admit no more than the quota) and
//! [`RedisCooldowns`] (deployments in cooldown, in one sorted set).
//!
//! Both time everything with Redis's own clock (`TIME`), so replicas' clocks need not agree.
//! When Redis is unreachable each call fails fast with `unavailable` — after a failure Redis is
//! left alone for a short while instead of making every request wait for a timeout — and the
//! gateway carries on with what it knows locally: rate limits fail open, cooldowns stay per
//! replica. Going down and coming back are logged once each.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use llmgate_core::{
    Error, Result,
    limits::{Admission, Quota, RateLimiter},
    routing::SharedCooldowns,
};
use redis::aio::ConnectionManager;
use redis::{RedisResult, Script};

use crate::redis_link::{Availability, lazy_connection};

/// GCRA over one key, in microseconds of Redis time. Returns `{1, 0}` when admitted, else
/// `{0, microseconds to wait}`; a refusal takes nothing.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next = tat + interval * cost
local ahead = next - now
if ahead > period then
  return {0, ahead - period}
end
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.ceil(ahead / 1000) + 1)
return {1, 0}
";

/// Record that `ARGV[1]` cools down for `ARGV[2]` ms; a shorter report never cuts a longer
/// cooldown. The set expires with its longest entry.
const PUBLISH: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ends = now + tonumber(ARGV[2])
local current = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if current == nil or current < ends then
  redis.call('ZADD', KEYS[1], ends, ARGV[1])
end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
";

/// The running cooldowns as `[deployment, ms left, ...]`, dropping the ended ones.
const ACTIVE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #entries, 2 do
  out[#out + 1] = entries[i]
  out[#out + 1] = string.format('%.0f', tonumber(entries[i + 1]) - now)
end
return out
";

/// How the Redis limiter and cooldown store talk to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisLimitSettings {
    /// Prepended to every key written (`<prefix>limit:<key>`, `<prefix>cooldowns`).
    pub key_prefix: String,
    /// The most one Redis call (or connecting) may take.
    pub timeout: Duration,
    /// After a failure, how long to leave Redis alone before trying again.
    pub retry_after: Duration,
}

impl Default for RedisLimitSettings {
    fn default() -> Self {
        Self {
            key_prefix: "llmgate:".to_owned(),
            timeout: Duration::from_millis(250),
            retry_after: Duration::from_secs(1),
        }
    }
}

impl RedisLimitSettings {
    /// Use this key prefix (e.g. one per deployment sharing a Redis).
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }
}

/// A connection that fails fast while Redis is down, and says so once.
struct Link {
    redis: ConnectionManager,
    settings: RedisLimitSettings,
    what: &'static str,
    availability: Availability,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("settings", &self.settings)
            .field("redis_down", &self.availability.is_down())
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Does not wait for Redis; fails only on a malformed URL.
    fn connect(redis_url: &str, settings: RedisLimitSettings, what: &'static str) -> Result<Self> {
        let redis = lazy_connection(redis_url, settings.timeout, settings.retry_after)?;
        Ok(Self::new(redis, settings, what))
    }

    fn new(redis: ConnectionManager, settings: RedisLimitSettings, what: &'static str) -> Self {
        Self {
            redis,
            settings,
            what,
            availability: Availability::new(),
        }
    }

    async fn run<T, F>(&self, call: impl FnOnce(ConnectionManager) -> F) -> Result<T>
    where
        F: Future<Output = RedisResult<T>>,
    {
        if self.availability.is_resting() {
            return Err(Error::unavailable("redis unavailable"));
        }
        let answer = tokio::time::timeout(self.settings.timeout, call(self.redis.clone())).await;
        match answer {
            Ok(Ok(value)) => {
                if self.availability.mark_up() {
                    tracing::info!(what = self.what, "Redis answers again");
                }
                Ok(value)
            }
            Ok(Err(error)) => {
                tracing::debug!(what = self.what, %error, "Redis call failed");
                Err(self.mark_down())
            }
            Err(_) => Err(self.mark_down()),
        }
    }

    fn mark_down(&self) -> Error {
        if self.availability.mark_down(self.settings.retry_after) {
            tracing::warn!(
                what = self.what,
                "Redis is unreachable; carrying on without it until it answers again"
            );
        }
        Error::unavailable("redis unavailable")
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// A [`RateLimiter`] in Redis: every replica that uses the same Redis and key prefix shares
/// each key's quota. One Lua script per decision, so concurrent callers never over-admit.
#[derive(Debug)]
pub struct RedisRateLimiter {
    link: Link,
    gcra: Script,
}

impl RedisRateLimiter {
    /// A limiter on `redis_url`. Does not wait for Redis; fails only on a malformed URL.
    /// (Async because the connection's background task needs the Tokio runtime.)
    pub async fn connect(redis_url: &str, settings: RedisLimitSettings) -> Result<Self> {
        Ok(Self::with_link(Link::connect(
            redis_url,
            settings,
            "rate limiter",
        )?))
    }

    /// A limiter on an existing connection.
    pub fn new(redis: ConnectionManager, settings: RedisLimitSettings) -> Self {
        Self::with_link(Link::new(redis, settings, "rate limiter"))
    }

    fn with_link(link: Link) -> Self {
        Self {
            link,
            gcra: Script::new(GCRA),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn acquire(&self, key: &str, quota: Quota, cost: u32) -> Result<Admission> {
        if quota.limit == 0 {
            return Ok(Admission::Limited {
                retry_after: quota.period,
            });
        }
        let key = format!("{}limit:{key}", self.link.settings.key_prefix);
        let interval = micros(quota.interval()).max(1);
        let period = micros(quota.period);
        let (admitted, wait_us): (i64, i64) = self
            .link
            .run(|mut redis| async move {
                self.gcra
                    .key(key)
                    .arg(interval)
                    .arg(period)
                    .arg(cost)
                    .invoke_async(&mut redis)
                    .await
            })
            .await?;
        Ok(if admitted == 1 {
            Admission::Admitted
        } else {
            Admission::Limited {
                retry_after: Duration::from_micros(u64::try_from(wait_us).unwrap_or(0).max(1)),
            }
        })
    }
}

/// [`SharedCooldowns`] in one Redis sorted set (deployment → end of its cooldown).
#[derive(Debug)]
pub struct RedisCooldowns {
    link: Link,
    publish: Script,
    active: Script,
}

impl RedisCooldowns {
    /// A cooldown store on `redis_url`. Does not wait for Redis; fails only on a malformed
    /// URL. (Async because the connection's background task needs the Tokio runtime.)
    pub async fn connect(redis_url: &str, settings: RedisLimitSettings) -> Result<Self> {
        Ok(Self::with_link(Link::connect(
            redis_url,
            settings,
            "shared cooldowns",
        )?))
    }

    /// A cooldown store on an existing connection.
    pub fn new(redis: ConnectionManager, settings: RedisLimitSettings) -> Self {
        Self::with_link(Link::new(redis, settings, "shared cooldowns"))
    }

    fn with_link(link: Link) -> Self {
        Self {
            link,
            publish: Script::new(PUBLISH),
            active: Script::new(ACTIVE),
        }
    }

    fn set_key(&self) -> String {
        format!("{}cooldowns", self.link.settings.key_prefix)
    }
}

#[async_trait]
impl SharedCooldowns for RedisCooldowns {
    async fn publish(&self, deployment: &str, cooldown: Duration) -> Result<()> {
        let key = self.set_key();
        let ms = u64::try_from(cooldown.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.link
            .run(|mut redis| async move {
                self.publish
                    .key(key)
                    .arg(deployment)
                    .arg(ms)
                    .invoke_async::<i64>(&mut redis)
                    .await
            })
            .await?;
        Ok(())
    }

    async fn active(&self) -> Result<Vec<(String, Duration)>> {
        let key = self.set_key();
        let flat: Vec<String> = self
            .link
            .run(|mut redis| async move { self.active.key(key).invoke_async(&mut redis).await })
            .await?;
        Ok(flat
            .chunks_exact(2)
            .filter_map(|pair| {
                let left: u64 = pair[1].parse().ok()?;
                (left > 0).then(|| (pair[0].clone(), Duration::from_millis(left)))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// The test Redis, or `None` (with a message) when it is not running; under `CI=true` a
    /// missing Redis fails the test instead.
    async fn redis_url() -> Option<String> {
        let url = std::env::var("LLMGATE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let reachable = async {
            let client = redis::Client::open(url.as_str()).ok()?;
            let mut connection = client.get_multiplexed_async_connection().await.ok()?;
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
                .ok()
        };
        match tokio::time::timeout(Duration::from_secs(2), reachable).await {
            Ok(Some(_)) => Some(url),
            _ if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("Redis at {url} is not reachable and CI=true")
            }
            _ => {
                eprintln!("skipping: Redis at {url} is not reachable");
                None
            }
        }
    }

    /// Keys no other test (or run) shares.
    fn unique_prefix(test: &str) -> RedisLimitSettings {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        RedisLimitSettings::default().with_key_prefix(format!(
            "llmgate-test:{test}:{}:{nanos}:",
            std::process::id()
        ))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_limiters_sharing_redis_admit_exactly_the_limit_under_concurrency() {
        let Some(url) = redis_url().await else {
            return;
        };
        let settings = unique_prefix("shared-limit");
        let one = Arc::new(
            RedisRateLimiter::connect(&url, settings.clone())
                .await
                .unwrap(),
        );
        let two = Arc::new(RedisRateLimiter::connect(&url, settings).await.unwrap());
        let quota = Quota::per_minute(25);
        let admitted = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..120 {
            let limiter = if i % 2 == 0 { one.clone() } else { two.clone() };
            let admitted = admitted.clone();
            tasks.push(tokio::spawn(async move {
                match limiter.acquire("user:ann", quota, 1).await.unwrap() {
                    Admission::Admitted => {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                    Admission::Limited { retry_after } => {
                        assert!(retry_after > Duration::ZERO);
                        assert!(retry_after <= Duration::from_secs(60));
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 25);
        // Another key has its own quota.
        assert_eq!(
            one.acquire("user:bob", quota, 1).await.unwrap(),
            Admission::Admitted
        );
    }

    #[tokio::test]
    async fn a_refusal_says_when_to_come_back_and_takes_nothing() {
        let Some(url) = redis_url().await else {
            return;
        };
        let limiter = RedisRateLimiter::connect(&url, unique_prefix("retry-after"))
            .await
            .unwrap();
        let quota = Quota::per_minute(2);
        for _ in 0..2 {
            assert_eq!(
                limiter.acquire("k", quota, 1).await.unwrap(),
                Admission::Admitted
            );
        }
        for _ in 0..3 {
            let Admission::Limited { retry_after } = limiter.acquire("k", quota, 1).await.unwrap()
            else {
                panic!("admitted over the quota");
            };
            // One unit refills every 30 s; a little of that has passed since the burst.
            assert!(
                retry_after > Duration::from_secs(20) && retry_after <= Duration::from_secs(30)
            );
        }
        assert!(matches!(
            limiter.acquire("k", Quota::per_minute(0), 1).await.unwrap(),
            Admission::Limited { .. }
        ));
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_an_unavailable_error_and_is_left_alone_for_a_while() {
        // Nothing listens on port 1.
        let settings = RedisLimitSettings {
            retry_after: Duration::from_secs(30),
            ..RedisLimitSettings::default()
        };
        let limiter = RedisRateLimiter::connect("redis://127.0.0.1:1", settings.clone())
            .await
            .unwrap();
        let error = limiter
            .acquire("k", Quota::per_minute(1), 1)
            .await
            .unwrap_err();
        assert_eq!(error.status(), 503);
        // Within `retry_after` the limiter does not try Redis again.
        assert!(limiter.acquire("k", Quota::per_minute(1), 1).await.is_err());
        assert!(limiter.link.availability.is_down());
        assert!(limiter.link.availability.is_resting());
        let cooldowns = RedisCooldowns::connect("redis://127.0.0.1:1", settings)
            .await
            .unwrap();
        assert!(
            cooldowns
                .publish("m|p|u", Duration::from_secs(1))
                .await
                .is_err()
        );
        assert!(cooldowns.active().await.is_err());
        assert!(
            RedisRateLimiter::connect("not a url", RedisLimitSettings::default())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn cooldowns_published_by_one_replica_are_seen_by_another() {
        let Some(url) = redis_url().await else {
            return;
        };
        let settings = unique_prefix("cooldowns");
        let one = RedisCooldowns::connect(&url, settings.clone())
            .await
            .unwrap();
        let two = RedisCooldowns::connect(&url, settings).await.unwrap();
        assert!(two.active().await.unwrap().is_empty());
        one.publish("m|a|m", Duration::from_secs(30)).await.unwrap();
        one.publish("m|b|m", Duration::from_millis(50))
            .await
            .unwrap();
        // A shorter report does not cut a running cooldown short.
        two.publish("m|a|m", Duration::from_secs(1)).await.unwrap();
        let active = two.active().await.unwrap();
        let (key, left) = active.iter().find(|(k, _)| k == "m|a|m").unwrap().clone();
        assert_eq!(key, "m|a|m");
        assert!(left > Duration::from_secs(28) && left <= Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(80)).await;
        let active = one.active().await.unwrap();
        assert_eq!(active.len(), 1, "the 50 ms cooldown has ended: {active:?}");
    }

    #[derive(Debug)]
    struct Echo;

    #[async_trait]
    impl llmgate_core::Provider for Echo {
        fn name(&self) -> &str {
            "echo"
        }

        fn requires_key(&self) -> bool {
            false
        }

        async fn chat(
            &self,
            call: llmgate_core::provider::ProviderCall<'_>,
        ) -> Result<llmgate_core::chat::ChatResponse> {
            use llmgate_core::chat::{ChatResponse, Choice, FinishReason, Message, Usage};
            Ok(ChatResponse {
                id: "1".into(),
                object: "chat.completion".into(),
                created: 0,
                model: call.request.model.clone(),
                choices: vec![Choice {
                    index: 0,
                    message: Message::assistant("hi"),
                    finish_reason: Some(FinishReason::Stop),
                    logprobs: None,
                }],
                usage: Some(Usage::new(1, 1)),
                system_fingerprint: None,
                extra: Default::default(),
                wire: Default::default(),
            })
        }

        async fn chat_stream(
            &self,
            _call: llmgate_core::provider::ProviderCall<'_>,
        ) -> Result<llmgate_core::provider::ChunkStream> {
            Err(Error::invalid_request("no streams"))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_gateways_sharing_a_redis_limiter_enforce_one_user_rpm_together() {
        use llmgate_core::{
            Caller, ErrorKind, Gateway,
            caller::Tier,
            catalog::Deployment,
            chat::{ChatRequest, Message},
            pricing::ModelPrice,
        };
        let Some(url) = redis_url().await else {
            return;
        };
        let settings = unique_prefix("gateways");
        let gateway = |limiter: RedisRateLimiter| {
            Gateway::builder()
                .provider(Arc::new(Echo))
                .model(Deployment::new("m", "echo", "m").with_price(ModelPrice::default()))
                .rate_limiter(Arc::new(limiter))
                .build()
        };
        let replicas = [
            gateway(
                RedisRateLimiter::connect(&url, settings.clone())
                    .await
                    .unwrap(),
            ),
            gateway(RedisRateLimiter::connect(&url, settings).await.unwrap()),
        ];
        let mut tier = Tier::new("free");
        tier.rpm = Some(5);
        let caller = Caller::user("ann", Arc::new(tier));
        let mut tasks = Vec::new();
        for i in 0..20 {
            let gateway = replicas[i % 2].clone();
            let caller = caller.clone();
            tasks.push(tokio::spawn(async move {
                let request = ChatRequest::new("m", vec![Message::user("hi")]);
                gateway.chat(&caller, request).await
            }));
        }
        let (mut served, mut limited) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => served += 1,
                Err(error) => {
                    assert_eq!(error.kind(), ErrorKind::RateLimited);
                    assert!(error.retry_after().is_some());
                    limited += 1;
                }
            }
        }
        assert_eq!((served, limited), (5, 15));
    }
}
