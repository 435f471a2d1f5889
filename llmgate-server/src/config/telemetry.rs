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

#[cfg(test)]
mod tests {
    use crate::config::{Config, Env};

    fn problems(yaml: &str) -> Vec<String> {
        let config = Config::from_yaml(yaml, &Env::from_pairs([("X", "1")])).unwrap();
        config.validate().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn traces_are_off_by_default_and_posted_under_v1_traces() {
        let config = Config::from_yaml("{}", &Env::from_pairs([("X", "1")])).unwrap();
        assert_eq!(config.telemetry.traces_url(), None);
        let config = Config::from_yaml(
            "telemetry: { otlp_endpoint: 'http://collector:4318/' }",
            &Env::from_pairs([("X", "1")]),
        )
        .unwrap();
        assert_eq!(
            config.telemetry.traces_url().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
    }

    #[test]
    fn every_bad_value_is_named_by_its_path() {
        let found = problems(
            "telemetry: { otlp_endpoint: 'collector:4318', service_name: ' ', sample_ratio: 1.5, \
             max_queued_spans: 0, max_export_batch: 0, export_timeout_ms: 0 }",
        );
        for path in [
            "telemetry.otlp_endpoint",
            "telemetry.service_name",
            "telemetry.sample_ratio",
            "telemetry.max_queued_spans",
            "telemetry.max_export_batch",
            "telemetry.export_timeout_ms",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(&format!("{path}:"))),
                "{path} in {found:#?}"
            );
        }
        assert!(
            problems("telemetry: { otlp_endpoint: 'http://c:4318?x=1' }")
                .iter()
                .any(|p| p.contains("without a query"))
        );
        assert!(
            problems("telemetry: { otlp_endpoint: 'https://c:4318', sample_ratio: 0.25 }")
                .is_empty()
        );
    }
}
