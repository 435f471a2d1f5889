//! The `RoutingPolicy` trait: which deployments to try, in which order.

use std::sync::Arc;

use crate::catalog::Deployment;
use crate::power::{PowerLevel, PowerLevelPolicy};

/// What the router knows about the request.
#[derive(Debug, Clone, Copy)]
pub struct RouteFacts<'a> {
    /// The model the client asked for (`auto` included).
    pub model: &'a str,
    pub power_level: PowerLevel,
    pub level: &'a PowerLevelPolicy,
    /// An estimate of the prompt's tokens.
    pub prompt_tokens: u64,
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
    /// Skipped until its cooldown ends.
    pub cooling_down: bool,
    /// At its own rpm/tpm limit this minute.
    pub at_limit: bool,
}

/// One deployment the router may pick, with its state.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub deployment: &'a Deployment,
    pub state: CandidateState,
}

/// Orders candidates. Pure and synchronous: no I/O, no clock, no randomness it does not own;
/// the same inputs give the same answer.
pub trait RoutingPolicy: Send + Sync + std::fmt::Debug + 'static {
    /// Indices into `candidates`, best first. Indices left out are not tried.
    fn rank(&self, facts: &RouteFacts<'_>, candidates: &[Candidate<'_>]) -> Vec<usize>;
}

/// Compile-time check that the trait stays object-safe.
const _: Option<Arc<dyn RoutingPolicy>> = None;

/// Configuration order, with deployments in cooldown or at their limit moved last.
#[derive(Debug, Clone, Copy, Default)]
pub struct InOrder;

impl RoutingPolicy for InOrder {
    fn rank(&self, _facts: &RouteFacts<'_>, candidates: &[Candidate<'_>]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        order.sort_by_key(|&i| {
            let state = candidates[i].state;
            state.cooling_down || state.at_limit
        });
        order
    }
}
