//! Billing: credit packages sold through Stripe Checkout, the signed Stripe webhook
//! that credits them once per session, and low-balance alerts.
//!
//! [`Billing`] is built once from `billing:` and the ledger's database; the HTTP handlers in
//! `api/billing.rs` call it. [`with_low_balance_alerts`] puts the alerts around the ledger
//! before anything (the gateway, monthly grants) uses it.

mod alerts;
mod packages;
mod signature;
mod store;
mod stripe;
mod webhook;

use std::sync::Arc;

use llmgate_core::memory::unix_now;
use llmgate_core::{Error, ErrorKind, Result, credits::CreditStore, keys::Secret};
use llmgate_credits::SqlCreditStore;

pub use alerts::{AlertingCreditStore, LowBalanceAlert, LowBalanceAlerts, RetryPolicy};
pub use packages::PackageView;
pub use signature::{SignatureError, TOLERANCE_SECS, verify as verify_signature};
pub use store::{
    AlertLatch, MemoryBillingStore, Purchase, PurchaseStatus, PurchaseStore, SqlBillingStore,
};
pub use stripe::{CheckoutRequest, CheckoutSession, StripeClient, checkout_form};
pub use webhook::Outcome as WebhookOutcome;

use crate::config::{BillingConfig, Package};

/// The ledger with low-balance alerts around it when `billing.low_credit_alert` is set (the
/// latch in `latch`, shared by every replica on one database); else the ledger unchanged.
pub fn with_low_balance_alerts(
    config: &BillingConfig,
    latch: Arc<dyn AlertLatch>,
    credits: Arc<dyn CreditStore>,
) -> Result<Arc<dyn CreditStore>> {
    Ok(match &config.low_credit_alert {
        Some(alert) => Arc::new(AlertingCreditStore::new(
            credits,
            Arc::new(LowBalanceAlerts::new(alert, latch)?),
        )),
        None => credits,
    })
}

/// Purchases and the alert latch in the ledger's own database.
pub fn sql_store(ledger: &SqlCreditStore) -> Arc<SqlBillingStore> {
    Arc::new(SqlBillingStore::new(ledger))
}

/// Stripe's two secrets and the client.
#[derive(Debug, Clone)]
struct Stripe {
    client: StripeClient,
    webhook_secret: Secret,
}

/// Packages, purchases and the Stripe webhook.
#[derive(Debug, Clone)]
pub struct Billing {
    packages: Arc<Vec<Package>>,
    stripe: Option<Stripe>,
    purchases: Arc<dyn PurchaseStore>,
    /// `billing.low_credit_alert.threshold_credits` in micro-credits, when alerts are on.
    low_threshold_micros: Option<i64>,
}

impl Billing {
    /// From a validated `billing:` section.
    pub fn new(config: &BillingConfig, purchases: Arc<dyn PurchaseStore>) -> Result<Self> {
        let stripe = match &config.stripe {
            Some(stripe) => Some(Stripe {
                client: StripeClient::new(stripe)?,
                webhook_secret: stripe.webhook_secret.clone(),
            }),
            None => None,
        };
        let low_threshold_micros = match &config.low_credit_alert {
            Some(alert) => Some(alerts::threshold_micros(alert)?),
            None => None,
        };
        Ok(Self {
            packages: Arc::new(config.typed_packages().map_err(|problems| {
                let lines: Vec<String> = problems
                    .iter()
                    .map(|(path, message)| format!("{path}: {message}"))
                    .collect();
                Error::new(ErrorKind::InvalidRequest, lines.join("; "))
            })?),
            stripe,
            purchases,
            low_threshold_micros,
        })
    }

    pub fn packages(&self) -> &[Package] {
        &self.packages
    }

    /// Whether Stripe is configured.
    pub fn purchases_enabled(&self) -> bool {
        self.stripe.is_some()
    }

    /// Whether a balance is below the alert threshold (`false` without alerts).
    pub fn is_low(&self, balance_micros: i64) -> bool {
        self.low_threshold_micros
            .is_some_and(|threshold| balance_micros < threshold)
    }

    /// Create a Checkout Session for `package_id` and remember it as a pending purchase.
    pub async fn start_purchase(&self, user_id: &str, package_id: &str) -> Result<CheckoutSession> {
        let stripe = self.stripe.as_ref().ok_or_else(purchases_disabled)?;
        let package = self
            .packages
            .iter()
            .find(|p| p.id == package_id)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("There is no package `{package_id}`; GET /api/v1/llm/credits/packages lists them."),
                )
                .with_param("package")
                .with_code("package_not_found")
            })?;
        let idempotency_key = format!("llmgate-purchase-{:032x}", rand::random::<u128>());
        let session = stripe
            .client
            .create_checkout_session(&CheckoutRequest {
                user_id,
                package,
                idempotency_key: &idempotency_key,
            })
            .await?;
        self.purchases
            .record_pending(&Purchase {
                session_id: session.id.clone(),
                user_id: user_id.to_owned(),
                package: package.id.clone(),
                credits_micros: package.credits_micros,
                amount_cents: package.price_cents,
                status: PurchaseStatus::Pending,
                created_at: unix_now(),
                completed_at: None,
            })
            .await?;
        tracing::info!(user_id, package = %package.id, session_id = %session.id, "created a Stripe Checkout Session");
        Ok(session)
    }

    /// Verify a webhook delivery against its raw body, then apply it. A bad signature is 400
    /// and changes nothing.
    pub async fn receive_webhook(
        &self,
        signature: Option<&str>,
        payload: &[u8],
        credits: &dyn CreditStore,
    ) -> Result<WebhookOutcome> {
        let stripe = self.stripe.as_ref().ok_or_else(purchases_disabled)?;
        verify_signature(signature, payload, &stripe.webhook_secret, unix_now()).map_err(
            |error| {
                tracing::warn!(%error, "refused a Stripe webhook");
                Error::invalid_request(format!("Invalid Stripe webhook: {error}."))
                    .with_code("invalid_stripe_signature")
            },
        )?;
        webhook::apply(payload, &self.packages, &*self.purchases, credits).await
    }

    /// Purchases recorded for a session (for tests and support).
    pub async fn purchase(&self, session_id: &str) -> Result<Option<Purchase>> {
        self.purchases.find(session_id).await
    }
}

fn purchases_disabled() -> Error {
    Error::new(
        ErrorKind::NotFound,
        "Purchases are not enabled on this gateway: billing.stripe is not configured.",
    )
    .with_code("purchases_not_enabled")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DecimalText;

    #[test]
    fn billing_takes_every_package_or_refuses_the_config() {
        let purchases: Arc<dyn PurchaseStore> = Arc::new(MemoryBillingStore::default());
        let mut config = BillingConfig::default();
        let billing = Billing::new(&config, purchases.clone()).unwrap();
        assert_eq!(billing.packages().len(), 3);
        // A bad package is never dropped quietly (the package list would silently shrink).
        config.packages[1].price_usd = DecimalText::new("4.505");
        let refused = Billing::new(&config, purchases).unwrap_err();
        assert!(
            refused.message().contains("billing.packages[1].price_usd"),
            "{}",
            refused.message()
        );
    }
}
