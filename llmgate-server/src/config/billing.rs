//! `billing:` — credits, packages, Stripe and the low-balance alert.

use llmgate_core::{
    keys::Secret,
    pricing::{Decimal, credits_to_micros},
};
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

/// A package in exact units, parsed once from its [`PackageConfig`]: what billing sells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub id: String,
    /// Credits the package adds, as configured.
    pub credits: Decimal,
    pub credits_micros: i64,
    /// The price in US dollars, as configured (`"4.50"`).
    pub price_usd: Decimal,
    /// The same price in cents, what Stripe is sent (`450`).
    pub price_cents: i64,
}

impl PackageConfig {
    /// The package in exact units, or each bad field (`credits`, `price_usd`) with what is
    /// wrong with it.
    pub fn typed(&self) -> Result<Package, Vec<(&'static str, String)>> {
        let credits = self
            .credits
            .parse()
            .and_then(|credits| package_micros(credits).map(|micros| (credits, micros)));
        let price = self
            .price_usd
            .parse()
            .and_then(|price| price_cents(price).map(|cents| (price, cents)));
        match (credits, price) {
            (Ok((credits, credits_micros)), Ok((price_usd, price_cents))) => Ok(Package {
                id: self.id.clone(),
                credits,
                credits_micros,
                price_usd,
                price_cents,
            }),
            (credits, price) => Err([("credits", credits.err()), ("price_usd", price.err())]
                .into_iter()
                .filter_map(|(field, problem)| problem.map(|message| (field, message)))
                .collect()),
        }
    }
}

impl BillingConfig {
    /// Every package in exact units; else each bad field as (YAML path, message).
    pub fn typed_packages(&self) -> Result<Vec<Package>, Vec<(String, String)>> {
        let mut packages = Vec::with_capacity(self.packages.len());
        let mut problems = Vec::new();
        for (i, package) in self.packages.iter().enumerate() {
            match package.typed() {
                Ok(package) => packages.push(package),
                Err(bad) => {
                    problems.extend(bad.into_iter().map(|(field, message)| {
                        (format!("billing.packages[{i}].{field}"), message)
                    }))
                }
            }
        }
        if problems.is_empty() {
            Ok(packages)
        } else {
            Err(problems)
        }
    }
}

/// A dollar price as whole cents; refuses prices with sub-cent precision (`4.505`) and
/// anything not above zero, rather than round them.
pub fn price_cents(price_usd: Decimal) -> Result<i64, String> {
    if price_usd <= Decimal::ZERO {
        return Err(format!("must be greater than 0, got {price_usd}"));
    }
    let cents = price_usd
        .checked_mul(Decimal::ONE_HUNDRED)
        .ok_or_else(|| format!("{price_usd} is too large"))?;
    if !cents.fract().is_zero() {
        return Err(format!(
            "{price_usd} has a fraction of a cent; Stripe charges whole cents"
        ));
    }
    i64::try_from(cents).map_err(|_| format!("{price_usd} is too large"))
}

/// Credits (above zero) as micro-credits, with the same wording as [`price_cents`].
pub fn package_micros(credits: Decimal) -> Result<i64, String> {
    if credits <= Decimal::ZERO {
        return Err(format!("must be greater than 0, got {credits}"));
    }
    credits_to_micros(credits).map_err(|error| error.message().to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    #[test]
    fn prices_become_exact_cents() {
        assert_eq!(price_cents(dec("4.50")).unwrap(), 450);
        assert_eq!(price_cents(dec("4.5")).unwrap(), 450);
        assert_eq!(price_cents(dec("1")).unwrap(), 100);
        assert_eq!(price_cents(dec("0.01")).unwrap(), 1);
        assert_eq!(price_cents(dec("8.000")).unwrap(), 800);
    }

    #[test]
    fn sub_cent_and_non_positive_prices_are_refused() {
        assert!(
            price_cents(dec("4.505"))
                .unwrap_err()
                .contains("fraction of a cent")
        );
        assert!(price_cents(dec("0.001")).is_err());
        assert!(price_cents(dec("0")).is_err());
        assert!(price_cents(dec("-1")).is_err());
    }

    #[test]
    fn default_packages_are_all_valid() {
        let packages = BillingConfig::default().typed_packages().unwrap();
        let ids: Vec<_> = packages.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["credits-1000", "credits-5000", "credits-10000"]);
        assert_eq!(
            (packages[1].credits_micros, packages[1].price_cents),
            (5_000_000_000, 450)
        );
    }

    #[test]
    fn every_bad_package_field_is_named_none_dropped() {
        let mut config = BillingConfig::default();
        config.packages[0].credits = DecimalText::new("lots");
        config.packages[0].price_usd = DecimalText::new("4.505");
        config.packages[2].credits = DecimalText::new("0");
        let problems = config.typed_packages().unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "billing.packages[0].credits",
                "billing.packages[0].price_usd",
                "billing.packages[2].credits"
            ]
        );
    }
}
