//! `PriceTerms::charge_micros` against a reference in exact rational arithmetic (`i128`
//! numerator and denominator, ceiling division), over many seeded random inputs: plain
//! prompt and output tokens, and every token class (uncached, cache read, cache write,
//! output) at prices of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use llmgate_core::{
    chat::Usage,
    pricing::{Decimal, ModelPrice, PriceTerms, TokenClasses},
};

/// xorshift64*: deterministic, so a failure names a case that replays.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..=max`.
    fn upto(&mut self, max: u64) -> u64 {
        self.next() % (max + 1)
    }

    /// A decimal `mantissa / 10^scale` with `scale <= max_scale` and a value up to about
    /// `max_whole`.
    fn decimal(&mut self, max_scale: u32, max_whole: u64) -> Fixed {
        let scale = self.upto(u64::from(max_scale)) as u32;
        let mantissa = self.upto(max_whole * 10_u64.pow(scale));
        Fixed { mantissa, scale }
    }
}

/// An exact decimal: `mantissa / 10^scale`.
#[derive(Debug, Clone, Copy)]
struct Fixed {
    mantissa: u64,
    scale: u32,
}

impl Fixed {
    fn to_decimal(self) -> Decimal {
        Decimal::new(self.mantissa as i64, self.scale)
    }

    fn denominator(self) -> i128 {
        10_i128.pow(self.scale)
    }
}

/// A fraction `numerator / denominator` (denominator > 0).
#[derive(Debug, Clone, Copy)]
struct Ratio {
    numerator: i128,
    denominator: i128,
}

impl Ratio {
    fn of(value: Fixed) -> Self {
        Ratio {
            numerator: i128::from(value.mantissa),
            denominator: value.denominator(),
        }
    }

    fn int(value: i128) -> Self {
        Ratio {
            numerator: value,
            denominator: 1,
        }
    }

    /// In lowest terms, so the products below stay far inside `i128`.
    fn reduced(numerator: i128, denominator: i128) -> Ratio {
        let divisor = gcd(numerator, denominator).max(1);
        Ratio {
            numerator: numerator / divisor,
            denominator: denominator / divisor,
        }
    }

    fn add(self, other: Ratio) -> Ratio {
        let common =
            self.denominator / gcd(self.denominator, other.denominator) * other.denominator;
        let left = self.numerator * (common / self.denominator);
        let right = other.numerator * (common / other.denominator);
        Ratio::reduced(left.checked_add(right).expect("reference overflow"), common)
    }

    fn mul(self, other: Ratio) -> Ratio {
        // Cancel across first: a/b × c/d = (a/g1 × c/g2) / (b/g2 × d/g1).
        let g1 = gcd(self.numerator, other.denominator).max(1);
        let g2 = gcd(other.numerator, self.denominator).max(1);
        let numerator = (self.numerator / g1)
            .checked_mul(other.numerator / g2)
            .expect("reference overflow");
        let denominator = (self.denominator / g2)
            .checked_mul(other.denominator / g1)
            .expect("reference overflow");
        Ratio::reduced(numerator, denominator)
    }

    fn div_int(self, by: i128) -> Ratio {
        Ratio::reduced(self.numerator, self.denominator * by)
    }

    /// The smallest integer not below the fraction (the fraction is never negative here).
    fn ceil(self) -> i128 {
        (self.numerator + self.denominator - 1) / self.denominator
    }
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// ceil((prompt × in + completion × out) / 1000 × (1 + markup) × multiplier ×
/// credits_per_usd × 10^6).
#[allow(clippy::too_many_arguments)]
fn reference_micros(
    prompt: u64,
    completion: u64,
    input_per_1k: Fixed,
    output_per_1k: Fixed,
    markup: Fixed,
    multiplier: Fixed,
    credits_per_usd: Fixed,
) -> i128 {
    classes_reference(
        &[(prompt, input_per_1k), (completion, output_per_1k)],
        markup,
        multiplier,
        credits_per_usd,
    )
}

/// ceil(Σ tokens × price_per_1k / 1000 × (1 + markup) × multiplier × credits_per_usd × 10^6):
/// the sum is exact, the one rounding is at the end.
fn classes_reference(
    classes: &[(u64, Fixed)],
    markup: Fixed,
    multiplier: Fixed,
    credits_per_usd: Fixed,
) -> i128 {
    classes
        .iter()
        .fold(Ratio::int(0), |sum, (tokens, price)| {
            sum.add(Ratio::int(i128::from(*tokens)).mul(Ratio::of(*price)))
        })
        .div_int(1000)
        .mul(Ratio::int(1).add(Ratio::of(markup)))
        .mul(Ratio::of(multiplier))
        .mul(Ratio::of(credits_per_usd))
        .mul(Ratio::int(1_000_000))
        .ceil()
}

/// Prompt and output tokens with no cache classes.
fn plain(prompt: u64, output: u64) -> TokenClasses {
    TokenClasses {
        uncached_prompt: prompt,
        output,
        ..TokenClasses::default()
    }
}

#[test]
fn charge_matches_exact_rational_arithmetic() {
    let mut random = XorShift(0x5EED_1234_ABCD_0001);
    let mut nonzero = 0;
    for case in 0..20_000 {
        let prompt = random.upto(2_000_000);
        let completion = random.upto(200_000);
        // Prices up to $100 per 1K tokens with up to 6 decimals; tiers' markups up to +200 %
        // with 2 decimals; power multipliers up to 2 with 3 decimals; up to 100,000 credits
        // per dollar with 2 decimals.
        let input = random.decimal(6, 100);
        let output = random.decimal(6, 100);
        let markup = random.decimal(2, 2);
        let multiplier = random.decimal(3, 2);
        let credits_per_usd = random.decimal(2, 100_000);

        let terms = PriceTerms {
            price: ModelPrice::new(input.to_decimal(), output.to_decimal()),
            markup: markup.to_decimal(),
            multiplier: multiplier.to_decimal(),
            credits_per_usd: credits_per_usd.to_decimal(),
        };
        let expected = reference_micros(
            prompt,
            completion,
            input,
            output,
            markup,
            multiplier,
            credits_per_usd,
        );
        let context = format!(
            "case {case}: {prompt}+{completion} tokens, in {input:?} out {output:?} markup \
             {markup:?} × {multiplier:?} × {credits_per_usd:?} credits/$"
        );
        match terms.charge_micros(&plain(prompt, completion)) {
            Ok(charged) => {
                assert_eq!(i128::from(charged), expected, "{context}");
                if charged > 0 {
                    nonzero += 1;
                }
            }
            // Refusing is right only for a charge that does not fit the ledger's i64.
            Err(error) => assert!(
                expected > i128::from(i64::MAX),
                "{context}: refused ({error}) though {expected} fits"
            ),
        }
    }
    assert!(
        nonzero > 15_000,
        "the generator must mostly produce charges"
    );
}

#[test]
fn small_charges_round_up_to_one_micro() {
    let mut random = XorShift(0xC0FF_EE00_0000_0042);
    for _ in 0..5_000 {
        let prompt = random.upto(50);
        let input = Fixed {
            mantissa: random.upto(9),
            scale: 6,
        };
        let terms = PriceTerms {
            price: ModelPrice::new(input.to_decimal(), Decimal::ZERO),
            markup: Decimal::ZERO,
            multiplier: Decimal::new(1, 1),
            credits_per_usd: Decimal::ONE,
        };
        let one = Fixed {
            mantissa: 1,
            scale: 0,
        };
        let tenth = Fixed {
            mantissa: 1,
            scale: 1,
        };
        let zero = Fixed {
            mantissa: 0,
            scale: 0,
        };
        let expected = reference_micros(prompt, 0, input, zero, zero, tenth, one);
        let charged = terms.charge_micros(&plain(prompt, 0)).unwrap();
        assert_eq!(i128::from(charged), expected);
        assert_eq!(charged == 0, prompt == 0 || input.mantissa == 0);
    }
}

#[test]
fn spec_worked_example_is_700000_micros() {
    let terms = PriceTerms {
        price: ModelPrice::new(Decimal::new(2, 3), Decimal::new(2, 3)),
        markup: Decimal::new(4, 1),
        multiplier: Decimal::new(25, 2),
        credits_per_usd: Decimal::from(1000),
    };
    assert_eq!(terms.charge_micros(&plain(400, 600)).unwrap(), 700_000);
    let price = Fixed {
        mantissa: 2,
        scale: 3,
    };
    let reference = reference_micros(
        400,
        600,
        price,
        price,
        Fixed {
            mantissa: 4,
            scale: 1,
        },
        Fixed {
            mantissa: 25,
            scale: 2,
        },
        Fixed {
            mantissa: 1000,
            scale: 0,
        },
    );
    assert_eq!(reference, 700_000);
}

#[test]
fn every_token_class_is_charged_at_its_own_price_exactly() {
    let mut random = XorShift(0x7E57_C1A5_5E50_0003);
    let mut nonzero = 0;
    for case in 0..20_000 {
        let tokens = TokenClasses {
            uncached_prompt: random.upto(500_000),
            cache_read: random.upto(2_000_000),
            cache_write: random.upto(500_000),
            output: random.upto(200_000),
            reasoning: 0,
        };
        let input = random.decimal(6, 100);
        let cache_read = random.decimal(7, 10);
        let cache_write = random.decimal(6, 125);
        let output = random.decimal(6, 100);
        let markup = random.decimal(2, 2);
        let multiplier = random.decimal(3, 2);
        let credits_per_usd = random.decimal(2, 100_000);

        let terms = PriceTerms {
            price: ModelPrice::new(input.to_decimal(), output.to_decimal())
                .with_cache_prices(cache_read.to_decimal(), cache_write.to_decimal()),
            markup: markup.to_decimal(),
            multiplier: multiplier.to_decimal(),
            credits_per_usd: credits_per_usd.to_decimal(),
        };
        let expected = classes_reference(
            &[
                (tokens.uncached_prompt, input),
                (tokens.cache_read, cache_read),
                (tokens.cache_write, cache_write),
                (tokens.output, output),
            ],
            markup,
            multiplier,
            credits_per_usd,
        );
        let context = format!(
            "case {case}: {tokens:?} at in {input:?} read {cache_read:?} write {cache_write:?} \
             out {output:?}, markup {markup:?} × {multiplier:?} × {credits_per_usd:?} credits/$"
        );
        match terms.charge_micros(&tokens) {
            Ok(charged) => {
                assert_eq!(i128::from(charged), expected, "{context}");
                if charged > 0 {
                    nonzero += 1;
                }
            }
            Err(error) => assert!(
                expected > i128::from(i64::MAX),
                "{context}: refused ({error}) though {expected} fits"
            ),
        }
        // A hold prices every prompt token at the dearest class: never below the charge.
        if let (Ok(charged), Ok(held)) = (
            terms.charge_micros(&tokens),
            terms.max_charge_micros(tokens.prompt(), tokens.output),
        ) {
            assert!(held >= charged, "{context}: hold {held} < charge {charged}");
        }
    }
    assert!(
        nonzero > 15_000,
        "the generator must mostly produce charges"
    );
}

#[test]
fn usage_classes_always_add_up_to_the_reported_counts() {
    let mut random = XorShift(0xACC0_0A7E_D000_0004);
    for _ in 0..10_000 {
        let prompt = random.upto(10_000);
        let completion = random.upto(10_000);
        let mut usage = Usage::new(prompt, completion);
        // Upstreams sometimes report more cached or reasoning tokens than there are.
        usage.prompt_tokens_details = Some(llmgate_core::chat::PromptTokensDetails {
            cached_tokens: Some(random.upto(12_000)),
            cache_creation_tokens: Some(random.upto(12_000)),
            ..Default::default()
        });
        usage.completion_tokens_details = Some(llmgate_core::chat::CompletionTokensDetails {
            reasoning_tokens: Some(random.upto(12_000)),
            ..Default::default()
        });
        let classes = usage.classes();
        assert_eq!(classes.prompt(), prompt, "{usage:?}");
        assert_eq!(classes.output, completion);
        assert!(classes.reasoning <= completion);
    }
}

#[test]
fn worked_examples_match_the_exact_reference() {
    let fixed = |mantissa, scale| Fixed { mantissa, scale };
    let (markup, multiplier, per_usd) = (fixed(4, 1), fixed(25, 2), fixed(1000, 0));
    // Anthropic: input 100, cache read 2000, cache write 1000, output 500.
    let anthropic = classes_reference(
        &[
            (100, fixed(3, 3)),
            (2000, fixed(3, 4)),
            (1000, fixed(375, 5)),
            (500, fixed(15, 3)),
        ],
        markup,
        multiplier,
        per_usd,
    );
    assert_eq!(anthropic, 4_252_500);
    // OpenAI: prompt 3000 of which 2000 cached, completion 500.
    let openai = classes_reference(
        &[(1000, fixed(2, 3)), (2000, fixed(5, 4)), (500, fixed(8, 3))],
        markup,
        multiplier,
        per_usd,
    );
    assert_eq!(openai, 2_450_000);
}
