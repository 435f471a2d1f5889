//! OpenTelemetry traces: a server span per model request and a client span per upstream
//! attempt, exported over OTLP/HTTP (protobuf) without ever holding up a request.
//!
//! Built only when `telemetry.otlp_endpoint` is set; otherwise there is no [`Traces`] and a
//! request's [`RequestTrace`] is empty, so nothing is built per request. The caller's W3C
//! `traceparent` is continued, and each upstream call carries its client span's.

mod client;
mod export;
mod propagate;
mod span;

use std::time::Duration;

use http::{HeaderMap, Method};
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, SpanExporter};

pub(crate) use span::RequestTrace;

use crate::config::{Problem, TelemetryConfig};
use client::ReqwestClient;
pub(super) use export::describe;
use export::{QueueLimits, QueueProcessor};
pub use export::{SPANS_DROPPED, SPANS_EXPORTED};

/// The process's tracer, when traces are on. Cheap to clone; export stops when the last clone
/// is dropped.
#[derive(Debug, Clone)]
pub struct Traces {
    tracer: SdkTracer,
    /// Kept so that the provider (and the export task's queue) lives as long as the tracer.
    _provider: SdkTracerProvider,
}

impl Traces {
    /// The tracer for `telemetry:`, exporting from a task on the current runtime; `None` when
    /// traces are off.
    pub fn from_config(config: &TelemetryConfig) -> Result<Option<Self>, Problem> {
        let Some(url) = config.traces_url() else {
            return Ok(None);
        };
        let timeout = Duration::from_millis(config.export_timeout_ms);
        let problem = |message: String| Problem::new("telemetry.otlp_endpoint", message);
        let client = ReqwestClient::new(timeout).map_err(|e| problem(e.to_string()))?;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(url)
            .with_timeout(timeout)
            .build()
            .map_err(|e| problem(e.to_string()))?;
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .build();
        exporter.set_resource(&resource);
        let processor = QueueProcessor::start(
            exporter,
            QueueLimits {
                max_queued: config.max_queued_spans,
                max_batch: config.max_export_batch,
                export_timeout: timeout,
            },
        );
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        Ok(Some(Self {
            tracer: provider.tracer("llmgate"),
            _provider: provider,
        }))
    }

    /// Start the server span of a request to a model endpoint (`operation` is its
    /// `gen_ai.operation.name`), continuing the caller's trace when the headers carry one.
    pub(crate) fn request(
        &self,
        headers: &HeaderMap,
        method: &Method,
        path: &str,
        operation: &'static str,
        request_id: &str,
    ) -> RequestTrace {
        let parent = propagate::caller_context(headers);
        RequestTrace::start(
            &self.tracer,
            &parent,
            format!("{method} {path}"),
            operation,
            vec![
                KeyValue::new("gen_ai.operation.name", operation),
                KeyValue::new("http.request.method", method.as_str().to_owned()),
                KeyValue::new("url.path", path.to_owned()),
                KeyValue::new("llmgate.request_id", request_id.to_owned()),
            ],
        )
    }
}
