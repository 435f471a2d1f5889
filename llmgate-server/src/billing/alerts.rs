//! Low-balance alerts: when a settled charge leaves a balance below
//! `billing.low_credit_alert.threshold_credits`, one JSON POST goes to the alert webhook.
//!
//! [`AlertingCreditStore`] wraps the ledger: after a settle it checks the balance, after a
//! credit it re-arms. Which user has been alerted lives in the database (see [`AlertLatch`]),
//! so with several replicas exactly one sends each alert. Delivery happens in a spawned task,
//! off the request path, retried with exponential backoff a bounded number of times.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use llmgate_core::memory::{day_of, unix_now};
use llmgate_core::{
    Error, Result,
    credits::{Credit, CreditOutcome, CreditStore, Hold, LedgerWrite, UsageRecord, Written},
    pricing::{Decimal, micros_to_credits},
};
use serde::Serialize;

use super::store::AlertLatch;
use crate::config::LowCreditAlertConfig;
use crate::config::package_micros;

/// How a failed delivery is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// The wait before the second try; it doubles after each failure.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Each try gives up after this long.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed try number `attempt` (1-based).
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// The body of one alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LowBalanceAlert {
    pub user_id: String,
    pub balance_micros: i64,
    /// Credits as a decimal string.
    pub balance: String,
    pub threshold_credits: String,
    /// RFC 3339, UTC.
    pub at: String,
}

/// The threshold, the latch and the webhook.
#[derive(Debug)]
pub struct LowBalanceAlerts {
    threshold_micros: i64,
    threshold_credits: Decimal,
    webhook_url: String,
    retry: RetryPolicy,
    latch: Arc<dyn AlertLatch>,
    http: reqwest::Client,
}

impl LowBalanceAlerts {
    /// From a validated config.
    pub fn new(config: &LowCreditAlertConfig, latch: Arc<dyn AlertLatch>) -> Result<Self> {
        let threshold_credits = config.threshold_credits.value();
        let threshold_micros = threshold_micros(config)?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("llmgate/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| {
                tracing::error!(error = %error.without_url(), "building the alert client failed");
                Error::internal("The alert webhook client could not be built.")
            })?;
        Ok(Self {
            threshold_micros,
            threshold_credits,
            webhook_url: config.webhook_url.clone(),
            retry: RetryPolicy::default(),
            latch,
            http,
        })
    }

    /// Retry deliveries with this policy instead of the default.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn threshold_micros(&self) -> i64 {
        self.threshold_micros
    }

    /// Whether a balance is below the threshold.
    pub fn is_low(&self, balance_micros: i64) -> bool {
        balance_micros < self.threshold_micros
    }

    /// After a settle: below the threshold and still armed → disarm and send. A failure here
    /// must not fail the request, whose charge is already committed; it is logged.
    async fn after_settle(&self, user_id: &str, balance_micros: i64) {
        if !self.is_low(balance_micros) {
            return;
        }
        // The balance a settle reports has the holds of the user's requests still in flight
        // taken off; a hold is the most a request may cost, often far more than it will. The
        // crossing counts on the settled balance, so an open hold raises no false alarm (the
        // settle that really crosses comes later and alerts then).
        let held = match self.latch.held_micros(user_id).await {
            Ok(held) => held,
            Err(error) => {
                tracing::warn!(user_id, %error, "could not read the open holds; alerting on the spendable balance");
                0
            }
        };
        let balance_micros = balance_micros.saturating_add(held);
        if !self.is_low(balance_micros) {
            return;
        }
        let now = unix_now();
        match self.latch.disarm(user_id, now).await {
            Ok(true) => self.deliver(LowBalanceAlert {
                user_id: user_id.to_owned(),
                balance_micros,
                balance: micros_to_credits(balance_micros).to_string(),
                threshold_credits: self.threshold_credits.normalize().to_string(),
                at: rfc3339(now),
            }),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(user_id, %error, "could not check the low-balance alert latch");
            }
        }
    }

    /// After a credit: at or above the threshold again → re-arm.
    async fn after_credit(&self, user_id: &str, balance_micros: i64) {
        if self.is_low(balance_micros) {
            return;
        }
        if let Err(error) = self.latch.rearm(user_id).await {
            tracing::warn!(user_id, %error, "could not re-arm the low-balance alert");
        }
    }

    /// Send in the background, retrying with backoff.
    fn deliver(&self, alert: LowBalanceAlert) {
        let http = self.http.clone();
        let url = self.webhook_url.clone();
        let retry = self.retry;
        tokio::spawn(async move {
            for attempt in 1..=retry.attempts {
                let sent = http
                    .post(&url)
                    .timeout(retry.timeout)
                    .json(&alert)
                    .send()
                    .await;
                let failure = match sent {
                    Ok(response) if response.status().is_success() => {
                        tracing::info!(user_id = %alert.user_id, attempt, "low-balance alert delivered");
                        return;
                    }
                    Ok(response) => format!("HTTP {}", response.status().as_u16()),
                    Err(error) => error.without_url().to_string(),
                };
                if attempt == retry.attempts {
                    tracing::error!(user_id = %alert.user_id, attempt, %failure, "low-balance alert not delivered; giving up");
                    return;
                }
                tracing::warn!(user_id = %alert.user_id, attempt, %failure, "low-balance alert delivery failed; retrying");
                tokio::time::sleep(retry.backoff(attempt)).await;
            }
        });
    }
}

/// The configured threshold in micro-credits.
pub(super) fn threshold_micros(config: &LowCreditAlertConfig) -> Result<i64> {
    let credits = config.threshold_credits.value();
    if credits.is_zero() {
        return Ok(0);
    }
    package_micros(credits).map_err(|message| {
        Error::invalid_request(format!(
            "billing.low_credit_alert.threshold_credits: {message}"
        ))
    })
}

/// A Unix time as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(unix_secs: i64) -> String {
    let seconds = unix_secs.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        day_of(unix_secs),
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

/// A credit store that raises low-balance alerts after settles and credits; every call goes to
/// the wrapped store.
#[derive(Debug)]
pub struct AlertingCreditStore {
    inner: Arc<dyn CreditStore>,
    alerts: Arc<LowBalanceAlerts>,
}

impl AlertingCreditStore {
    pub fn new(inner: Arc<dyn CreditStore>, alerts: Arc<LowBalanceAlerts>) -> Self {
        Self { inner, alerts }
    }
}

#[async_trait]
impl llmgate_core::credits::forwarding::ForwardingCreditStore for AlertingCreditStore {
    fn inner(&self) -> &dyn CreditStore {
        &*self.inner
    }

    async fn settle(&self, hold: &Hold, usage: &UsageRecord) -> Result<i64> {
        let balance = self.inner.settle(hold, usage).await?;
        self.alerts.after_settle(&hold.user_id, balance).await;
        Ok(balance)
    }

    async fn credit(&self, credit: Credit) -> Result<CreditOutcome> {
        let user_id = credit.user_id.clone();
        let outcome = self.inner.credit(credit).await?;
        if outcome.applied {
            self.alerts
                .after_credit(&user_id, outcome.balance_micros)
                .await;
        }
        Ok(outcome)
    }

    async fn write_batch(&self, writes: &[LedgerWrite]) -> Vec<Result<Written>> {
        let results = self.inner.write_batch(writes).await;
        // Each settle with the balance right after it, as `settle` does.
        for (write, result) in writes.iter().zip(&results) {
            match (write, result) {
                (LedgerWrite::Settle { hold, .. }, Ok(Written::Settled(Some(balance)))) => {
                    self.alerts.after_settle(&hold.user_id, *balance).await;
                }
                (LedgerWrite::LeaseCharge(charge), Ok(Written::LeaseCharged(Some(balance)))) => {
                    self.alerts
                        .after_settle(&charge.usage.user_id, *balance)
                        .await;
                }
                _ => {}
            }
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::store::MemoryBillingStore;
    use crate::config::DecimalText;
    use llmgate_core::{
        credits::{CreditKind, HoldRequest, KeySource},
        memory::MemoryCreditStore,
    };

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let retry = RetryPolicy {
            attempts: 10,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(1),
        };
        let waits: Vec<u128> = (1..=5).map(|a| retry.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[tokio::test]
    async fn the_latch_disarms_on_a_low_settle_and_rearms_on_a_credit() {
        let latch = Arc::new(MemoryBillingStore::default());
        let config = LowCreditAlertConfig {
            threshold_credits: DecimalText::new("100"),
            // Nothing listens here; deliveries fail in the background, which is fine.
            webhook_url: "http://127.0.0.1:9/alerts".into(),
        };
        let alerts = Arc::new(
            LowBalanceAlerts::new(&config, latch.clone())
                .unwrap()
                .with_retry(RetryPolicy {
                    attempts: 1,
                    ..RetryPolicy::default()
                }),
        );
        let store = AlertingCreditStore::new(Arc::new(MemoryCreditStore::new()), alerts);
        let credit = |amount_micros: i64, key: &str| Credit {
            user_id: "ann".into(),
            kind: CreditKind::TopUp,
            amount_micros,
            idempotency_key: key.into(),
            reason: "test".into(),
        };
        store.credit(credit(150_000_000, "k1")).await.unwrap();
        let store = &store;
        let spend = |n: u32| async move {
            let hold = store
                .hold(HoldRequest {
                    user_id: "ann".into(),
                    request_id: format!("r{n}"),
                    amount_micros: 60_000_000,
                    ttl_secs: 60,
                    budget: None,
                })
                .await
                .unwrap();
            let usage = UsageRecord {
                user_id: "ann".into(),
                request_id: format!("r{n}"),
                model: "m".into(),
                provider: "p".into(),
                key_source: KeySource::Platform,
                prompt_tokens: 1,
                completion_tokens: 1,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
                reasoning_tokens: 0,
                cost_micros: 60_000_000,
                at: 0,
            };
            store.settle(&hold, &usage).await.unwrap()
        };
        // 150 → 90 credits: crossed, so the latch is now disarmed.
        assert_eq!(spend(1).await, 90_000_000);
        assert!(!latch.disarm("ann", 0).await.unwrap());
        // A credit that stays below does not re-arm; one that lifts it above does.
        store.credit(credit(5_000_000, "k2")).await.unwrap();
        assert!(!latch.disarm("ann", 0).await.unwrap());
        store.credit(credit(100_000_000, "k3")).await.unwrap();
        assert!(latch.disarm("ann", 0).await.unwrap());
    }

    /// A latch whose user has `held` micro-credits in open holds.
    #[derive(Debug)]
    struct Holding {
        latch: MemoryBillingStore,
        held: i64,
    }

    #[async_trait]
    impl AlertLatch for Holding {
        async fn disarm(&self, user_id: &str, at: i64) -> Result<bool> {
            self.latch.disarm(user_id, at).await
        }
        async fn rearm(&self, user_id: &str) -> Result<()> {
            self.latch.rearm(user_id).await
        }
        async fn held_micros(&self, _user_id: &str) -> Result<i64> {
            Ok(self.held)
        }
    }

    #[tokio::test]
    async fn a_balance_low_only_by_open_holds_is_no_crossing() {
        let config = LowCreditAlertConfig {
            threshold_credits: DecimalText::new("100"),
            webhook_url: "http://127.0.0.1:9/alerts".into(),
        };
        let holding = |held| {
            Arc::new(Holding {
                latch: MemoryBillingStore::default(),
                held,
            })
        };
        // 90 spendable with 20 held: 110 settled, above the threshold, still armed.
        let latch = holding(20_000_000);
        let alerts = LowBalanceAlerts::new(&config, latch.clone()).unwrap();
        alerts.after_settle("ann", 90_000_000).await;
        assert!(
            latch.latch.disarm("ann", 0).await.unwrap(),
            "no alert went out"
        );
        // 90 spendable with 5 held: 95 settled, below: the alert goes out (the latch disarms).
        let latch = holding(5_000_000);
        let alerts = LowBalanceAlerts::new(&config, latch.clone()).unwrap();
        alerts.after_settle("ann", 90_000_000).await;
        assert!(
            !latch.latch.disarm("ann", 0).await.unwrap(),
            "the alert went out"
        );
    }
}
