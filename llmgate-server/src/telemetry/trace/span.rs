//! The spans of one request: the server span the handlers record on, and a client span per
//! upstream attempt under it.
//!
//! Attribute names follow OpenTelemetry's GenAI conventions (`gen_ai.*`), with the gateway's
//! own under `llmgate.*`. The server span ends when its last handle is dropped: a whole
//! answer's when the handler returns, a stream's when the stream ends or the client leaves.

use std::sync::{Arc, Mutex, MutexGuard};

use llmgate_core::Error;
use llmgate_core::catalog::Deployment;
use llmgate_core::gateway::{CompletionStream, RouteInfo};
use llmgate_core::sync;
use llmgate_core::trace::{Answer, AttemptSpan, RequestTracer, Traceparent};

use super::context::{self, SpanId, TraceId};
use super::openings;
use super::queue::Queue;
use super::record::{Attr, SpanRecord};

/// The server span of a traced request, or nothing when traces are off (every method is then
/// a no-op). Cheap to clone; the span ends when the last clone is dropped.
#[derive(Clone, Default)]
pub(crate) struct RequestTrace(Option<Arc<Recording>>);

impl std::fmt::Debug for RequestTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "RequestTrace(on)"
        } else {
            "RequestTrace(off)"
        })
    }
}

/// Where a request's spans are: its trace, its server span (the parent of the attempts) and,
/// when the trace is sampled, the server span's data being filled in.
pub(super) struct Recording {
    trace_id: TraceId,
    span_id: SpanId,
    trace_state: Option<Arc<str>>,
    operation: &'static str,
    /// `None` when the trace is not sampled: ids are still passed on, nothing is recorded.
    span: Option<Mutex<SpanRecord>>,
    queue: Arc<Queue>,
}

impl Recording {
    fn span(&self) -> Option<MutexGuard<'_, SpanRecord>> {
        // A poisoned lock still holds a usable span.
        let span = self.span.as_ref()?;
        Some(sync::lock(span))
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Some(span) = &mut self.span {
            let span = sync::get_mut(span);
            span.end();
            self.queue.push(span);
        }
    }
}

/// What a server span starts from.
pub(super) struct Start {
    pub parent: Option<context::Parent>,
    pub sampler: context::Sampler,
    pub operation: &'static str,
}

impl RequestTrace {
    /// Start the server span (`start.sampler` decides for a new trace; a caller's trace keeps
    /// its caller's decision), made by `open` from its trace and span ids when sampled.
    pub(super) fn start(
        queue: &Arc<Queue>,
        start: Start,
        open: impl FnOnce((TraceId, SpanId)) -> SpanRecord,
    ) -> Self {
        let span_id = context::new_span_id();
        let (trace_id, sampled, trace_state, parent_span_id) = match start.parent {
            Some(parent) => (
                parent.trace_id,
                parent.sampled,
                parent.trace_state,
                Some(parent.span_id),
            ),
            None => {
                let trace_id = context::new_trace_id();
                (trace_id, start.sampler.samples(&trace_id), None, None)
            }
        };
        let span = sampled.then(|| {
            let mut span = open((trace_id, span_id));
            span.parent_span_id = parent_span_id;
            span.remote_parent = parent_span_id.is_some();
            span.trace_state.clone_from(&trace_state);
            Mutex::new(span)
        });
        Self(Some(Arc::new(Recording {
            trace_id,
            span_id,
            trace_state,
            operation: start.operation,
            span,
            queue: queue.clone(),
        })))
    }

    fn set(&self, attributes: impl FnOnce(&mut SpanRecord)) {
        if let Some(mut span) = self.0.as_ref().and_then(|recording| recording.span()) {
            attributes(&mut span);
        }
    }

    /// Who is asking (`llmgate.user`).
    pub fn user(&self, user_id: &str) {
        self.set(|span| span.set(Attr::User, user_id));
    }

    /// The model the request asked for, once its body is read.
    pub fn requested(&self, model: &str, stream: bool) {
        self.set(|span| {
            span.set(Attr::RequestModel, model);
            span.set(Attr::Stream, stream);
        });
    }

    /// Which deployment answered, after how many attempts.
    pub fn routed(&self, route: &RouteInfo) {
        self.set(|span| {
            span.set(Attr::ProviderName, &route.provider);
            span.set(Attr::ResponseModel, &route.model);
            span.set(Attr::Attempts, i64::from(route.attempts));
            span.set(Attr::KeySource, route.key_source.as_str());
        });
    }

    /// The tokens the request was charged by, and the charge.
    pub fn charged(&self, input_tokens: u64, output_tokens: Option<u64>, cost_micros: i64) {
        self.set(|span| {
            span.set(Attr::InputTokens, input_tokens);
            span.set(Attr::CostMicros, cost_micros);
            if let Some(output) = output_tokens {
                span.set(Attr::OutputTokens, output);
            }
        });
    }

    /// The request failed (before its answer, or a stream after its first byte).
    pub fn failed(&self, error: &Error) {
        self.set(|span| {
            span.set(Attr::ErrorType, error_type(error));
            if error.status() >= 500 {
                span.fail(error.message());
            }
        });
    }

    /// The HTTP status the client got.
    pub fn responded(&self, status: u16) {
        self.set(|span| span.set(Attr::StatusCode, i64::from(status)));
    }

    /// The core's hook for this request's upstream attempts, when traced.
    pub fn tracer(&self) -> Option<Arc<dyn RequestTracer>> {
        self.0
            .clone()
            .map(|recording| recording as Arc<dyn RequestTracer>)
    }

    /// The stream, with its usage, cost and any failure recorded as they pass; the span ends
    /// with the stream.
    pub fn watch_stream(&self, stream: CompletionStream) -> CompletionStream {
        if self.0.is_none() {
            return stream;
        }
        let trace = self.clone();
        stream.inspect(move |item| match item {
            Ok(chunk) => {
                if let (Some(usage), Some(cost)) = (&chunk.usage, chunk.cost()) {
                    trace.charged(
                        usage.prompt_tokens,
                        Some(usage.completion_tokens),
                        cost.cost_micros,
                    );
                }
            }
            Err(error) => trace.failed(error),
        })
    }
}

impl RequestTracer for Recording {
    fn attempt(self: Arc<Self>, deployment: &Deployment) -> Box<dyn AttemptSpan> {
        let span_id = context::new_span_id();
        let sampled = self.span.is_some();
        let span = sampled.then(|| {
            let mut span =
                openings::client_span((self.trace_id, span_id), self.operation, deployment);
            span.parent_span_id = Some(self.span_id);
            span.trace_state.clone_from(&self.trace_state);
            span
        });
        Box::new(Attempt {
            traceparent: Traceparent::new(&self.trace_id, &span_id, sampled),
            span,
            request: self,
        })
    }
}

/// One upstream call's client span; queued when it ends (or is dropped mid-call).
struct Attempt {
    traceparent: Traceparent,
    /// `None` when the trace is not sampled.
    span: Option<SpanRecord>,
    /// The request's spans, whose queue this one goes to (its server span ends after it).
    request: Arc<Recording>,
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(span) = &mut self.span {
            span.end();
            self.request.queue.push(span);
        }
    }
}

impl AttemptSpan for Attempt {
    fn traceparent(&self) -> Option<Traceparent> {
        Some(self.traceparent)
    }

    fn answered(mut self: Box<Self>, answer: Answer<'_>) {
        let Some(span) = &mut self.span else {
            return;
        };
        if let Some(model) = answer.model {
            span.set(Attr::ResponseModel, model);
        }
        if let Some(input) = answer.input_tokens {
            span.set(Attr::InputTokens, input);
        }
        if let Some(output) = answer.output_tokens {
            span.set(Attr::OutputTokens, output);
        }
    }

    fn unsent(mut self: Box<Self>) {
        self.span = None;
    }

    fn failed(mut self: Box<Self>, error: &Error) {
        let Some(span) = &mut self.span else {
            return;
        };
        span.set(Attr::ErrorType, error_type(error));
        if let Some(status) = error.upstream_status() {
            span.set(Attr::StatusCode, i64::from(status));
        }
        span.fail(error.message());
    }
}

/// `error.type`: the error's code when it has one (`model_not_found`), else its type
/// (`upstream_error`).
fn error_type(error: &Error) -> &str {
    error.code().unwrap_or_else(|| error.kind().type_name())
}
