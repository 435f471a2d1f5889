//! The request log of a running server: its store, its writer and the retention task.

use std::sync::Arc;
use std::time::Duration;

use llmgate_core::memory::unix_now;
use llmgate_core::request_log::{RequestLogStore, RequestLogWriter};
use tokio::task::JoinHandle;

use crate::config::LoggingConfig;

/// Rows queued at most; beyond that rows are dropped and counted, never waited for. A few
/// seconds of a busy gateway.
const QUEUE: usize = 16_384;
/// How often rows past `logging.request_log_days` are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const DAY_MS: i64 = 86_400_000;

/// The request log of a running server.
#[derive(Debug)]
pub struct RequestLog {
    pub store: Arc<dyn RequestLogStore>,
    /// `None` with `logging.request_log: false`.
    pub(super) writer: Option<RequestLogWriter>,
    pub(super) store_bodies: bool,
    pruner: Option<JoinHandle<()>>,
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        if let Some(pruner) = &self.pruner {
            pruner.abort();
        }
    }
}

impl RequestLog {
    /// Start the writer and the retention task (on the current runtime) over `store`.
    pub fn start(config: &LoggingConfig, store: Arc<dyn RequestLogStore>) -> Self {
        let writer = config
            .request_log
            .then(|| RequestLogWriter::spawn(store.clone(), QUEUE))
            .flatten();
        let pruner = (config.request_log_days > 0)
            .then(|| spawn_pruner(store.clone(), config.request_log_days));
        Self {
            store,
            writer,
            store_bodies: config.store_bodies,
            pruner,
        }
    }

    /// Whether requests are logged.
    pub fn is_on(&self) -> bool {
        self.writer.is_some()
    }

    /// Completes once the rows queued before the call are written (capped at two seconds):
    /// a listing sees the requests this replica answered before it, and a shutdown loses none.
    pub async fn flush(&self) {
        if let Some(writer) = &self.writer {
            writer.flush().await;
        }
    }

    /// Delete the rows older than `days` days now; returns how many.
    pub async fn prune(&self, days: u32) -> llmgate_core::Result<u64> {
        self.store.prune(cutoff_ms(days)).await
    }
}

/// Unix milliseconds `days` days ago.
fn cutoff_ms(days: u32) -> i64 {
    unix_now().saturating_mul(1000) - i64::from(days) * DAY_MS
}

/// Delete old rows at start and then every hour.
fn spawn_pruner(store: Arc<dyn RequestLogStore>, days: u32) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PRUNE_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match store.prune(cutoff_ms(days)).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, days, "pruned the request log"),
                Err(error) => tracing::warn!(%error, "pruning the request log failed"),
            }
        }
    })
}
