//! A test OpenTelemetry collector: `POST /v1/traces` over loopback HTTP, OTLP protobuf
//! (`application/x-protobuf`) decoded with the protocol's own generated types into flat spans
//! a test can assert on.
//!
//! ```no_run
//! use llmgate_testkit::otlp::FakeCollector;
//!
//! # async fn demo() {
//! let collector = FakeCollector::start().await;
//! // configure `telemetry.otlp_endpoint: collector.endpoint()`, send requests, then:
//! let spans = collector.wait_for(2, std::time::Duration::from_secs(5)).await;
//! assert_eq!(spans[0].attribute("gen_ai.operation.name"), Some("chat".into()));
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use prost::Message;

use crate::{FakeUpstream, Recorded, Reply};

/// A span kind as OTLP numbers it.
pub const KIND_SERVER: i32 = 2;
/// A span kind as OTLP numbers it.
pub const KIND_CLIENT: i32 = 3;
/// `Status.code` of a span marked as failed.
pub const STATUS_ERROR: i32 = 2;

/// An attribute's value, as far as a test compares it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Double(f64),
    /// Arrays, maps and bytes, described.
    Other(String),
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Str(text.to_owned())
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(text) | Value::Other(text) => f.write_str(text),
            Value::Int(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Double(x) => write!(f, "{x}"),
        }
    }
}

/// One received span; ids in lowercase hex as `traceparent` writes them.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// [`KIND_SERVER`], [`KIND_CLIENT`], ...
    pub kind: i32,
    pub attributes: BTreeMap<String, Value>,
    /// `service.name` of the resource the span came with.
    pub service_name: Option<String>,
    /// 0 unset, 1 ok, [`STATUS_ERROR`].
    pub status_code: i32,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
}

impl Span {
    pub fn attribute(&self, key: &str) -> Option<Value> {
        self.attributes.get(key).cloned()
    }

    /// The attribute as text (`None` when missing); numbers and booleans are written out.
    pub fn text(&self, key: &str) -> Option<String> {
        self.attributes.get(key).map(ToString::to_string)
    }

    /// The W3C `traceparent` naming this span as the parent (sampled flag set).
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }
}

/// A collector on `127.0.0.1` that accepts every export. It stops when dropped.
#[derive(Debug)]
pub struct FakeCollector {
    server: FakeUpstream,
}

impl FakeCollector {
    pub async fn start() -> Self {
        let server = FakeUpstream::start().await;
        // An empty ExportTraceServiceResponse is zero bytes of protobuf.
        server.set_default(Reply::status(200).header("content-type", "application/x-protobuf"));
        Self { server }
    }

    /// The base URL for `telemetry.otlp_endpoint` (spans arrive at `/v1/traces` under it).
    pub fn endpoint(&self) -> String {
        self.server.url()
    }

    /// Answer the next `count` exports with `status` instead (a failing collector).
    pub fn refuse_next(&self, count: usize, status: u16) {
        for _ in 0..count {
            self.server.push(Reply::status(status));
        }
    }

    /// How many export requests arrived.
    pub fn exports(&self) -> usize {
        self.server.request_count()
    }

    /// Every span received so far, in arrival order.
    ///
    /// # Panics
    /// When a request is not a protobuf `POST /v1/traces` whose body decodes: the exporter
    /// under test is broken.
    #[allow(clippy::panic)]
    pub fn spans(&self) -> Vec<Span> {
        self.server.requests().iter().flat_map(decode).collect()
    }

    /// Wait until at least `count` spans arrived (or `timeout` passed), then return them all.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Span> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= count || Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A base URL where nothing listens: a collector that is down.
///
/// # Panics
/// When the loopback port cannot be bound.
#[allow(clippy::expect_used)]
pub fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    drop(listener);
    format!("http://{addr}")
}

#[allow(clippy::panic)]
fn decode(request: &Recorded) -> Vec<Span> {
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/v1/traces"),
        "an OTLP/HTTP trace export"
    );
    assert_eq!(
        request.header("content-type").as_deref(),
        Some("application/x-protobuf"),
        "OTLP/HTTP in protobuf"
    );
    let export = ExportTraceServiceRequest::decode(request.body.as_ref())
        .unwrap_or_else(|error| panic!("not an OTLP ExportTraceServiceRequest: {error}"));
    let mut spans = Vec::new();
    for resource_spans in export.resource_spans {
        let service_name = resource_spans.resource.and_then(|resource| {
            resource
                .attributes
                .into_iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value)
                .map(|value| value_of(value).to_string())
        });
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                spans.push(Span {
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent_span_id: hex::encode(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    attributes: span
                        .attributes
                        .into_iter()
                        .filter_map(|kv| Some((kv.key, value_of(kv.value?))))
                        .collect(),
                    service_name: service_name.clone(),
                    status_code: span.status.map_or(0, |status| status.code),
                    start_unix_nano: span.start_time_unix_nano,
                    end_unix_nano: span.end_time_unix_nano,
                });
            }
        }
    }
    spans
}

fn value_of(value: AnyValue) -> Value {
    match value.value {
        Some(any_value::Value::StringValue(text)) => Value::Str(text),
        Some(any_value::Value::IntValue(n)) => Value::Int(n),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(b),
        Some(any_value::Value::DoubleValue(x)) => Value::Double(x),
        other => Value::Other(format!("{other:?}")),
    }
}
