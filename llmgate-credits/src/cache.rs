//! A Redis read-through cache for balances, shared by every replica.
//!
//! Only [`CreditStore::balance`] reads the cache; holds and every other step go to the ledger,
//! so a stale cache can never let a request spend credits it does not have. Usage records,
//! statements and usage reads pass through unchanged (usage moves no balance).
//!
//! Each cached balance is tagged with two counters read *before* the ledger was asked: the
//! user's generation (bumped after each write for that user) and a global epoch (bumped after
//! a reclaim, which may touch anyone). An entry is served only while both tags are current,
//! so a reader that raced a writer can store an old balance but nobody will ever read it.
//! When Redis is unreachable the store answers from the ledger and logs once. An invalidation
//! that could not be delivered is made up for by bumping the epoch as soon as Redis answers
//! again, before this store reads the cache.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use llmgate_core::{
    Error, Result,
    credits::{
        Credit, CreditOutcome, CreditStore, Hold, HoldRequest, LeaseCharge, LeaseReturn,
        LedgerWrite, UsageRecord, Written,
    },
};
use redis::RedisResult;
use redis::aio::ConnectionManager;

use crate::redis_link::{Availability, lazy_connection};

/// How long a generation or epoch counter outlives its last bump: far longer than any entry,
/// so a counter never expires while an entry tagged with it could still be served.
const COUNTER_TTL_SECS: u64 = 86_400;

/// How the cache behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// Prepended to every key this cache writes.
    pub key_prefix: String,
    /// How long a cached balance lives.
    pub ttl: Duration,
    /// The most a Redis command (or connecting) may take before the ledger answers instead.
    pub timeout: Duration,
    /// After a failure, how long to leave Redis alone before trying it again.
    pub retry_after: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            key_prefix: "llmgate:balance:".to_owned(),
            ttl: Duration::from_secs(60),
            timeout: Duration::from_millis(250),
            retry_after: Duration::from_secs(1),
        }
    }
}

impl CacheSettings {
    /// Use this key prefix (e.g. one per deployment sharing a Redis).
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Keep cached balances this long (default 60 s).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }
}

/// A [`CreditStore`] whose balance reads go through Redis.
pub struct CachedCreditStore {
    inner: Arc<dyn CreditStore>,
    redis: ConnectionManager,
    settings: CacheSettings,
    health: Health,
}

impl std::fmt::Debug for CachedCreditStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedCreditStore")
            .field("inner", &self.inner)
            .field("settings", &self.settings)
            .field("redis_down", &self.health.redis.is_down())
            .finish_non_exhaustive()
    }
}

/// What this process knows about Redis.
#[derive(Debug)]
struct Health {
    redis: Availability,
    /// An invalidation was lost: every entry may be stale until the epoch is bumped.
    lost_invalidation: AtomicBool,
}

impl CachedCreditStore {
    /// Wrap `inner`. Does not wait for Redis: when it is down the store works uncached and
    /// connects once Redis is back. Fails only on a malformed URL.
    pub async fn connect(
        inner: Arc<dyn CreditStore>,
        redis_url: &str,
        settings: CacheSettings,
    ) -> Result<Self> {
        let redis = lazy_connection(redis_url, settings.timeout, settings.retry_after)?;
        let store = Self {
            inner,
            redis,
            settings,
            health: Health {
                redis: Availability::new(),
                // A previous run may have died between a commit and its invalidation.
                lost_invalidation: AtomicBool::new(true),
            },
        };
        // Say early (and once) when Redis is not there; serving goes on regardless.
        let _ = store.ping().await;
        Ok(store)
    }

    /// The store behind the cache.
    pub fn inner(&self) -> &Arc<dyn CreditStore> {
        &self.inner
    }

    /// Ask Redis now (for `/health/ready`): `unavailable` when it does not answer in time.
    pub async fn ping(&self) -> Result<()> {
        let mut redis = self.redis.clone();
        let answer = tokio::time::timeout(self.settings.timeout, async move {
            redis::cmd("PING").query_async::<String>(&mut redis).await
        })
        .await;
        match answer {
            Ok(Ok(_)) => {
                self.mark_up();
                Ok(())
            }
            Ok(Err(error)) => {
                self.mark_down("ping", Some(&error));
                Err(Error::unavailable("redis unavailable"))
            }
            Err(_) => {
                self.mark_down("ping", None);
                Err(Error::unavailable("redis unavailable"))
            }
        }
    }

    /// Whether Redis answers right now.
    pub async fn redis_healthy(&self) -> bool {
        self.ping().await.is_ok()
    }

    fn value_key(&self, user_id: &str) -> String {
        format!("{}b:{user_id}", self.settings.key_prefix)
    }

    fn generation_key(&self, user_id: &str) -> String {
        format!("{}g:{user_id}", self.settings.key_prefix)
    }

    fn epoch_key(&self) -> String {
        format!("{}epoch", self.settings.key_prefix)
    }

    /// Run one Redis command with the timeout; `None` (and Redis marked down) on any failure.
    async fn run<T>(
        &self,
        what: &'static str,
        command: impl Future<Output = RedisResult<T>>,
    ) -> Option<T> {
        if self.health.redis.is_resting() {
            return None;
        }
        match tokio::time::timeout(self.settings.timeout, command).await {
            Ok(Ok(value)) => {
                self.mark_up();
                Some(value)
            }
            Ok(Err(error)) => {
                self.mark_down(what, Some(&error));
                None
            }
            Err(_) => {
                self.mark_down(what, None);
                None
            }
        }
    }

    fn mark_down(&self, what: &'static str, error: Option<&redis::RedisError>) {
        let first_failure = self.health.redis.mark_down(self.settings.retry_after);
        if let Some(error) = error {
            tracing::debug!(what, %error, "Redis command failed");
        }
        if first_failure {
            tracing::warn!(
                what,
                "Redis is unavailable; balances are read from the ledger until it is back"
            );
        }
    }

    fn mark_up(&self) {
        if self.health.redis.mark_up() {
            tracing::info!("Redis is available again; balance cache resumed");
        }
    }

    /// Whether the cache may be read: only once every invalidation this store failed to
    /// deliver has been made up for with an epoch bump.
    async fn cache_is_trustworthy(&self) -> bool {
        // Clear the flag before bumping: an invalidation lost while the bump is in flight
        // sets it again and is covered by the next bump.
        if !self.health.lost_invalidation.swap(false, Ordering::SeqCst) {
            return true;
        }
        self.invalidate_all().await
    }

    /// After a write for `user_id`: bump the user's generation and drop the entry.
    async fn invalidate(&self, user_id: &str) {
        let generation = self.generation_key(user_id);
        let value = self.value_key(user_id);
        self.bump("invalidate", generation, Some(value)).await;
    }

    /// After a write that may touch any user (a reclaim), or to make up for a lost
    /// invalidation: bump the epoch. Returns whether that reached Redis.
    async fn invalidate_all(&self) -> bool {
        self.bump("invalidate all", self.epoch_key(), None).await
    }

    /// Bump a tag counter (keeping it alive [`COUNTER_TTL_SECS`]) and drop `entry` with it, as
    /// one atomic step. Returns whether that reached Redis; when not, the invalidation is
    /// lost and made up for before the cache is read again.
    async fn bump(&self, what: &'static str, counter: String, entry: Option<String>) -> bool {
        let mut redis = self.redis.clone();
        let done = self
            .run(what, async move {
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .cmd("INCR")
                    .arg(&counter)
                    .ignore()
                    .cmd("EXPIRE")
                    .arg(&counter)
                    .arg(COUNTER_TTL_SECS)
                    .ignore();
                if let Some(entry) = &entry {
                    pipe.cmd("DEL").arg(entry).ignore();
                }
                pipe.query_async::<()>(&mut redis).await
            })
            .await;
        if done.is_none() {
            self.health.lost_invalidation.store(true, Ordering::SeqCst);
        }
        done.is_some()
    }

    /// The cached balance if current, plus the tag to store a fresh one under.
    async fn lookup(&self, user_id: &str) -> Option<(Option<i64>, String)> {
        let keys = [
            self.value_key(user_id),
            self.generation_key(user_id),
            self.epoch_key(),
        ];
        let mut redis = self.redis.clone();
        let found = self
            .run("read balance", async move {
                redis::cmd("MGET")
                    .arg(&keys[..])
                    .query_async::<Vec<Option<String>>>(&mut redis)
                    .await
            })
            .await?;
        let [value, generation, epoch] = <[Option<String>; 3]>::try_from(found).ok()?;
        let tag = format!(
            "{}:{}",
            epoch.as_deref().unwrap_or("0"),
            generation.as_deref().unwrap_or("0")
        );
        let cached = value.and_then(|value| {
            let (value_tag, balance) = value.rsplit_once(':')?;
            if value_tag != tag {
                return None;
            }
            balance.parse().ok()
        });
        Some((cached, tag))
    }

    async fn store_balance(&self, user_id: &str, tag: &str, balance: i64) {
        let key = self.value_key(user_id);
        let value = format!("{tag}:{balance}");
        let ttl = self.settings.ttl.as_secs().max(1);
        let mut redis = self.redis.clone();
        self.run("cache balance", async move {
            redis::cmd("SET")
                .arg(&key)
                .arg(&value)
                .arg("EX")
                .arg(ttl)
                .query_async::<()>(&mut redis)
                .await
        })
        .await;
    }
}

#[async_trait]
impl llmgate_core::credits::forwarding::ForwardingCreditStore for CachedCreditStore {
    fn inner(&self) -> &dyn CreditStore {
        &*self.inner
    }

    async fn hold(&self, request: HoldRequest) -> Result<Hold> {
        let user_id = request.user_id.clone();
        let result = self.inner.hold(request).await;
        self.invalidate(&user_id).await;
        result
    }

    async fn settle(&self, hold: &Hold, usage: &UsageRecord) -> Result<i64> {
        let result = self.inner.settle(hold, usage).await;
        self.invalidate(&hold.user_id).await;
        result
    }

    async fn release(&self, hold: &Hold) -> Result<()> {
        let result = self.inner.release(hold).await;
        self.invalidate(&hold.user_id).await;
        result
    }

    async fn charge_lease(&self, charge: &LeaseCharge) -> Result<Written> {
        let result = self.inner.charge_lease(charge).await;
        self.invalidate(&charge.usage.user_id).await;
        result
    }

    async fn return_lease(&self, give: &LeaseReturn) -> Result<Written> {
        let result = self.inner.return_lease(give).await;
        self.invalidate(&give.user_id).await;
        result
    }

    async fn write_batch(&self, writes: &[LedgerWrite]) -> Vec<Result<Written>> {
        let results = self.inner.write_batch(writes).await;
        // Every user with a settle or release in the batch, once (written or not, as `settle`
        // does). Holds of the queue are left out: the request waits for its hold, and a Redis
        // round trip there costs more than the whole rest of the gateway. A cached balance so
        // shows the holds of requests in flight once they are settled (milliseconds later),
        // and what a hold decides is read from the database, never from the cache.
        let mut settled: Vec<&str> = writes
            .iter()
            .filter_map(|write| match write {
                LedgerWrite::Settle { .. }
                | LedgerWrite::Release(_)
                | LedgerWrite::LeaseCharge(_)
                | LedgerWrite::LeaseReturn(_) => Some(write.user_id()),
                LedgerWrite::Hold(_) | LedgerWrite::Usage(_) => None,
            })
            .collect();
        settled.sort_unstable();
        settled.dedup();
        for user_id in settled {
            self.invalidate(user_id).await;
        }
        results
    }

    async fn credit(&self, credit: Credit) -> Result<CreditOutcome> {
        let user_id = credit.user_id.clone();
        let result = self.inner.credit(credit).await;
        self.invalidate(&user_id).await;
        result
    }

    async fn balance(&self, user_id: &str) -> Result<i64> {
        if !self.cache_is_trustworthy().await {
            return self.inner.balance(user_id).await;
        }
        let Some((cached, tag)) = self.lookup(user_id).await else {
            return self.inner.balance(user_id).await;
        };
        if let Some(balance) = cached {
            return Ok(balance);
        }
        let balance = self.inner.balance(user_id).await?;
        self.store_balance(user_id, &tag, balance).await;
        Ok(balance)
    }

    async fn reclaim_expired(&self) -> Result<u64> {
        let result = self.inner.reclaim_expired().await;
        if !matches!(result, Ok(0)) {
            self.invalidate_all().await;
        }
        result
    }
}
