//! Money: the charge of a request in integer micro-credits, computed in exact decimals.
//!
//! `charge = ceil_to_micro((prompt × in_per_1k + completion × out_per_1k) / 1000
//!                         × (1 + markup) × power_multiplier × credits_per_usd)`

use rust_decimal::{Decimal, RoundingStrategy};

use crate::error::{Error, Result};

/// One micro-credit is a millionth of a credit.
pub const MICROS_PER_CREDIT: i64 = 1_000_000;

/// USD prices per 1,000 tokens of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModelPrice {
    pub input_per_1k: Decimal,
    pub output_per_1k: Decimal,
}

impl ModelPrice {
    pub fn new(input_per_1k: Decimal, output_per_1k: Decimal) -> Self {
        Self {
            input_per_1k,
            output_per_1k,
        }
    }

    pub fn is_free(&self) -> bool {
        self.input_per_1k.is_zero() && self.output_per_1k.is_zero()
    }
}

/// Everything besides the token counts that decides a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceTerms {
    pub price: ModelPrice,
    /// The tier's markup: 0.4 means +40 %.
    pub markup: Decimal,
    /// The power level's cost multiplier.
    pub multiplier: Decimal,
    pub credits_per_usd: Decimal,
}

impl PriceTerms {
    /// The charge in micro-credits for these token counts, rounded up to the micro-credit.
    pub fn charge_micros(&self, prompt_tokens: u64, completion_tokens: u64) -> Result<i64> {
        let overflow =
            || Error::invalid_request("The request's maximum cost is too large to price.");
        let prompt = Decimal::from(prompt_tokens);
        let completion = Decimal::from(completion_tokens);
        let token_cost = prompt
            .checked_mul(self.price.input_per_1k)
            .and_then(|a| {
                completion
                    .checked_mul(self.price.output_per_1k)
                    .and_then(|b| a.checked_add(b))
            })
            .ok_or_else(overflow)?;
        // Multiply everything before the one division so no intermediate is rounded.
        let scaled = token_cost
            .checked_mul(Decimal::ONE + self.markup)
            .and_then(|v| v.checked_mul(self.multiplier))
            .and_then(|v| v.checked_mul(self.credits_per_usd))
            .and_then(|v| v.checked_mul(Decimal::from(MICROS_PER_CREDIT)))
            .ok_or_else(overflow)?;
        let micros = (scaled / Decimal::from(1000))
            .round_dp_with_strategy(0, RoundingStrategy::ToPositiveInfinity);
        i64::try_from(micros).map_err(|_| overflow())
    }
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

    #[test]
    fn worked_example_from_the_spec_is_700000_micros() {
        let terms = PriceTerms {
            price: ModelPrice::new(dec("0.002"), dec("0.002")),
            markup: dec("0.4"),
            multiplier: dec("0.25"),
            credits_per_usd: dec("1000"),
        };
        assert_eq!(terms.charge_micros(400, 600).unwrap(), 700_000);
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
        assert_eq!(terms.charge_micros(1, 0).unwrap(), 1);
        assert_eq!(terms.charge_micros(0, 0).unwrap(), 0);
    }

    #[test]
    fn credit_amounts_convert_exactly() {
        assert_eq!(credits_to_micros(dec("5000")).unwrap(), 5_000_000_000);
        assert_eq!(credits_to_micros(dec("0.000001")).unwrap(), 1);
        assert!(credits_to_micros(dec("0.0000001")).is_err());
        assert_eq!(micros_to_credits(700_000), dec("0.7"));
    }
}
