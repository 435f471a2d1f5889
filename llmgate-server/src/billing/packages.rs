//! Credit packages as the API lists them. The packages themselves are parsed from `billing:`
//! into exact units by the config ([`crate::config::Package`]).

use serde::Serialize;

use crate::config::Package;

/// A package as `GET /api/v1/llm/credits/packages` lists it. Amounts are decimal strings so
/// that no client parses money through a float.
#[derive(Debug, Clone, Serialize)]
pub struct PackageView {
    pub id: String,
    pub credits: String,
    pub price_usd: String,
    pub price_cents: i64,
}

impl From<&Package> for PackageView {
    fn from(package: &Package) -> Self {
        Self {
            id: package.id.clone(),
            credits: package.credits.normalize().to_string(),
            price_usd: format!("{:.2}", package.price_usd),
            price_cents: package.price_cents,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BillingConfig;

    #[test]
    fn views_show_exact_decimal_strings() {
        let packages = BillingConfig::default().typed_packages().unwrap();
        let view = PackageView::from(&packages[1]);
        assert_eq!(
            (view.credits.as_str(), view.price_usd.as_str()),
            ("5000", "4.50")
        );
    }
}
