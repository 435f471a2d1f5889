//! What the Redis-backed parts share: a connection that does not wait for Redis at start, and
//! the memory of whether Redis is down, so that calls fail fast for a while after a failure.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use llmgate_core::{Error, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A connection to `redis_url` that connects on first use (one retry, each attempt bounded
/// by `timeout`). Fails only on a malformed URL.
pub(crate) fn lazy_connection(
    redis_url: &str,
    timeout: Duration,
    retry_after: Duration,
) -> Result<ConnectionManager> {
    let invalid = |error: redis::RedisError| {
        tracing::debug!(%error, "invalid Redis URL");
        Error::invalid_request("storage.redis_url is not a valid Redis URL")
    };
    // Nagle's algorithm off, as for every other connection the gateway makes: the multiplexed
    // connection writes one request's commands while another's are unanswered, and a small
    // write held back for an ACK the server delays costs up to 40 ms.
    let info = redis::IntoConnectionInfo::into_connection_info(redis_url)
        .map_err(invalid)?
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
    let client = redis::Client::open(info).map_err(invalid)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(retry_after);
    client.get_connection_manager_lazy(config).map_err(|error| {
        tracing::debug!(%error, "Redis client setup failed");
        Error::invalid_request("storage.redis_url is not usable")
    })
}

/// Whether Redis is down, and until when it is left alone, as milliseconds since `origin`.
#[derive(Debug)]
pub(crate) struct Availability {
    origin: Instant,
    down: AtomicBool,
    skip_until_ms: AtomicU64,
}

impl Availability {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            down: AtomicBool::new(false),
            skip_until_ms: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Whether a failure happened less than its `retry_after` ago.
    pub(crate) fn is_resting(&self) -> bool {
        self.now_ms() < self.skip_until_ms.load(Ordering::Relaxed)
    }

    /// Leave Redis alone for `retry_after`. `true` when this failure is the first since it
    /// was last up (the one to log).
    pub(crate) fn mark_down(&self, retry_after: Duration) -> bool {
        let retry = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
        self.skip_until_ms
            .store(self.now_ms().saturating_add(retry), Ordering::Relaxed);
        !self.down.swap(true, Ordering::Relaxed)
    }

    /// `true` when Redis was down until now (the recovery to log).
    pub(crate) fn mark_up(&self) -> bool {
        self.down.swap(false, Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}
