//! The built-in routing strategies. Each is a sort key over [`rank_by_key`]: unavailable
//! deployments last, ties in configuration order.

use rust_decimal::Decimal;

use super::policy::{Candidate, RouteFacts, RoutingPolicy, rank_by_key};
use crate::mix::unit_interval;

/// Cheapest first: the deployment's price for this request's prompt plus its output cap. Free
/// deployments cost zero and come first; unpriced ones (usable only with BYOK) come last.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cheapest;

impl RoutingPolicy for Cheapest {
    fn rank(&self, facts: &RouteFacts<'_>, candidates: &[Candidate<'_>]) -> Vec<usize> {
        let prompt = u128::from(facts.prompt_tokens);
        let output = u128::from(facts.max_output_tokens);
        rank_by_key(candidates, |c| match c.deployment.price {
            Some(price) => {
                let estimate = prompt
                    .saturating_mul(pico(price.input_per_1k))
                    .saturating_add(output.saturating_mul(pico(price.output_per_1k)));
                (false, estimate)
            }
            None => (true, 0),
        })
    }
}

/// A price in units of 10⁻¹² (exact up to 12 decimals, truncated beyond), as an integer that
/// orders like the decimal and is cheap to multiply and compare.
fn pico(price: Decimal) -> u128 {
    if price.is_sign_negative() {
        return 0;
    }
    let mantissa = price.mantissa().unsigned_abs();
    // A decimal's scale is at most 28, so both indices are in the table.
    let scale = (price.scale() as usize).min(28);
    if scale <= 12 {
        mantissa.saturating_mul(POW10[12 - scale])
    } else {
        mantissa / POW10[scale - 12]
    }
}

/// 10⁰ … 10²⁸ (a decimal's scale is at most 28).
const POW10: [u128; 29] = {
    let mut table = [1u128; 29];
    let mut i = 1;
    while i < table.len() {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// Fastest first by moving average: time to first token for streams, whole-request latency
/// otherwise (each falling back to the other). Deployments with no measurement yet come first,
/// so that a new deployment gets measured instead of starved.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fastest;

impl RoutingPolicy for Fastest {
    fn rank(&self, facts: &RouteFacts<'_>, candidates: &[Candidate<'_>]) -> Vec<usize> {
        rank_by_key(candidates, |c| {
            let state = c.state;
            let measured = if facts.stream {
                state.ttft_ms.or(state.latency_ms)
            } else {
                state.latency_ms.or(state.ttft_ms)
            };
            // Whole microseconds order like the float and are `Ord`.
            measured.map_or(0, |ms| (ms.max(0.0) * 1000.0) as u64)
        })
    }
}

/// Fewest requests in flight first.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastBusy;

impl RoutingPolicy for LeastBusy {
    fn rank(&self, _facts: &RouteFacts<'_>, candidates: &[Candidate<'_>]) -> Vec<usize> {
        rank_by_key(candidates, |c| c.state.in_flight)
    }
}

/// A weighted shuffle: a deployment comes first with probability `weight / total weight`,
/// and so on down the list. Reproducible: the order depends only on [`RouteFacts::seed`] and
/// the candidates. Weight 0 means "only when nothing else is left".
#[derive(Debug, Clone, Copy, Default)]
pub struct Weighted;

impl RoutingPolicy for Weighted {
    fn rank(&self, facts: &RouteFacts<'_>, candidates: &[Candidate<'_>]) -> Vec<usize> {
        let mut position = 0u64;
        rank_by_key(candidates, |c| {
            position += 1;
            let weight = c.deployment.weight;
            if weight == 0 {
                return (true, 0);
            }
            // Efraimidis–Spirakis: the smallest -ln(u)/w wins, which picks each candidate with
            // probability proportional to its weight. Positive floats order like their bits.
            let u = unit_interval(facts.seed, position);
            (false, (-u.ln() / f64::from(weight)).to_bits())
        })
    }
}

/// Lowest `priority` number first (1 before 2), then configuration order.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByPriority;

impl RoutingPolicy for ByPriority {
    fn rank(&self, _facts: &RouteFacts<'_>, candidates: &[Candidate<'_>]) -> Vec<usize> {
        rank_by_key(candidates, |c| c.deployment.priority)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn pico_prices_order_like_the_decimals() {
        let prices = [
            "0",
            "0.0000001",
            "0.0005",
            "0.002",
            "0.0020000001",
            "0.01",
            "15",
        ];
        let picos: Vec<u128> = prices
            .iter()
            .map(|p| pico(Decimal::from_str(p).unwrap()))
            .collect();
        assert!(picos.windows(2).all(|w| w[0] < w[1]), "{picos:?}");
        assert_eq!(pico(Decimal::from_str("0.002").unwrap()), 2_000_000_000);
    }
}
