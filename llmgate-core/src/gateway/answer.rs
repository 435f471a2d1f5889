//! What a request gives back: the answer, how it was served and what it cost.

use std::sync::Arc;
use std::time::Duration;

use super::attempts::AttemptRecord;
use crate::chat::ChatResponse;
use crate::credits::KeySource;
use crate::embeddings::EmbeddingResponse;
use crate::power::PowerLevel;
use crate::pricing::CostBreakdown;

/// How the request was served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The request's id: the caller's, or one the gateway generated; also on the ledger entries.
    pub request_id: Arc<str>,
    /// The configured provider that answered.
    pub provider: String,
    /// The configured model name that answered (differs from the request after a fallback).
    pub model: String,
    /// Upstream calls made (failover and retries), the successful one included.
    pub attempts: u32,
    /// Each of those calls in order: deployment, outcome, latency.
    pub attempt_log: Vec<AttemptRecord>,
    /// Whose key paid the upstream that answered.
    pub key_source: KeySource,
    /// The power level the request ran at (asked for, or the tier's default).
    pub power_level: PowerLevel,
    /// Time spent waiting on upstreams until the answer (JSON) or its first chunk (stream):
    /// every call made, failed ones included, and the backoff between retry rounds. The
    /// rest of a request's time is the gateway's own overhead.
    pub upstream_time: Duration,
}

/// A whole completion and what it cost.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The upstream's answer, with the gateway's `llmgate` cost details in `extra`.
    pub response: ChatResponse,
    /// Which provider and model answered, after how many attempts.
    pub route: RouteInfo,
    /// Micro-credits charged (0 for free models, BYOK and uncharged callers).
    pub cost_micros: i64,
    /// The cost of each token class; its `cost_micros` is the charge above.
    pub cost_breakdown: CostBreakdown,
}

/// A whole embeddings answer and what it cost.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// The vectors, in the encoding the request asked for, with the usage charged by.
    pub response: EmbeddingResponse,
    /// Which provider and model answered, after how many attempts.
    pub route: RouteInfo,
    /// Micro-credits charged (0 for free models, BYOK and uncharged callers).
    pub cost_micros: i64,
    /// The cost by token class (embeddings have only uncached prompt tokens).
    pub cost_breakdown: CostBreakdown,
}
