//! The spans of one request: the server span the handlers record on, and a client span per
//! upstream attempt under it.
//!
//! Attribute names follow OpenTelemetry's GenAI conventions (`gen_ai.*`), with the gateway's
//! own under `llmgate.*`. The server span ends when its last handle is dropped: a whole
//! answer's when the handler returns, a stream's when the stream ends or the client leaves.

use std::sync::Arc;

use llmgate_core::Error;
use llmgate_core::catalog::Deployment;
use llmgate_core::gateway::{CompletionStream, RouteInfo};
use llmgate_core::trace::{Answer, AttemptSpan, RequestTracer};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

use super::propagate::traceparent_of;

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

struct Recording {
    /// The caller's context with the server span in it: the parent of the attempts.
    cx: Context,
    tracer: SdkTracer,
    operation: &'static str,
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.cx.span().end();
    }
}

impl RequestTrace {
    pub(super) fn start(
        tracer: &SdkTracer,
        parent: &Context,
        name: String,
        operation: &'static str,
        attributes: Vec<KeyValue>,
    ) -> Self {
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(tracer, parent);
        Self(Some(Arc::new(Recording {
            cx: parent.with_span(span),
            tracer: tracer.clone(),
            operation,
        })))
    }

    fn set(&self, attributes: impl FnOnce() -> Vec<KeyValue>) {
        if let Some(recording) = &self.0 {
            recording.cx.span().set_attributes(attributes());
        }
    }

    /// Who is asking (`llmgate.user`).
    pub fn user(&self, user_id: &str) {
        self.set(|| vec![KeyValue::new("llmgate.user", user_id.to_owned())]);
    }

    /// The model the request asked for, once its body is read.
    pub fn requested(&self, model: &str, stream: bool) {
        self.set(|| {
            vec![
                KeyValue::new("gen_ai.request.model", model.to_owned()),
                KeyValue::new("llmgate.stream", stream),
            ]
        });
    }

    /// Which deployment answered, after how many attempts.
    pub fn routed(&self, route: &RouteInfo) {
        self.set(|| {
            vec![
                KeyValue::new("gen_ai.provider.name", route.provider.clone()),
                KeyValue::new("gen_ai.response.model", route.model.clone()),
                KeyValue::new("llmgate.attempts", i64::from(route.attempts)),
                KeyValue::new("llmgate.key_source", route.key_source.as_str()),
            ]
        });
    }

    /// The tokens the request was charged by, and the charge.
    pub fn charged(&self, input_tokens: u64, output_tokens: Option<u64>, cost_micros: i64) {
        self.set(|| {
            let mut attributes = vec![
                KeyValue::new("gen_ai.usage.input_tokens", to_i64(input_tokens)),
                KeyValue::new("llmgate.cost_micros", cost_micros),
            ];
            if let Some(output) = output_tokens {
                attributes.push(KeyValue::new("gen_ai.usage.output_tokens", to_i64(output)));
            }
            attributes
        });
    }

    /// The request failed (before its answer, or a stream after its first byte).
    pub fn failed(&self, error: &Error) {
        if let Some(recording) = &self.0 {
            let span = recording.cx.span();
            span.set_attribute(KeyValue::new("error.type", error_type(error)));
            if error.status() >= 500 {
                span.set_status(Status::error(error.message().to_owned()));
            }
        }
    }

    /// The HTTP status the client got.
    pub fn responded(&self, status: u16) {
        self.set(|| {
            vec![KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            )]
        });
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
    fn attempt(&self, deployment: &Deployment) -> Box<dyn AttemptSpan> {
        let span = self
            .tracer
            .span_builder(format!("{} {}", self.operation, deployment.upstream_model))
            .with_kind(SpanKind::Client)
            .with_attributes(vec![
                KeyValue::new("gen_ai.operation.name", self.operation),
                KeyValue::new("gen_ai.provider.name", deployment.provider.clone()),
                KeyValue::new("gen_ai.request.model", deployment.upstream_model.clone()),
                KeyValue::new("llmgate.model", deployment.name.clone()),
            ])
            .start_with_context(&self.tracer, &self.cx);
        let traceparent = traceparent_of(span.span_context());
        Box::new(Attempt { span, traceparent })
    }
}

/// One upstream call's client span.
struct Attempt {
    span: opentelemetry_sdk::trace::Span,
    traceparent: Option<Arc<str>>,
}

impl AttemptSpan for Attempt {
    fn traceparent(&self) -> Option<Arc<str>> {
        self.traceparent.clone()
    }

    fn answered(mut self: Box<Self>, answer: Answer<'_>) {
        if let Some(model) = answer.model {
            self.span
                .set_attribute(KeyValue::new("gen_ai.response.model", model.to_owned()));
        }
        if let Some(input) = answer.input_tokens {
            self.span
                .set_attribute(KeyValue::new("gen_ai.usage.input_tokens", to_i64(input)));
        }
        if let Some(output) = answer.output_tokens {
            self.span
                .set_attribute(KeyValue::new("gen_ai.usage.output_tokens", to_i64(output)));
        }
        self.span.end();
    }

    fn failed(mut self: Box<Self>, error: &Error) {
        self.span
            .set_attribute(KeyValue::new("error.type", error_type(error)));
        if let Some(status) = error.upstream_status() {
            self.span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        self.span
            .set_status(Status::error(error.message().to_owned()));
        self.span.end();
    }
}

/// `error.type`: the error's code when it has one (`model_not_found`), else its type
/// (`upstream_error`).
fn error_type(error: &Error) -> String {
    error
        .code()
        .unwrap_or_else(|| error.kind().type_name())
        .to_owned()
}

fn to_i64(tokens: u64) -> i64 {
    i64::try_from(tokens).unwrap_or(i64::MAX)
}
