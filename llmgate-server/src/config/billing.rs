//! `billing:` — credits, packages, Stripe and the low-balance alert.

use llmgate_core::keys::Secret;
use serde::Deserialize;

use super::values::{DecimalText, secret};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BillingConfig {
    /// Credits per US dollar (1000: one credit is a tenth of a cent).
    pub credits_per_usd: DecimalText,
    /// What users can buy.
    pub packages: Vec<PackageConfig>,
    /// Enables purchases.
    pub stripe: Option<StripeConfig>,
    pub low_credit_alert: Option<LowCreditAlertConfig>,
}

impl Default for BillingConfig {
    fn default() -> Self {
        let package = |id: &str, credits: &str, price: &str| PackageConfig {
            id: id.to_owned(),
            credits: DecimalText::new(credits),
            price_usd: DecimalText::new(price),
        };
        Self {
            credits_per_usd: DecimalText::new("1000"),
            packages: vec![
                package("credits-1000", "1000", "1.00"),
                package("credits-5000", "5000", "4.50"),
                package("credits-10000", "10000", "8.00"),
            ],
            stripe: None,
            low_credit_alert: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageConfig {
    pub id: String,
    pub credits: DecimalText,
    pub price_usd: DecimalText,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeConfig {
    #[serde(deserialize_with = "secret")]
    pub secret_key: Secret,
    #[serde(deserialize_with = "secret")]
    pub webhook_secret: Secret,
    #[serde(default = "stripe_api_base")]
    pub api_base: String,
    pub success_url: String,
    pub cancel_url: String,
}

fn stripe_api_base() -> String {
    "https://api.stripe.com".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LowCreditAlertConfig {
    pub threshold_credits: DecimalText,
    pub webhook_url: String,
}
