//! Per-token prices, read as the text the operator wrote and turned into exact per-1K decimals.
//!
//! The YAML tree the rest of the translation walks holds numbers as `f64`, which cannot keep
//! `0.0000025` exact; this second, typed pass over the same text asks the YAML reader for each
//! price's text instead.

use llmgate_core::Decimal;
use serde::Deserialize;

use super::super::values::DecimalText;

/// The prices of one `model_list` entry, from `litellm_params` or `model_info`.
#[derive(Debug, Default, Clone, Deserialize)]
pub(super) struct Prices {
    pub(super) input_cost_per_token: Option<DecimalText>,
    pub(super) output_cost_per_token: Option<DecimalText>,
    pub(super) cache_read_input_token_cost: Option<DecimalText>,
    pub(super) cache_creation_input_token_cost: Option<DecimalText>,
}

#[derive(Debug, Default, Deserialize)]
struct Entry {
    litellm_params: Option<Prices>,
    model_info: Option<Prices>,
}

#[derive(Debug, Default, Deserialize)]
struct Document {
    #[serde(default)]
    model_list: Vec<Option<Entry>>,
}

/// Where each entry's prices were written.
#[derive(Debug, Default, Clone)]
pub(super) struct EntryPrices {
    pub(super) litellm_params: Prices,
    pub(super) model_info: Prices,
}

/// Every `model_list` entry's price texts, in order; `Err` with a path when a price is not a
/// scalar (the structural walk reports the rest).
pub(super) fn read(text: &str) -> Result<Vec<EntryPrices>, (String, String)> {
    let yaml = serde_yaml_ng::Deserializer::from_str(text);
    let document: Document = serde_path_to_error::deserialize(yaml)
        .map_err(|error| (error.path().to_string(), error.inner().to_string()))?;
    Ok(document
        .model_list
        .into_iter()
        .map(|entry| {
            let entry = entry.unwrap_or_default();
            EntryPrices {
                litellm_params: entry.litellm_params.unwrap_or_default(),
                model_info: entry.model_info.unwrap_or_default(),
            }
        })
        .collect())
}

/// A per-token price as the per-1K decimal llmgate takes, exactly: `0.0000025` → `0.0025`.
pub(super) fn per_1k(per_token: &DecimalText) -> Result<String, String> {
    let price = per_token.parse().map_err(|message| {
        if per_token.as_str().trim().starts_with("os.environ/") {
            "a price cannot come from the environment: write the number".to_owned()
        } else {
            message
        }
    })?;
    if price < Decimal::ZERO {
        return Err(format!("must not be negative, got {price}"));
    }
    let scaled = price
        .checked_mul(Decimal::from(1000))
        .ok_or_else(|| format!("`{per_token}` is too large"))?;
    Ok(scaled.normalize().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_token_prices_become_exact_per_1k_decimals() {
        let cases = [
            ("0.0000025", "0.0025"),
            ("2.5e-06", "0.0025"),
            ("3e-7", "0.0003"),
            ("0.000000123456789012345", "0.000123456789012345"),
            ("0", "0"),
            ("1", "1000"),
        ];
        for (given, expected) in cases {
            assert_eq!(
                per_1k(&DecimalText::new(given)).unwrap(),
                expected,
                "{given}"
            );
        }
        assert!(per_1k(&DecimalText::new("-1e-6")).is_err());
        assert!(
            per_1k(&DecimalText::new("os.environ/PRICE"))
                .unwrap_err()
                .contains("environment")
        );
    }

    #[test]
    fn price_texts_are_read_as_written_wherever_they_are() {
        let prices = read(
            "model_list:\n  - model_name: a\n    model_info:\n      input_cost_per_token: 0.000000123456789012345\n  \
             - model_name: b\n    litellm_params: { model: x, output_cost_per_token: 1.5e-06 }\n    model_info: ~\n",
        )
        .unwrap();
        assert_eq!(
            prices[0]
                .model_info
                .input_cost_per_token
                .as_ref()
                .unwrap()
                .as_str(),
            "0.000000123456789012345"
        );
        assert_eq!(
            prices[1]
                .litellm_params
                .output_cost_per_token
                .as_ref()
                .unwrap()
                .as_str(),
            "1.5e-06"
        );
    }
}
