//! The `RoutingPolicy` trait and the built-in strategies: which deployments to try, in which
//! order.
//!
//! A policy sees the request's facts and a snapshot of each candidate's live state, and returns
//! indices, best first. It does no I/O, reads no clock and draws no hidden randomness: the same
//! inputs give the same order. Everything else — which models are candidates (power level,
//! fallbacks, privacy, context window), skipping deployments in cooldown, retries — is the
//! gateway's job.

mod policy;
mod strategies;
mod strategy;

pub use crate::health::SharedCooldowns;
pub use policy::{Candidate, CandidateState, InOrder, RouteFacts, RoutingPolicy, rank_by_key};
pub use strategies::{ByPriority, Cheapest, Fastest, LeastBusy, Weighted};
pub use strategy::Strategy;
