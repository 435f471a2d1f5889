//! The policy side of routing: what a policy is told (the request's facts, each candidate's
//! state), the `RoutingPolicy` trait it implements, and the ranking helper every built-in
//! strategy is made of. A leaf: the strategies and the gateway build on it.

use std::fmt;
use std::sync::Arc;

use crate::catalog::Deployment;
use crate::power::{PowerLevel, PowerLevelPolicy};

/// What the router knows about the request.
#[derive(Debug, Clone, Copy)]
pub struct RouteFacts<'a> {
    /// The model the client asked for (`auto` included).
    pub model: &'a str,
    /// The power level the request runs at.
    pub power_level: PowerLevel,
    /// That level's settings (output cap, multiplier, `auto`'s choices).
    pub level: &'a PowerLevelPolicy,
    /// An estimate of the prompt's tokens.
    pub prompt_tokens: u64,
    /// The output cap the request goes out with (the request's, capped by the power level).
    pub max_output_tokens: u64,
    /// Whether the client streams: time to first token matters more than total latency then.
    pub stream: bool,
    /// Differs from request to request (the gateway passes a sequence number). The only source
    /// of variety a policy may use, so that its answer stays reproducible.
    pub seed: u64,
}

impl<'a> RouteFacts<'a> {
    /// Facts for a request to `model` with nothing else known.
    pub fn new(model: &'a str, power_level: PowerLevel, level: &'a PowerLevelPolicy) -> Self {
        Self {
            model,
            power_level,
            level,
            prompt_tokens: 0,
            max_output_tokens: u64::from(level.max_tokens),
            stream: false,
            seed: 0,
        }
    }
}

/// The live state of one deployment, as the router sees it at decision time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CandidateState {
    /// Requests in flight right now.
    pub in_flight: u32,
    /// Moving average of whole-request latency, in milliseconds.
    pub latency_ms: Option<f64>,
    /// Moving average of time to first token, in milliseconds.
    pub ttft_ms: Option<f64>,
    /// Skipped until its cooldown ends (or while another request probes it).
    pub cooling_down: bool,
    /// At its own rpm/tpm limit right now.
    pub at_limit: bool,
}

impl CandidateState {
    /// Neither cooling down nor at its limit.
    pub fn is_available(&self) -> bool {
        !self.cooling_down && !self.at_limit
    }
}

/// One deployment the router may pick, with its state.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The deployment: its provider, prices, weight, priority.
    pub deployment: &'a Deployment,
    /// Its live state: load, latency, cooldown, limits.
    pub state: CandidateState,
}

/// Orders candidates. Pure and synchronous: no I/O, no clock, no randomness beyond
/// [`RouteFacts::seed`]; the same inputs give the same answer.
///
/// Rank unavailable candidates ([`CandidateState::is_available`] false) last. The gateway
/// skips them anyway — they are not tried until their cooldown or limit passes — so a policy
/// that ignores state is still safe. Indices left out are not tried.
///
/// # Implementing it
///
/// Local deployments first, then by their `priority`:
///
/// ```
/// use std::sync::Arc;
///
/// use llmgate_core::Gateway;
/// use llmgate_core::catalog::Deployment;
/// use llmgate_core::power::{PowerLevel, PowerLevelPolicy};
/// use llmgate_core::routing::{Candidate, CandidateState, RouteFacts, RoutingPolicy, rank_by_key};
///
/// #[derive(Debug)]
/// struct LocalFirst;
///
/// impl RoutingPolicy for LocalFirst {
///     fn rank(&self, _facts: &RouteFacts<'_>, candidates: &[Candidate<'_>]) -> Vec<usize> {
///         // `rank_by_key` already puts candidates in cooldown or at their limit last.
///         rank_by_key(candidates, |c| (!c.deployment.local, c.deployment.priority))
///     }
/// }
///
/// let cloud = Deployment::new("chat", "openai", "gpt-4o-mini");
/// let mut own = Deployment::new("chat", "ollama", "llama3.2");
/// own.local = true;
/// let idle = CandidateState::default();
/// let candidates = [
///     Candidate { deployment: &cloud, state: idle },
///     Candidate { deployment: &own, state: idle },
/// ];
/// let level = PowerLevelPolicy::default_for(PowerLevel::Balanced);
/// let facts = RouteFacts::new("chat", PowerLevel::Balanced, &level);
/// assert_eq!(LocalFirst.rank(&facts, &candidates), vec![1, 0]);
///
/// let gateway = Gateway::builder().routing_policy(Arc::new(LocalFirst)).build();
/// # drop(gateway);
/// ```
pub trait RoutingPolicy: Send + Sync + fmt::Debug + 'static {
    /// Indices into `candidates`, best first.
    fn rank(&self, facts: &RouteFacts<'_>, candidates: &[Candidate<'_>]) -> Vec<usize>;
}

/// Compile-time check that the trait stays object-safe.
const _: Option<Arc<dyn RoutingPolicy>> = None;

/// Indices ordered by availability first, then by `key` (smallest first), then by
/// configuration order. The building block of every built-in strategy; custom policies may
/// use it too.
pub fn rank_by_key<K: Ord>(
    candidates: &[Candidate<'_>],
    mut key: impl FnMut(&Candidate<'_>) -> K,
) -> Vec<usize> {
    let mut keyed: Vec<(bool, K, usize)> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (!c.state.is_available(), key(c), i))
        .collect();
    // The index is part of the key, so an unstable sort keeps configuration order on ties.
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, _, i)| i).collect()
}

/// Configuration order, with unavailable deployments moved last.
#[derive(Debug, Clone, Copy, Default)]
pub struct InOrder;

impl RoutingPolicy for InOrder {
    fn rank(&self, _facts: &RouteFacts<'_>, candidates: &[Candidate<'_>]) -> Vec<usize> {
        rank_by_key(candidates, |_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_moves_unavailable_last_and_keeps_order_otherwise() {
        let d = Deployment::new("m", "p", "u");
        let cooling = CandidateState {
            cooling_down: true,
            ..Default::default()
        };
        let limited = CandidateState {
            at_limit: true,
            ..Default::default()
        };
        let candidates = [
            Candidate {
                deployment: &d,
                state: cooling,
            },
            Candidate {
                deployment: &d,
                state: CandidateState::default(),
            },
            Candidate {
                deployment: &d,
                state: limited,
            },
            Candidate {
                deployment: &d,
                state: CandidateState::default(),
            },
        ];
        let level = PowerLevelPolicy::default_for(PowerLevel::Eco);
        let facts = RouteFacts::new("m", PowerLevel::Eco, &level);
        assert_eq!(InOrder.rank(&facts, &candidates), vec![1, 3, 0, 2]);
    }
}
