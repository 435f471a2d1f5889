//! Credit packages on sale, with their prices turned into exact integer cents.

use llmgate_core::pricing::{Decimal, credits_to_micros};
use serde::Serialize;

use crate::config::BillingConfig;

/// One package a user can buy.
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

/// A package as `GET /api/v1/llm/credits/packages` lists it. Amounts are decimal strings so
/// that no client parses money through a float.
#[derive(Debug, Clone, Serialize)]
pub struct PackageView {
    pub id: String,
    pub credits: String,
    pub price_usd: String,
    pub price_cents: i64,
}

impl Package {
    pub fn view(&self) -> PackageView {
        PackageView {
            id: self.id.clone(),
            credits: self.credits.normalize().to_string(),
            price_usd: format!("{:.2}", self.price_usd),
            price_cents: self.price_cents,
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

/// Credits as micro-credits, with the same wording as [`price_cents`] for config problems.
pub fn package_micros(credits: Decimal) -> Result<i64, String> {
    if credits <= Decimal::ZERO {
        return Err(format!("must be greater than 0, got {credits}"));
    }
    credits_to_micros(credits).map_err(|error| error.message().to_owned())
}

/// The configured packages that are valid; `Config::validate` reports the others.
pub fn packages(config: &BillingConfig) -> Vec<Package> {
    config
        .packages
        .iter()
        .filter_map(|package| {
            let credits = package.credits.parse().ok()?;
            let price_usd = package.price_usd.parse().ok()?;
            Some(Package {
                id: package.id.clone(),
                credits,
                credits_micros: package_micros(credits).ok()?,
                price_usd,
                price_cents: price_cents(price_usd).ok()?,
            })
        })
        .collect()
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
        let packages = packages(&BillingConfig::default());
        let ids: Vec<_> = packages.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["credits-1000", "credits-5000", "credits-10000"]);
        let five = &packages[1];
        assert_eq!(
            (five.credits_micros, five.price_cents),
            (5_000_000_000, 450)
        );
        let view = five.view();
        assert_eq!(
            (view.credits.as_str(), view.price_usd.as_str()),
            ("5000", "4.50")
        );
    }
}
