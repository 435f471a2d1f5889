//! What the pipeline reports through the [`metrics`] facade: upstream calls, time to first
//! token, tokens, charges, fallbacks, retries, rate-limit refusals and open holds.
//!
//! The handles are resolved once, when the gateway is built — one set per configured
//! deployment and one per provider for ad-hoc `provider/model` names (labelled
//! `model="other"`, so a client cannot grow the label set) — so recording on a request's path
//! is a few atomic operations without building labels. Install the metrics recorder (e.g. a
//! Prometheus exporter) *before* building the gateway; handles taken before that stay no-ops.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Unit};

use crate::catalog::Deployment;

/// Upstream calls by provider, model and outcome (`ok` | `error`).
pub const UPSTREAM_REQUESTS: &str = "llmgate_upstream_requests_total";
/// How long each upstream call took to answer (JSON) or to send its first chunk (stream).
pub const UPSTREAM_DURATION: &str = "llmgate_upstream_duration_seconds";
/// Streams: from the gateway receiving the request to the first chunk being ready to send.
pub const TIME_TO_FIRST_TOKEN: &str = "llmgate_time_to_first_token_seconds";
/// Tokens billed by provider, model and kind (`prompt` | `completion`).
pub const TOKENS: &str = "llmgate_tokens_total";
/// Micro-credits charged by provider and model.
pub const CHARGED_MICROS: &str = "llmgate_charged_micros_total";
/// Requests answered by a deployment other than their first choice (labelled with the one
/// that answered).
pub const FALLBACKS: &str = "llmgate_fallbacks_total";
/// Retry rounds started after a round without an answer.
pub const RETRIES: &str = "llmgate_retries_total";
/// Refusals by a rate limit: `scope="user"` (a tier's rpm, answered 429) or
/// `scope="deployment"` (a deployment's rpm, skipped).
pub const RATE_LIMITED: &str = "llmgate_rate_limited_total";
/// Credit holds placed by this process and not yet settled or released.
pub const HOLDS_OUTSTANDING: &str = "llmgate_holds_outstanding";
/// Usage records of uncharged requests that could not be written (the answer was served).
pub const USAGE_RECORD_FAILURES: &str = "llmgate_usage_record_failures_total";
/// Ledger writes the database refuses (they would fail however often they were tried): set
/// aside with an error in the log instead of retried. Any increase deserves an alert.
pub const LEDGER_PARKED_WRITES: &str = "llmgate_ledger_parked_writes_total";

/// Request-log rows dropped because the log's queue was full.
pub const REQUEST_LOG_DROPPED: &str = "llmgate_request_log_dropped_total";
/// Request-log rows lost because their batch could not be written.
pub const REQUEST_LOG_WRITE_FAILURES: &str = "llmgate_request_log_write_failures_total";

/// The label value for models that are not configured.
pub const OTHER_MODEL: &str = "other";

/// Give every metric above its help text and unit. Call once after installing a recorder.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        UPSTREAM_REQUESTS,
        "Upstream calls by provider, model and outcome."
    );
    describe_histogram!(
        UPSTREAM_DURATION,
        Unit::Seconds,
        "Upstream call latency: until the answer (JSON) or the first chunk (stream)."
    );
    describe_histogram!(
        TIME_TO_FIRST_TOKEN,
        Unit::Seconds,
        "Streams: from receiving the request to the first chunk being ready to send."
    );
    describe_counter!(TOKENS, "Tokens billed, by provider, model and kind.");
    describe_counter!(
        CHARGED_MICROS,
        "Micro-credits charged, by provider and model."
    );
    describe_counter!(
        FALLBACKS,
        "Requests answered by a deployment other than their first choice."
    );
    describe_counter!(
        RETRIES,
        "Retry rounds started after a round without an answer."
    );
    describe_counter!(
        RATE_LIMITED,
        "Refusals by a rate limit, by scope (user: answered 429; deployment: skipped)."
    );
    describe_gauge!(
        HOLDS_OUTSTANDING,
        "Credit holds placed by this process and not yet settled or released."
    );
    describe_counter!(
        USAGE_RECORD_FAILURES,
        "Usage records of uncharged requests that could not be written."
    );
    describe_counter!(
        LEDGER_PARKED_WRITES,
        "Ledger writes the database refused, set aside instead of retried (alert on any)."
    );
}

/// The handles of one deployment (or of one provider's ad-hoc models).
#[derive(Debug, Clone)]
pub(crate) struct DeploymentMeters {
    pub upstream_ok: Counter,
    pub upstream_failed: Counter,
    pub upstream_seconds: Histogram,
    pub first_token_seconds: Histogram,
    pub prompt_tokens: Counter,
    pub completion_tokens: Counter,
    pub charged_micros: Counter,
    pub fallbacks: Counter,
}

impl DeploymentMeters {
    fn new(provider: &str, model: &str) -> Self {
        let labels = [
            ("provider", provider.to_owned()),
            ("model", model.to_owned()),
        ];
        let with = |key: &'static str, value: &'static str| {
            let mut all: Vec<(&'static str, String)> = labels.to_vec();
            all.push((key, value.to_owned()));
            all
        };
        Self {
            upstream_ok: metrics::counter!(UPSTREAM_REQUESTS, &with("outcome", "ok")),
            upstream_failed: metrics::counter!(UPSTREAM_REQUESTS, &with("outcome", "error")),
            upstream_seconds: metrics::histogram!(UPSTREAM_DURATION, &labels),
            first_token_seconds: metrics::histogram!(TIME_TO_FIRST_TOKEN, &labels),
            prompt_tokens: metrics::counter!(TOKENS, &with("kind", "prompt")),
            completion_tokens: metrics::counter!(TOKENS, &with("kind", "completion")),
            charged_micros: metrics::counter!(CHARGED_MICROS, &labels),
            fallbacks: metrics::counter!(FALLBACKS, &labels),
        }
    }

    fn noop() -> Self {
        Self {
            upstream_ok: Counter::noop(),
            upstream_failed: Counter::noop(),
            upstream_seconds: Histogram::noop(),
            first_token_seconds: Histogram::noop(),
            prompt_tokens: Counter::noop(),
            completion_tokens: Counter::noop(),
            charged_micros: Counter::noop(),
            fallbacks: Counter::noop(),
        }
    }

    /// One upstream call ended after `took`.
    pub fn upstream_call(&self, took: Duration, ok: bool) {
        self.upstream_seconds.record(took.as_secs_f64());
        if ok {
            self.upstream_ok.increment(1);
        } else {
            self.upstream_failed.increment(1);
        }
    }

    /// What a finished request consumed and was charged.
    pub fn billed(&self, prompt_tokens: u64, completion_tokens: u64, charged_micros: i64) {
        self.prompt_tokens.increment(prompt_tokens);
        self.completion_tokens.increment(completion_tokens);
        self.charged_micros
            .increment(u64::try_from(charged_micros).unwrap_or(0));
    }
}

/// Every handle the gateway records to.
#[derive(Debug)]
pub(crate) struct GatewayMetrics {
    /// By catalog position, like the deployment states.
    deployments: Box<[Arc<DeploymentMeters>]>,
    /// Ad-hoc deployments, by provider.
    ad_hoc: HashMap<String, Arc<DeploymentMeters>>,
    unknown: Arc<DeploymentMeters>,
    pub retries: Counter,
    pub user_rate_limited: Counter,
    pub deployment_rate_limited: Counter,
    pub holds_outstanding: Gauge,
    pub usage_record_failures: Counter,
}

impl GatewayMetrics {
    pub fn new<'a>(
        deployments: &[Arc<Deployment>],
        providers: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        Self {
            deployments: deployments
                .iter()
                .map(|d| Arc::new(DeploymentMeters::new(&d.provider, &d.name)))
                .collect(),
            ad_hoc: providers
                .into_iter()
                .map(|p| {
                    (
                        p.to_owned(),
                        Arc::new(DeploymentMeters::new(p, OTHER_MODEL)),
                    )
                })
                .collect(),
            unknown: Arc::new(DeploymentMeters::noop()),
            retries: metrics::counter!(RETRIES),
            user_rate_limited: metrics::counter!(RATE_LIMITED, "scope" => "user"),
            deployment_rate_limited: metrics::counter!(RATE_LIMITED, "scope" => "deployment"),
            holds_outstanding: metrics::gauge!(HOLDS_OUTSTANDING),
            usage_record_failures: metrics::counter!(USAGE_RECORD_FAILURES),
        }
    }

    /// The handles of a planned deployment: its own when configured (`slot`), else its
    /// provider's `other` set.
    pub fn deployment(&self, slot: Option<usize>, provider: &str) -> &Arc<DeploymentMeters> {
        slot.and_then(|slot| self.deployments.get(slot))
            .or_else(|| self.ad_hoc.get(provider))
            .unwrap_or(&self.unknown)
    }
}
