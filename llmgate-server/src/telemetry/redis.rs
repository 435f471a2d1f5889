//! Timing the calls replicas make to Redis for shared rate limits and cooldowns, at the
//! trait boundary ([`RateLimiter`], [`SharedCooldowns`]) like the ledger's.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use llmgate_core::{
    Result,
    limits::{Admission, Quota, RateLimiter},
    routing::SharedCooldowns,
};
use metrics::{Counter, Histogram};

use super::store::{BACKEND_DURATION, BACKEND_ERRORS};

#[derive(Debug)]
struct Meters {
    seconds: Histogram,
    errors: Counter,
}

impl Meters {
    fn new(operation: &'static str) -> Self {
        Self {
            seconds: metrics::histogram!(BACKEND_DURATION, "backend" => "redis", "operation" => operation),
            errors: metrics::counter!(BACKEND_ERRORS, "backend" => "redis", "operation" => operation),
        }
    }

    async fn timed<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        let started = Instant::now();
        let result = call.await;
        self.seconds.record(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.errors.increment(1);
        }
        result
    }
}

/// A [`RateLimiter`] whose every decision is timed as `operation="rate_limit"`.
#[derive(Debug)]
pub struct MeteredRateLimiter {
    inner: Arc<dyn RateLimiter>,
    meters: Meters,
}

impl MeteredRateLimiter {
    pub fn new(inner: Arc<dyn RateLimiter>) -> Self {
        Self {
            inner,
            meters: Meters::new("rate_limit"),
        }
    }
}

#[async_trait]
impl RateLimiter for MeteredRateLimiter {
    async fn acquire(&self, key: &str, quota: Quota, cost: u32) -> Result<Admission> {
        self.meters
            .timed(self.inner.acquire(key, quota, cost))
            .await
    }
}

/// [`SharedCooldowns`] timed as `operation="cooldown_publish"` and `"cooldown_read"`.
#[derive(Debug)]
pub struct MeteredCooldowns {
    inner: Arc<dyn SharedCooldowns>,
    publish: Meters,
    read: Meters,
}

impl MeteredCooldowns {
    pub fn new(inner: Arc<dyn SharedCooldowns>) -> Self {
        Self {
            inner,
            publish: Meters::new("cooldown_publish"),
            read: Meters::new("cooldown_read"),
        }
    }
}

#[async_trait]
impl SharedCooldowns for MeteredCooldowns {
    async fn publish(&self, deployment: &str, cooldown: Duration) -> Result<()> {
        self.publish
            .timed(self.inner.publish(deployment, cooldown))
            .await
    }

    async fn active(&self) -> Result<Vec<(String, Duration)>> {
        self.read.timed(self.inner.active()).await
    }
}
