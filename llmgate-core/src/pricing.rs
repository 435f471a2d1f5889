//! Money: the charge of a request in integer micro-credits, computed in exact decimals.
//!
//! Each token class has its own price per 1,000 tokens:
//!
//! `charge = ceil_to_micro((uncached × input + cache_read × cache_read_price
//!                          + cache_write × cache_write_price + output × output_price) / 1000
//!                         × (1 + markup) × power_multiplier × credits_per_usd)`
//!
//! Nothing is rounded until the very end, and then once, upwards.

pub use rust_decimal::Decimal;
use rust_decimal::RoundingStrategy;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One micro-credit is a millionth of a credit.
pub const MICROS_PER_CREDIT: i64 = 1_000_000;

/// USD prices per 1,000 tokens of a model, one per token class. Reasoning tokens are output
/// tokens and cost the output price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModelPrice {
    /// USD per 1,000 uncached prompt tokens.
    pub input_per_1k: Decimal,
    /// USD per 1,000 output tokens, reasoning included.
    pub output_per_1k: Decimal,
    /// Prompt tokens read from the provider's prompt cache.
    pub cache_read_per_1k: Decimal,
    /// Prompt tokens written to the provider's prompt cache.
    pub cache_write_per_1k: Decimal,
}

impl ModelPrice {
    /// Input and output prices; cached prompt tokens cost the input price until
    /// [`with_cache_prices`](Self::with_cache_prices) says otherwise.
    pub fn new(input_per_1k: Decimal, output_per_1k: Decimal) -> Self {
        Self {
            input_per_1k,
            output_per_1k,
            cache_read_per_1k: input_per_1k,
            cache_write_per_1k: input_per_1k,
        }
    }

    /// Set the cache prices (USD per 1,000 tokens read from and written to the prompt cache).
    pub fn with_cache_prices(mut self, read_per_1k: Decimal, write_per_1k: Decimal) -> Self {
        self.cache_read_per_1k = read_per_1k;
        self.cache_write_per_1k = write_per_1k;
        self
    }

    /// Whether every class costs nothing.
    pub fn is_free(&self) -> bool {
        self.input_per_1k.is_zero()
            && self.output_per_1k.is_zero()
            && self.cache_read_per_1k.is_zero()
            && self.cache_write_per_1k.is_zero()
    }

    /// The dearest price a prompt token can be billed at: before the call nobody knows which
    /// class each prompt token will land in.
    pub fn dearest_prompt_per_1k(&self) -> Decimal {
        self.input_per_1k
            .max(self.cache_read_per_1k)
            .max(self.cache_write_per_1k)
    }
}

/// Everything besides the token counts that decides a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceTerms {
    /// The model's USD prices per 1,000 tokens.
    pub price: ModelPrice,
    /// The tier's markup: 0.4 means +40 %.
    pub markup: Decimal,
    /// The power level's cost multiplier.
    pub multiplier: Decimal,
    /// Credits one USD buys (the gateway's exchange rate).
    pub credits_per_usd: Decimal,
}

/// One request's tokens by how they are priced: every prompt token is in exactly one of the
/// three prompt classes; reasoning tokens are output tokens, also counted apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClasses {
    /// Prompt tokens read neither from nor into a prompt cache.
    pub uncached_prompt: u64,
    /// Prompt tokens read from a prompt cache (usually priced lower).
    pub cache_read: u64,
    /// Prompt tokens written into a prompt cache (Anthropic prices these higher).
    pub cache_write: u64,
    /// Every generated token, reasoning included.
    pub output: u64,
    /// The part of `output` the model spent thinking.
    pub reasoning: u64,
}

impl TokenClasses {
    /// All prompt tokens, whatever their class.
    pub fn prompt(&self) -> u64 {
        self.uncached_prompt
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
    }
}

/// What each token class cost, in exact (unrounded) micro-credits, and the charge: their sum
/// rounded up once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CostBreakdown {
    /// Prompt tokens outside any cache.
    pub uncached_prompt: ClassCost,
    /// Prompt tokens read from the prompt cache.
    pub cache_read: ClassCost,
    /// Prompt tokens written to the prompt cache.
    pub cache_write: ClassCost,
    /// Output tokens, reasoning included.
    pub output: ClassCost,
    /// Part of `output`: reasoning tokens are billed as output tokens.
    pub reasoning_tokens: u64,
    /// The charge: the classes' sum rounded up to the micro-credit.
    pub cost_micros: i64,
}

impl CostBreakdown {
    /// The tokens of an uncharged request (free model, own key, admin): every class costs 0.
    pub fn free(tokens: &TokenClasses) -> Self {
        let class = |tokens| ClassCost {
            tokens,
            micros: Decimal::ZERO,
        };
        Self {
            uncached_prompt: class(tokens.uncached_prompt),
            cache_read: class(tokens.cache_read),
            cache_write: class(tokens.cache_write),
            output: class(tokens.output),
            reasoning_tokens: tokens.reasoning.min(tokens.output),
            cost_micros: 0,
        }
    }

    /// The breakdown's JSON exactly as `serde_json` writes it (a test holds the two to the
    /// same text), written directly, integers without `core::fmt`: through serde's writer it
    /// cost about 4–6k instructions, through `write!` 2.3k, and every answer's header and
    /// log row carry one.
    pub fn to_json(&self) -> String {
        let mut json = String::with_capacity(256);
        let mut digits = itoa::Buffer::new();
        let classes = [
            ("{\"uncached_prompt\":", &self.uncached_prompt),
            (",\"cache_read\":", &self.cache_read),
            (",\"cache_write\":", &self.cache_write),
            (",\"output\":", &self.output),
        ];
        for (key, class) in classes {
            json.push_str(key);
            json.push_str("{\"tokens\":");
            json.push_str(digits.format(class.tokens));
            json.push_str(",\"micros\":\"");
            if class.micros.is_zero() {
                json.push('0');
            } else {
                use std::fmt::Write as _;
                // Writing to a String cannot fail.
                let _ = write!(json, "{}", class.micros.normalize());
            }
            json.push_str("\"}");
        }
        json.push_str(",\"reasoning_tokens\":");
        json.push_str(digits.format(self.reasoning_tokens));
        json.push_str(",\"cost_micros\":");
        json.push_str(digits.format(self.cost_micros));
        json.push('}');
        json
    }
}

/// One class's tokens and their cost in micro-credits, exact (it may have decimals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ClassCost {
    /// How many tokens of the class.
    pub tokens: u64,
    /// Their cost in micro-credits, unrounded (serialized as a decimal string).
    #[serde(serialize_with = "exact_micros")]
    pub micros: Decimal,
}

/// Exact micro-credits as a JSON string (`"105000"`, `"0.35"`): a JSON number would pass
/// through floating point in most clients.
fn exact_micros<S: serde::Serializer>(
    micros: &Decimal,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    // Every class of a free request is zero: written directly, not through Decimal's
    // formatter (a breakdown is serialized for a header and a log row of every request).
    if micros.is_zero() {
        return serializer.serialize_str("0");
    }
    serializer.collect_str(&micros.normalize())
}

impl PriceTerms {
    /// The charge in micro-credits for these tokens, rounded up to the micro-credit.
    pub fn charge_micros(&self, tokens: &TokenClasses) -> Result<i64> {
        Ok(self.breakdown(tokens)?.cost_micros)
    }

    /// The most a request can cost: every prompt token at the dearest prompt class, every
    /// output token at the output price. This is what a hold covers.
    pub fn max_charge_micros(&self, prompt_bound: u64, output_bound: u64) -> Result<i64> {
        let worst = PriceTerms {
            price: ModelPrice::new(self.price.dearest_prompt_per_1k(), self.price.output_per_1k),
            ..*self
        };
        worst.charge_micros(&TokenClasses {
            uncached_prompt: prompt_bound,
            output: output_bound,
            ..TokenClasses::default()
        })
    }

    /// Each class's exact cost and the charge, rounded up once after summing.
    pub fn breakdown(&self, tokens: &TokenClasses) -> Result<CostBreakdown> {
        let price = &self.price;
        let uncached = self.class_cost(tokens.uncached_prompt, price.input_per_1k)?;
        let cache_read = self.class_cost(tokens.cache_read, price.cache_read_per_1k)?;
        let cache_write = self.class_cost(tokens.cache_write, price.cache_write_per_1k)?;
        let output = self.class_cost(tokens.output, price.output_per_1k)?;
        let total = [cache_read, cache_write, output]
            .iter()
            .try_fold(uncached.micros, |sum, class| sum.checked_add(class.micros))
            .ok_or_else(too_large)?;
        let cost_micros = total.round_dp_with_strategy(0, RoundingStrategy::ToPositiveInfinity);
        Ok(CostBreakdown {
            uncached_prompt: uncached,
            cache_read,
            cache_write,
            output,
            reasoning_tokens: tokens.reasoning.min(tokens.output),
            cost_micros: i64::try_from(cost_micros).map_err(|_| too_large())?,
        })
    }

    /// `tokens × price / 1000 × (1 + markup) × multiplier × credits_per_usd × 10^6`, exact:
    /// every factor is multiplied in before the one division, which is by a power of ten.
    fn class_cost(&self, tokens: u64, price_per_1k: Decimal) -> Result<ClassCost> {
        let scaled = Decimal::from(tokens)
            .checked_mul(price_per_1k)
            .and_then(|v| v.checked_mul(Decimal::ONE + self.markup))
            .and_then(|v| v.checked_mul(self.multiplier))
            .and_then(|v| v.checked_mul(self.credits_per_usd))
            .and_then(|v| v.checked_mul(Decimal::from(MICROS_PER_CREDIT)))
            .ok_or_else(too_large)?;
        let micros = scaled
            .checked_div(Decimal::from(1000))
            .ok_or_else(too_large)?;
        Ok(ClassCost { tokens, micros })
    }
}

fn too_large() -> Error {
    Error::invalid_request("The request's maximum cost is too large to price.")
}

/// Micro-credits as a decimal number of credits, for display.
pub fn micros_to_credits(micros: i64) -> Decimal {
    Decimal::new(micros, 6).normalize()
}

/// A credit amount (a decimal number of credits) as micro-credits; refuses sub-micro precision.
pub fn credits_to_micros(credits: Decimal) -> Result<i64> {
    let micros = credits
        .checked_mul(Decimal::from(MICROS_PER_CREDIT))
        .ok_or_else(|| Error::invalid_request("amount is too large"))?;
    if micros.fract() != Decimal::ZERO {
        return Err(Error::invalid_request(
            "amount has more precision than one micro-credit (6 decimals)",
        ));
    }
    i64::try_from(micros).map_err(|_| Error::invalid_request("amount is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn plain(prompt: u64, output: u64) -> TokenClasses {
        TokenClasses {
            uncached_prompt: prompt,
            output,
            ..TokenClasses::default()
        }
    }

    /// Tier starter (+40 %), power level balanced (× 0.25), 1,000 credits per dollar.
    fn starter_balanced(price: ModelPrice) -> PriceTerms {
        PriceTerms {
            price,
            markup: dec("0.4"),
            multiplier: dec("0.25"),
            credits_per_usd: dec("1000"),
        }
    }

    #[test]
    fn micros_serialize_as_normalized_decimal_strings_zero_included() {
        let json = |micros: Decimal| {
            let class = ClassCost { tokens: 1, micros };
            serde_json::to_string(&class).unwrap()
        };
        for (micros, text) in [
            (Decimal::ZERO, "0"),
            (dec("0.000"), "0"),
            (-dec("0.0"), "0"),
            (dec("105000.00"), "105000"),
            (dec("0.350"), "0.35"),
        ] {
            assert_eq!(json(micros), format!(r#"{{"tokens":1,"micros":"{text}"}}"#));
            if micros.is_zero() {
                // What the general path writes for a zero, so the shortcut changes nothing.
                assert_eq!(micros.normalize().to_string(), "0");
            }
        }
        let free = CostBreakdown::free(&plain(3, 2));
        assert_eq!(
            serde_json::to_value(free).unwrap()["output"],
            serde_json::json!({"tokens": 2, "micros": "0"})
        );
    }

    #[test]
    fn anthropic_cache_example_is_4252500_micros() {
        let terms = starter_balanced(
            ModelPrice::new(dec("0.003"), dec("0.015"))
                .with_cache_prices(dec("0.0003"), dec("0.00375")),
        );
        let tokens = TokenClasses {
            uncached_prompt: 100,
            cache_read: 2000,
            cache_write: 1000,
            output: 500,
            reasoning: 0,
        };
        let breakdown = terms.breakdown(&tokens).unwrap();
        assert_eq!(breakdown.cost_micros, 4_252_500);
        assert_eq!(breakdown.uncached_prompt.micros, dec("105000"));
        assert_eq!(breakdown.cache_read.micros, dec("210000"));
        assert_eq!(breakdown.cache_write.micros, dec("1312500"));
        assert_eq!(breakdown.output.micros, dec("2625000"));
    }

    #[test]
    fn openai_cache_and_reasoning_example_is_2450000_micros() {
        let terms = starter_balanced(
            ModelPrice::new(dec("0.002"), dec("0.008"))
                .with_cache_prices(dec("0.0005"), dec("0.002")),
        );
        let usage = crate::chat::Usage::new(3000, 500)
            .with_cached_tokens(2000)
            .with_reasoning_tokens(300);
        let breakdown = terms.breakdown(&usage.classes()).unwrap();
        assert_eq!(breakdown.cost_micros, 2_450_000);
        assert_eq!(breakdown.uncached_prompt.tokens, 1000);
        assert_eq!(breakdown.cache_read.tokens, 2000);
        assert_eq!(breakdown.reasoning_tokens, 300);
    }

    #[test]
    fn rounding_happens_once_after_the_classes_are_summed() {
        // Each class alone is half a micro-credit; rounded apart they would make 2, summed 1.
        let terms = PriceTerms {
            price: ModelPrice::new(dec("0.0000005"), Decimal::ZERO)
                .with_cache_prices(dec("0.0000005"), Decimal::ZERO),
            markup: Decimal::ZERO,
            multiplier: Decimal::ONE,
            credits_per_usd: dec("1000"),
        };
        let tokens = TokenClasses {
            uncached_prompt: 1,
            cache_read: 1,
            ..TokenClasses::default()
        };
        let breakdown = terms.breakdown(&tokens).unwrap();
        assert_eq!(breakdown.uncached_prompt.micros, dec("0.5"));
        assert_eq!(breakdown.cost_micros, 1);
    }

    #[test]
    fn the_maximum_charge_prices_prompt_tokens_at_the_dearest_class() {
        let terms = starter_balanced(
            ModelPrice::new(dec("0.003"), dec("0.015"))
                .with_cache_prices(dec("0.0003"), dec("0.00375")),
        );
        // 1000 prompt tokens that might all be cache writes: 3.75 USD-milli × 0.35 × 1000.
        assert_eq!(terms.max_charge_micros(1000, 0).unwrap(), 1_312_500);
        let all_written = TokenClasses {
            cache_write: 1000,
            ..TokenClasses::default()
        };
        assert_eq!(terms.charge_micros(&all_written).unwrap(), 1_312_500);
    }

    #[test]
    fn unset_cache_prices_are_the_input_price() {
        let price = ModelPrice::new(dec("0.002"), dec("0.004"));
        assert_eq!(price.cache_read_per_1k, dec("0.002"));
        assert_eq!(price.cache_write_per_1k, dec("0.002"));
        assert!(
            !price
                .with_cache_prices(dec("0.001"), Decimal::ZERO)
                .is_free()
        );
        assert!(ModelPrice::default().is_free());
    }

    #[test]
    fn worked_example_from_the_spec_is_700000_micros() {
        let terms = PriceTerms {
            price: ModelPrice::new(dec("0.002"), dec("0.002")),
            markup: dec("0.4"),
            multiplier: dec("0.25"),
            credits_per_usd: dec("1000"),
        };
        assert_eq!(terms.charge_micros(&plain(400, 600)).unwrap(), 700_000);
    }

    #[test]
    fn charge_rounds_up_to_the_micro() {
        let terms = PriceTerms {
            price: ModelPrice::new(dec("0.0000001"), Decimal::ZERO),
            markup: Decimal::ZERO,
            multiplier: Decimal::ONE,
            credits_per_usd: dec("1000"),
        };
        // 1 token × $0.0000001 / 1000 × 1000 credits/$ = 1e-7 credits = 0.1 micro → 1 micro.
        assert_eq!(terms.charge_micros(&plain(1, 0)).unwrap(), 1);
        assert_eq!(terms.charge_micros(&plain(0, 0)).unwrap(), 0);
    }

    #[test]
    fn credit_amounts_convert_exactly() {
        assert_eq!(credits_to_micros(dec("5000")).unwrap(), 5_000_000_000);
        assert_eq!(credits_to_micros(dec("0.000001")).unwrap(), 1);
        assert!(credits_to_micros(dec("0.0000001")).is_err());
        assert_eq!(micros_to_credits(700_000), dec("0.7"));
    }

    #[test]
    fn a_breakdown_is_written_as_serde_writes_it() {
        let class = |tokens, micros| ClassCost { tokens, micros };
        let tokens = TokenClasses {
            uncached_prompt: 12,
            cache_read: 0,
            cache_write: 3,
            output: u64::MAX,
            reasoning: 7,
        };
        for breakdown in [
            CostBreakdown::default(),
            CostBreakdown::free(&tokens),
            CostBreakdown {
                uncached_prompt: class(12, Decimal::new(12_345, 3)),
                cache_read: class(0, Decimal::new(1_500, 2)),
                cache_write: class(3, Decimal::new(-25, 1)),
                output: class(u64::MAX, Decimal::new(7, 0)),
                reasoning_tokens: 7,
                cost_micros: i64::MAX,
            },
            CostBreakdown {
                cost_micros: -4,
                ..CostBreakdown::default()
            },
        ] {
            assert_eq!(
                breakdown.to_json(),
                serde_json::to_string(&breakdown).unwrap()
            );
        }
    }
}
