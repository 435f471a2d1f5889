//! Rate limits: the [`RateLimiter`] trait and its in-process implementation.
//!
//! Both this implementation and the Redis one (in `llmgate-credits`) use GCRA, the generic cell
//! rate algorithm: one "theoretical arrival time" per key. A quota of `limit` per `period`
//! admits a burst of up to `limit` at once and then refills one unit every `period / limit`,
//! so in the long run it averages `limit` per `period` and never admits more than `limit`
//! back to back.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::{Clock, nanos};
use crate::error::Result;

/// How much a key may take: `limit` units per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    /// How many units (requests or tokens) fit in one period.
    pub limit: u32,
    /// The window the limit applies to.
    pub period: Duration,
}

impl Quota {
    /// `limit` units per `period`.
    pub fn new(limit: u32, period: Duration) -> Self {
        Self { limit, period }
    }

    /// `limit` per minute: the unit of the config's `rpm` and `tpm`.
    pub fn per_minute(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(60))
    }

    /// The steady-state gap between two units.
    pub fn interval(&self) -> Duration {
        if self.limit == 0 {
            return self.period;
        }
        self.period / self.limit
    }
}

/// The answer of a rate limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within the quota; the units were counted.
    Admitted,
    /// Over the quota; the same request would be admitted after `retry_after`.
    Limited {
        /// How long to wait before the same request would be admitted.
        retry_after: Duration,
    },
}

/// Counts requests (or tokens) per key against a quota.
///
/// An `Err` means the limiter could not decide (its backend is down). The gateway then admits
/// the request and logs a warning: an outage of the limiter's store must not take the gateway
/// down with it.
#[async_trait]
pub trait RateLimiter: Send + Sync + std::fmt::Debug + 'static {
    /// Take `cost` units of `key`'s quota, or say when to come back. A refused request takes
    /// nothing.
    async fn acquire(&self, key: &str, quota: Quota, cost: u32) -> Result<Admission>;
}

/// Compile-time check that the trait stays object-safe.
const _: Option<Arc<dyn RateLimiter>> = None;

/// One key's GCRA state: its theoretical arrival time on a [`Clock`], in nanoseconds.
#[derive(Debug, Default)]
pub(crate) struct Gcra {
    tat: AtomicU64,
}

impl Gcra {
    /// Take `cost` units at `now`, or return the nanoseconds until that would succeed.
    pub fn try_take(&self, now: u64, quota: Quota, cost: u64) -> Result<(), u64> {
        let period = nanos(quota.period);
        if quota.limit == 0 {
            return Err(period.max(1));
        }
        let increment = nanos(quota.interval()).saturating_mul(cost);
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let next = tat.max(now).saturating_add(increment);
            let ahead = next - now;
            if ahead > period {
                return Err(ahead - period);
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(current) => tat = current,
            }
        }
    }

    /// Account for `cost` units already spent (tokens counted after the answer), even past the
    /// quota: the debt delays later admissions.
    pub fn spend(&self, now: u64, quota: Quota, cost: u64) {
        if quota.limit == 0 || cost == 0 {
            return;
        }
        let increment = nanos(quota.interval()).saturating_mul(cost);
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(tat.max(now).saturating_add(increment))
            });
    }

    /// Nanoseconds until taking `cost` units would succeed; 0 when it would now. Takes nothing.
    pub fn wait_for(&self, now: u64, quota: Quota, cost: u64) -> u64 {
        let period = nanos(quota.period);
        if quota.limit == 0 {
            return period.max(1);
        }
        let increment = nanos(quota.interval()).saturating_mul(cost);
        let next = self
            .tat
            .load(Ordering::Acquire)
            .max(now)
            .saturating_add(increment);
        (next - now).saturating_sub(period)
    }

    /// Whether this state is as good as new (its debt is paid off).
    fn is_idle(&self, now: u64) -> bool {
        self.tat.load(Ordering::Acquire) <= now
    }
}

const SHARDS: usize = 16;
/// One shard of keys and their GCRA state.
type Shard = RwLock<HashMap<Box<str>, Gcra>>;
/// A shard forgets idle keys once it holds this many (an idle key behaves like a new one).
const PRUNE_AT: usize = 4096;

/// A [`RateLimiter`] in this process's memory: exact for one replica, not shared between
/// replicas. Lock-light: keys are spread over shards, and a known key takes only a shard's read
/// lock and one atomic compare-and-swap.
#[derive(Debug)]
pub struct InProcessRateLimiter {
    shards: Box<[Shard]>,
    hasher: std::collections::hash_map::RandomState,
    clock: Clock,
}

impl Default for InProcessRateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessRateLimiter {
    /// An empty limiter on the system clock.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: Default::default(),
            clock: Clock::new(),
        }
    }

    /// The synchronous core of [`RateLimiter::acquire`].
    pub fn acquire_now(&self, key: &str, quota: Quota, cost: u32) -> Admission {
        let now = self.clock.now();
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % self.shards.len()];
        let cost = u64::from(cost);
        let taken = {
            let keys = crate::sync::read(shard);
            keys.get(key).map(|gcra| gcra.try_take(now, quota, cost))
        };
        let taken = match taken {
            Some(taken) => taken,
            None => {
                let mut keys = crate::sync::write(shard);
                if keys.len() >= PRUNE_AT {
                    keys.retain(|_, gcra| !gcra.is_idle(now));
                }
                keys.entry(Box::from(key))
                    .or_default()
                    .try_take(now, quota, cost)
            }
        };
        match taken {
            Ok(()) => Admission::Admitted,
            Err(wait) => Admission::Limited {
                retry_after: Duration::from_nanos(wait),
            },
        }
    }
}

#[async_trait]
impl RateLimiter for InProcessRateLimiter {
    async fn acquire(&self, key: &str, quota: Quota, cost: u32) -> Result<Admission> {
        Ok(self.acquire_now(key, quota, cost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn gcra_admits_the_burst_then_one_per_interval() {
        let gcra = Gcra::default();
        let quota = Quota::per_minute(3);
        let now = 1;
        for _ in 0..3 {
            assert_eq!(gcra.try_take(now, quota, 1), Ok(()));
        }
        let wait = gcra.try_take(now, quota, 1).unwrap_err();
        assert_eq!(wait, 20 * SECOND);
        assert!(gcra.try_take(now + wait - 1, quota, 1).is_err());
        assert_eq!(gcra.try_take(now + wait, quota, 1), Ok(()));
    }

    #[test]
    fn gcra_refusal_takes_nothing_and_spend_goes_into_debt() {
        let gcra = Gcra::default();
        let quota = Quota::per_minute(60);
        assert!(gcra.try_take(1, quota, 61).is_err());
        assert_eq!(gcra.wait_for(1, quota, 60), 0);
        gcra.spend(1, quota, 120);
        assert_eq!(gcra.wait_for(1, quota, 1), 61 * SECOND);
        // 120 units at one a second: one more fits once the debt is back within the minute.
        assert_eq!(gcra.wait_for(1 + 61 * SECOND, quota, 1), 0);
    }

    #[test]
    fn zero_quota_refuses_everything() {
        let gcra = Gcra::default();
        assert!(gcra.try_take(1, Quota::per_minute(0), 1).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn in_process_limiter_counts_keys_apart_and_refills() {
        let limiter = InProcessRateLimiter::new();
        let quota = Quota::per_minute(2);
        for _ in 0..2 {
            assert_eq!(limiter.acquire_now("a", quota, 1), Admission::Admitted);
        }
        let Admission::Limited { retry_after } = limiter.acquire_now("a", quota, 1) else {
            panic!("third request in a minute was admitted");
        };
        assert_eq!(retry_after, Duration::from_secs(30));
        assert_eq!(limiter.acquire_now("b", quota, 1), Admission::Admitted);
        tokio::time::advance(retry_after).await;
        assert_eq!(limiter.acquire_now("a", quota, 1), Admission::Admitted);
    }
}
