//! `telemetry:` — OpenTelemetry traces, exported over OTLP/HTTP (protobuf). Off unless
//! `otlp_endpoint` is set.

use serde::Deserialize;

/// `telemetry:` — where traces go and how many are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL (`http://127.0.0.1:4318`); spans are posted to
    /// `{otlp_endpoint}/v1/traces`. No traces are built without it.
    pub otlp_endpoint: Option<String>,
    /// `service.name` on every span.
    pub service_name: String,
    /// The share of new traces recorded, 0 to 1. A caller's `traceparent` decides for its own
    /// trace (sampled or not), so a trace is never half recorded.
    pub sample_ratio: f64,
    /// Finished spans waiting for export at most; beyond it new spans are dropped and counted.
    pub max_queued_spans: usize,
    /// Spans sent per export request at most.
    pub max_export_batch: usize,
    /// How long one export may take before it is abandoned (its spans counted as dropped).
    pub export_timeout_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "llmgate".to_owned(),
            sample_ratio: 1.0,
            max_queued_spans: 4_096,
            max_export_batch: 512,
            export_timeout_ms: 10_000,
        }
    }
}

impl TelemetryConfig {
    /// The URL spans are posted to, when traces are on.
    pub fn traces_url(&self) -> Option<String> {
        let base = self.otlp_endpoint.as_deref()?;
        Some(format!("{}/v1/traces", base.trim_end_matches('/')))
    }
}
