//! Per-token prices, read as the text the operator wrote and turned into exact per-1K decimals.
//!
//! The YAML tree the rest of the translation walks holds numbers as `f64`, which cannot keep
//! `0.0000025` exact; this second, typed pass over the same text asks the YAML reader for each
//! price's text instead.

use llmgate_core::pricing::Decimal;
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::super::values::DecimalText;
use super::emit::Field;
use super::providers::Target;
use super::reader::{Notes, Table, scalar_text};

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

/// One price: `litellm_params`' (LiteLLM's custom pricing) wins over `model_info`'s.
fn price(
    field: fn(&Prices) -> &Option<DecimalText>,
    key: &str,
    prices: &EntryPrices,
    params: &mut Table<'_>,
    info: &mut Table<'_>,
    notes: &mut Notes,
) -> Option<(DecimalText, String)> {
    let in_params = params
        .get(key)
        .and_then(|value| written(field(&prices.litellm_params), value));
    let in_info = info
        .get(key)
        .and_then(|value| written(field(&prices.model_info), value));
    match (in_params, in_info) {
        (Some(a), Some(b)) => {
            if a != b {
                notes.warn(
                    info.at(key),
                    format!("not mapped: {} sets it too, and wins", params.at(key)),
                );
            }
            Some((a, params.at(key)))
        }
        (Some(a), None) => Some((a, params.at(key))),
        (None, Some(b)) => Some((b, info.at(key))),
        (None, None) => None,
    }
}

/// A price's text as written; for a value the text pass cannot see (one brought in by a `<<`
/// merge key, which only the tree applies), the tree's number, whose shortest round-trip form
/// is exact for any price written with up to 15 significant digits.
fn written(text: &Option<DecimalText>, value: &Value) -> Option<DecimalText> {
    text.clone()
        .or_else(|| scalar_text(value).map(DecimalText::new))
}

pub(super) fn price_fields(
    target: &Target,
    vendor_endpoint: bool,
    prices: &EntryPrices,
    params: &mut Table<'_>,
    info: &mut Table<'_>,
    fields: &mut Vec<Field>,
    notes: &mut Notes,
) {
    let input = price(
        |p| &p.input_cost_per_token,
        "input_cost_per_token",
        prices,
        params,
        info,
        notes,
    );
    let output = price(
        |p| &p.output_cost_per_token,
        "output_cost_per_token",
        prices,
        params,
        info,
        notes,
    );
    type Read = fn(&Prices) -> &Option<DecimalText>;
    let cache: [(Read, &str, &str); 2] = [
        (
            |p| &p.cache_read_input_token_cost,
            "cache_read_input_token_cost",
            "cache_read_cost_per_1k",
        ),
        (
            |p| &p.cache_creation_input_token_cost,
            "cache_creation_input_token_cost",
            "cache_write_cost_per_1k",
        ),
    ];
    for (field, litellm_key, key) in cache {
        if let Some((text, path)) = price(field, litellm_key, prices, params, info, notes) {
            match per_1k(&text) {
                Ok(per_1k) => fields.push(
                    Field::plain(key, per_1k, &path)
                        .note(format!("{litellm_key} {} × 1000", text.as_str().trim())),
                ),
                Err(message) => notes.error(path, message),
            }
        }
    }
    match (input, output) {
        (Some((input, input_path)), Some((output, output_path))) => {
            for (key, text, path, litellm_key) in [
                (
                    "input_cost_per_1k",
                    input,
                    input_path,
                    "input_cost_per_token",
                ),
                (
                    "output_cost_per_1k",
                    output,
                    output_path,
                    "output_cost_per_token",
                ),
            ] {
                match per_1k(&text) {
                    Ok(per_1k) => fields.push(
                        Field::plain(key, per_1k, &path)
                            .note(format!("{litellm_key} {} × 1000", text.as_str().trim())),
                    ),
                    Err(message) => notes.error(path, message),
                }
            }
        }
        (Some((_, path)), None) | (None, Some((_, path))) => notes.error(
            path,
            "give both input_cost_per_token and output_cost_per_token: llmgate does not mix a \
             written price with a looked-up one",
        ),
        (None, None) => unpriced(target, vendor_endpoint, params.at("model"), fields, notes),
    }
}

/// A deployment without prices: free when local, the list price when llmgate knows the model
/// on its vendor's own endpoint, else unpriced (with a warning saying who may use it).
fn unpriced(
    target: &Target,
    vendor_endpoint: bool,
    path: String,
    fields: &mut Vec<Field>,
    notes: &mut Notes,
) {
    let local = llmgate_providers::preset(target.preset).is_some_and(|p| p.local);
    if local {
        fields.push(
            Field::plain("free", true, &path)
                .note("a local model, which LiteLLM counts at no cost"),
        );
        return;
    }
    let known = vendor_endpoint
        .then(|| {
            llmgate_providers::resolve_model(
                &format!("{}/{}", target.preset, target.upstream),
                &[target.preset],
            )
            .and_then(|deployment| deployment.price)
        })
        .flatten();
    match known {
        Some(price) => {
            fields.push(
                Field::plain("input_cost_per_1k", price.input_per_1k.normalize(), &path)
                    .note("list price from llmgate's catalog (LiteLLM prices it from its own)"),
            );
            fields.push(
                Field::plain("output_cost_per_1k", price.output_per_1k.normalize(), &path)
                    .note("list price from llmgate's catalog"),
            );
        }
        None => notes.warn(
            path,
            "no price: llmgate serves an unpriced model only to the master key and to callers \
             with their own provider key; add input_cost_per_token and output_cost_per_token to \
             model_info to charge credits for it",
        ),
    }
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
