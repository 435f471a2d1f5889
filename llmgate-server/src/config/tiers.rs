//! `tiers:` and `power_levels:`.

use std::collections::BTreeMap;

use llmgate_core::power::{PowerLevel, PowerLevelPolicy};
use serde::Deserialize;

use super::values::DecimalText;

/// One subscription tier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// 0.4 means +40 % on every charge.
    #[serde(default = "zero")]
    pub markup: DecimalText,
    #[serde(default)]
    pub byok: bool,
    /// Credits granted each calendar month.
    pub monthly_credits: Option<DecimalText>,
    /// `eco`, `balanced` or `precision`; checked by `validate`.
    #[serde(default = "balanced")]
    pub default_power_level: String,
    /// Requests per minute per user.
    pub rpm: Option<u32>,
    /// Only private (local) models may serve this tier.
    #[serde(default)]
    pub require_private: bool,
}

fn zero() -> DecimalText {
    DecimalText::new("0")
}

fn balanced() -> String {
    PowerLevel::Balanced.as_str().to_owned()
}

impl TierConfig {
    fn seed(markup: &str, byok: bool, monthly: Option<&str>, level: PowerLevel) -> Self {
        Self {
            markup: DecimalText::new(markup),
            byok,
            monthly_credits: monthly.map(DecimalText::new),
            default_power_level: level.as_str().to_owned(),
            rpm: None,
            require_private: false,
        }
    }
}

/// The built-in tiers.
pub fn default_tiers() -> BTreeMap<String, TierConfig> {
    let mut free = TierConfig::seed("0.0", false, Some("1000"), PowerLevel::Eco);
    free.rpm = Some(20);
    BTreeMap::from([
        ("free".to_owned(), free),
        (
            "starter".to_owned(),
            TierConfig::seed("0.4", true, Some("10000"), PowerLevel::Balanced),
        ),
        (
            "professional".to_owned(),
            TierConfig::seed("0.6", true, None, PowerLevel::Balanced),
        ),
        (
            "enterprise".to_owned(),
            TierConfig::seed("0.8", true, None, PowerLevel::Precision),
        ),
    ])
}

/// `power_levels:`; a level or field left out keeps the seed's value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PowerLevelsConfig {
    pub eco: Option<PowerLevelConfig>,
    pub balanced: Option<PowerLevelConfig>,
    pub precision: Option<PowerLevelConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PowerLevelConfig {
    pub cost_multiplier: Option<DecimalText>,
    pub max_tokens: Option<u32>,
    pub preferred_providers: Option<Vec<String>>,
    pub quality_threshold: Option<f64>,
}

impl PowerLevelsConfig {
    pub fn get(&self, level: PowerLevel) -> Option<&PowerLevelConfig> {
        match level {
            PowerLevel::Eco => self.eco.as_ref(),
            PowerLevel::Balanced => self.balanced.as_ref(),
            PowerLevel::Precision => self.precision.as_ref(),
        }
    }

    /// The effective policy of a level: configured fields over the seed's.
    pub fn policy(&self, level: PowerLevel) -> PowerLevelPolicy {
        let mut policy = PowerLevelPolicy::default_for(level);
        if let Some(config) = self.get(level) {
            if let Some(multiplier) = &config.cost_multiplier {
                policy.cost_multiplier = multiplier.value();
            }
            if let Some(max_tokens) = config.max_tokens {
                policy.max_tokens = max_tokens;
            }
            if let Some(preferred) = &config.preferred_providers {
                policy.preferred_providers.clone_from(preferred);
            }
            if let Some(threshold) = config.quality_threshold {
                policy.quality_threshold = threshold;
            }
        }
        policy
    }
}
