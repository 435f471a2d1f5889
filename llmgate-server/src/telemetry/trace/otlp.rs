//! OTLP protobuf: a batch of spans written as one `ExportTraceServiceRequest`, the body of an
//! OTLP/HTTP export.
//!
//! Written by hand (a few dozen lines for the six messages a trace export uses) rather than
//! through generated types: building those would copy every string of every span once more
//! before encoding, on the cores that serve requests. The test collector decodes the output
//! with the protocol's generated types, which is what holds this to the schema
//! (opentelemetry/proto/trace/v1/trace.proto and its imports).

use super::record::{SpanRecord, Value};

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// `Span.flags`: the W3C sampled flag, and whether the parent's remoteness is known and
/// remote (bits 8 and 9).
const FLAG_SAMPLED: u32 = 0x1;
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;
/// `Status.code` of a failed span.
const STATUS_ERROR: u64 = 2;

/// Writes export bodies; the resource and scope, the same on every export, are encoded once.
#[derive(Debug, Clone)]
pub(super) struct Encoder {
    resource: Vec<u8>,
    scope: Vec<u8>,
}

impl Encoder {
    pub fn new(service_name: &str) -> Self {
        let mut resource = Vec::new();
        for (key, value) in [
            ("service.name", service_name),
            ("telemetry.sdk.name", "llmgate"),
            ("telemetry.sdk.language", "rust"),
            ("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
        ] {
            nested(&mut resource, 1, |kv| key_value(kv, key, value));
        }
        let mut scope = Vec::new();
        string(&mut scope, 1, "llmgate");
        string(&mut scope, 2, env!("CARGO_PKG_VERSION"));
        Self { resource, scope }
    }

    /// `spans` as one export request, into `out` (cleared first).
    pub fn encode(&self, spans: &[SpanRecord], out: &mut Vec<u8>) {
        out.clear();
        // ExportTraceServiceRequest.resource_spans
        nested(out, 1, |resource_spans| {
            bytes(resource_spans, 1, &self.resource);
            // ResourceSpans.scope_spans
            nested(resource_spans, 2, |scope_spans| {
                bytes(scope_spans, 1, &self.scope);
                for span in spans {
                    nested(scope_spans, 2, |body| encode_span(body, span));
                }
            });
        });
    }
}

fn encode_span(out: &mut Vec<u8>, span: &SpanRecord) {
    bytes(out, 1, &span.trace_id);
    bytes(out, 2, &span.span_id);
    if let Some(state) = &span.trace_state {
        string(out, 3, state);
    }
    if let Some(parent) = &span.parent_span_id {
        bytes(out, 4, parent);
    }
    let [first, second] = &span.name;
    let (first, second) = (text(first), text(second));
    key(out, 5, LEN);
    varint(out, (first.len() + 1 + second.len()) as u64);
    out.extend_from_slice(first.as_bytes());
    out.push(b' ');
    out.extend_from_slice(second.as_bytes());
    key(out, 6, VARINT);
    varint(out, span.kind as u64);
    key(out, 7, FIXED64);
    out.extend_from_slice(&span.start_unix_nano.to_le_bytes());
    key(out, 8, FIXED64);
    out.extend_from_slice(&span.end_unix_nano.to_le_bytes());
    for (name, value) in &span.attributes {
        nested(out, 9, |kv| key_value(kv, name, value));
    }
    if let Some(message) = &span.error {
        nested(out, 15, |status| {
            string(status, 2, message);
            key(status, 3, VARINT);
            varint(status, STATUS_ERROR);
        });
    }
    let remote = if span.remote_parent {
        FLAG_IS_REMOTE
    } else {
        0
    };
    key(out, 16, FIXED32);
    out.extend_from_slice(&(FLAG_SAMPLED | FLAG_HAS_IS_REMOTE | remote).to_le_bytes());
}

/// A `KeyValue` message's fields.
fn key_value<'a>(out: &mut Vec<u8>, name: &str, value: impl Into<Ref<'a>>) {
    string(out, 1, name);
    // KeyValue.value: an AnyValue
    nested(out, 2, |any| match value.into() {
        Ref::Text(text) => string(any, 1, text),
        Ref::Bool(b) => {
            key(any, 2, VARINT);
            varint(any, u64::from(b));
        }
        Ref::Int(n) => {
            key(any, 3, VARINT);
            // int64 is written as its two's complement.
            varint(any, n as u64);
        }
    });
}

/// A value as it is written.
enum Ref<'a> {
    Text(&'a str),
    Int(i64),
    Bool(bool),
}

impl<'a> From<&'a str> for Ref<'a> {
    fn from(text: &'a str) -> Self {
        Ref::Text(text)
    }
}

impl<'a> From<&'a Value> for Ref<'a> {
    fn from(value: &'a Value) -> Self {
        match value {
            Value::Static(text) => Ref::Text(text),
            Value::Text(text) => Ref::Text(text),
            Value::Int(n) => Ref::Int(*n),
            Value::Bool(b) => Ref::Bool(*b),
        }
    }
}

fn text(value: &Value) -> &str {
    match value {
        Value::Static(text) => text,
        Value::Text(text) => text,
        Value::Int(_) | Value::Bool(_) => "",
    }
}

fn key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, u64::from(field << 3 | u32::from(wire_type)));
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn bytes(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    key(out, field, LEN);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn string(out: &mut Vec<u8>, field: u32, text: &str) {
    bytes(out, field, text.as_bytes());
}

/// A message field whose body `write` appends; its length, known only afterwards, is put in
/// front of it (moving the body a few bytes, cheaper than measuring every message twice).
fn nested(out: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    key(out, field, LEN);
    let start = out.len();
    write(out);
    let mut length = Vec::with_capacity(10);
    varint(&mut length, (out.len() - start) as u64);
    out.splice(start..start, length);
}

#[cfg(test)]
mod tests {
    use super::super::record::Kind;
    use super::*;

    #[test]
    fn varints_are_little_endian_base_128() {
        let mut out = Vec::new();
        varint(&mut out, 1);
        varint(&mut out, 300);
        varint(&mut out, u64::MAX);
        assert_eq!(out[..3], [0x01, 0xac, 0x02]);
        assert_eq!(out.len(), 3 + 10);
    }

    #[test]
    fn a_long_nested_body_gets_a_multi_byte_length_in_front() {
        let mut out = vec![0xee];
        nested(&mut out, 1, |body| body.extend_from_slice(&[7; 200]));
        assert_eq!(out[..4], [0xee, 0x0a, 0xc8, 0x01]);
        assert_eq!(out.len(), 4 + 200);
    }

    #[test]
    fn a_span_is_written_with_its_name_joined() {
        let mut span =
            SpanRecord::start([1; 16], [2; 8], Kind::Client, ["chat".into(), "m".into()]);
        span.set("k", true);
        let mut out = Vec::new();
        Encoder::new("svc").encode(&[span.end()], &mut out);
        let name = b"\x2a\x06chat m";
        assert!(out.windows(name.len()).any(|w| w == name), "{out:x?}");
    }
}
