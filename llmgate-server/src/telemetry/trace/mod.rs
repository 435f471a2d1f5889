//! OpenTelemetry traces: a server span per model request and a client span per upstream
//! attempt, exported over OTLP/HTTP (protobuf) without ever holding up a request.
//!
//! Built only when `telemetry.otlp_endpoint` is set; otherwise there is no [`Traces`] and a
//! request's [`RequestTrace`] is empty, so nothing is built per request. The caller's W3C
//! `traceparent` is continued, and each upstream call carries its client span's.
//!
//! The request path fills in spans, encoded as OTLP protobuf as they are set ([`record`]),
//! and writes each that ends into its own thread's batch ([`queue`]); posting the batches
//! ([`export`]) happens on the export task. This replaced the
//! OpenTelemetry SDK and its OTLP exporter: counted with callgrind, a traced request cost about
//! 18,000 instructions on its own path with them (a context and a locked span per span, a
//! boxed value per attribute) and each span about 27,000 more to export (copied into generated
//! types, then encoded), against about 9,000 and 4,300 here.

mod context;
mod counters;
mod export;
mod openings;
mod otlp;
mod proto;
mod queue;
mod record;
mod span;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method};

pub(crate) use span::RequestTrace;

use crate::config::{Problem, TelemetryConfig};
use context::Sampler;
pub(super) use counters::describe;
pub use counters::{SPANS_DROPPED, SPANS_EXPORTED};
use export::Collector;
use queue::{Queue, QueueLimits};
use record::Attr;
use span::Start;

/// The process's tracer, when traces are on. Cheap to clone; export stops when the last clone
/// is dropped.
#[derive(Debug, Clone)]
pub struct Traces {
    queue: Arc<Queue>,
    sampler: Sampler,
}

impl Traces {
    /// The tracer for `telemetry:`, exporting from a task on the current runtime; `None` when
    /// traces are off.
    pub fn from_config(config: &TelemetryConfig) -> Result<Option<Self>, Problem> {
        let Some(url) = config.traces_url() else {
            return Ok(None);
        };
        let timeout = Duration::from_millis(config.export_timeout_ms);
        let collector = Collector::new(url, timeout)
            .map_err(|e| Problem::new("telemetry.otlp_endpoint", e.to_string()))?;
        let queue = export::start(
            collector,
            otlp::Encoder::new(&config.service_name),
            QueueLimits {
                max_queued: config.max_queued_spans,
                max_batch: config.max_export_batch,
                export_timeout: timeout,
                gather: export::BATCH_DELAY,
            },
        );
        Ok(Some(Self {
            queue: Arc::new(queue),
            sampler: Sampler::new(config.sample_ratio),
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
        request_id: &Arc<str>,
    ) -> RequestTrace {
        let start = Start {
            parent: context::caller(headers),
            sampler: self.sampler,
            operation,
        };
        let method = method.as_str();
        RequestTrace::start(&self.queue, start, |ids| {
            let mut span = openings::server_span(ids, method, path, operation);
            span.set(Attr::RequestId, &**request_id);
            span
        })
    }
}
