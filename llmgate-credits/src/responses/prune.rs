//! The task that deletes stored responses past their retention.

use std::sync::Arc;
use std::time::Duration;

use llmgate_core::memory::unix_now;

use super::SqlResponseStore;

/// Every `every` (and once at start), delete the responses older than `retention`. Errors are
/// logged and the next round tries again; replicas may all run it (a row is deleted once).
pub fn spawn_pruner(
    store: Arc<SqlResponseStore>,
    retention: Duration,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let retention = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let before = unix_now().saturating_sub(retention);
            match store.prune(before).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "deleted expired stored responses"),
                Err(error) => tracing::warn!(%error, "pruning stored responses failed"),
            }
        }
    })
}
