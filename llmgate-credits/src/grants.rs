//! Monthly grants and the reclaim of expired holds: the two chores every replica may run.

use std::sync::Arc;
use std::time::Duration;

use llmgate_core::memory::day_of;
use llmgate_core::{
    Result,
    credits::{Credit, CreditKind, CreditOutcome, CreditStore},
};

/// The calendar month (UTC) of a Unix time, as `YYYY-MM`.
pub fn month_of(unix_secs: i64) -> String {
    let mut day = day_of(unix_secs);
    day.truncate(7);
    day
}

/// The idempotency key of a user's grant for the month of `unix_now`.
pub fn monthly_grant_key(user_id: &str, unix_now: i64) -> String {
    format!("grant:{user_id}:{}", month_of(unix_now))
}

/// Grant a tier's monthly credits, once per user and calendar month (UTC) however many times
/// and from however many replicas it is called. A zero amount (a tier without a grant)
/// changes nothing.
pub async fn grant_monthly(
    store: &dyn CreditStore,
    user_id: &str,
    amount_micros: i64,
    unix_now: i64,
) -> Result<CreditOutcome> {
    if amount_micros == 0 {
        return Ok(CreditOutcome {
            applied: false,
            balance_micros: store.balance(user_id).await?,
        });
    }
    store
        .credit(Credit {
            user_id: user_id.to_owned(),
            kind: CreditKind::Grant,
            amount_micros,
            idempotency_key: monthly_grant_key(user_id, unix_now),
            reason: format!("monthly grant {}", month_of(unix_now)),
        })
        .await
}

/// Run [`CreditStore::reclaim_expired`] every `every` until the task is aborted. Errors are
/// logged and the next round tries again.
pub fn spawn_reclaimer(
    store: Arc<dyn CreditStore>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match store.reclaim_expired().await {
                Ok(0) => {}
                Ok(reclaimed) => tracing::info!(reclaimed, "released expired credit holds"),
                Err(error) => tracing::warn!(%error, "reclaiming expired holds failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_key_names_user_and_utc_month() {
        // 2026-01-31T23:59:59Z and one second later.
        assert_eq!(monthly_grant_key("ann", 1_769_903_999), "grant:ann:2026-01");
        assert_eq!(monthly_grant_key("ann", 1_769_904_000), "grant:ann:2026-02");
    }
}
