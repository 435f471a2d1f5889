//! The built-in routing strategies. Each is a sort key over [`rank_by_key`]: unavailable
//! deployments last, ties in configuration order.

use rust_decimal::Decimal;

use super::{Candidate, RouteFacts, RoutingPolicy, rank_by_key};
use crate::mix::unit_interval;

/// Cheapest first: the deployment's price for this request's prompt plus its output cap. Free
/// deployments cost zero and come first; unpriced ones (usable only with BYOK) come last.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cheapest;

impl RoutingPolicy for Cheapest {
    fn rank(&self, facts: &RouteFacts<'_>, candidates: &[Candidate<'_>]) -> Vec<usize> {
        let prompt = Decimal::from(facts.prompt_tokens);
        let output = Decimal::from(facts.max_output_tokens);
        rank_by_key(candidates, |c| match c.deployment.price {
            Some(price) if price.is_free() => (false, Decimal::ZERO),
            Some(price) => {
                let estimate = prompt
                    .checked_mul(price.input_per_1k)
                    .zip(output.checked_mul(price.output_per_1k))
                    .and_then(|(a, b)| a.checked_add(b))
                    .unwrap_or(Decimal::MAX);
                (false, estimate)
            }
            None => (true, Decimal::ZERO),
        })
    }
}

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
