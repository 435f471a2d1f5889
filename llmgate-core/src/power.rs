//! Power levels: how much quality (and money) a request is worth.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// eco, balanced or precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerLevel {
    /// Cheapest: short answers, cheap and fast models preferred.
    Eco,
    /// The default: good models at moderate cost.
    Balanced,
    /// Best quality, whatever it costs.
    Precision,
}

impl PowerLevel {
    /// Every level, cheapest first.
    pub const ALL: [PowerLevel; 3] = [PowerLevel::Eco, PowerLevel::Balanced, PowerLevel::Precision];

    /// The lowercase name used in requests, headers and config.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerLevel::Eco => "eco",
            PowerLevel::Balanced => "balanced",
            PowerLevel::Precision => "precision",
        }
    }
}

impl fmt::Display for PowerLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PowerLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "eco" => Ok(PowerLevel::Eco),
            "balanced" => Ok(PowerLevel::Balanced),
            "precision" => Ok(PowerLevel::Precision),
            other => Err(format!(
                "unknown power level `{other}` (expected eco, balanced or precision)"
            )),
        }
    }
}

/// What a power level does to a request.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerLevelPolicy {
    /// Multiplies the charge.
    pub cost_multiplier: Decimal,
    /// Caps the request's output tokens.
    pub max_tokens: u32,
    /// Provider names, `local`, or `provider:tag`, best first.
    pub preferred_providers: Vec<String>,
    /// Models below this quality are not picked by `auto`.
    pub quality_threshold: f64,
}

impl PowerLevelPolicy {
    /// The built-in defaults of each level.
    pub fn default_for(level: PowerLevel) -> Self {
        let (multiplier, max_tokens, preferred, quality): (Decimal, u32, &[&str], f64) = match level
        {
            PowerLevel::Eco => (
                Decimal::new(1, 1),
                2000,
                &["local", "groq", "huggingface"],
                0.6,
            ),
            PowerLevel::Balanced => (
                Decimal::new(25, 2),
                4000,
                &["together", "fireworks", "openrouter"],
                0.8,
            ),
            PowerLevel::Precision => (
                Decimal::ONE,
                16000,
                &["anthropic", "openai", "openrouter:premium"],
                0.95,
            ),
        };
        Self {
            cost_multiplier: multiplier,
            max_tokens,
            preferred_providers: preferred.iter().map(|s| (*s).to_owned()).collect(),
            quality_threshold: quality,
        }
    }
}
