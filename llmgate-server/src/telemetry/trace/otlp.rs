//! OTLP protobuf: a batch of spans written as one `ExportTraceServiceRequest`, the body of an
//! OTLP/HTTP export.
//!
//! Written by hand (a few dozen lines for the six messages a trace export uses) rather than
//! through generated types: building those would copy every string of every span once more
//! before encoding, on the cores that serve requests. The test collector decodes the output
//! with the protocol's generated types, which is what holds this to the schema
//! (opentelemetry/proto/trace/v1/trace.proto and its imports). Protobuf puts a message's
//! length in front of it, so each length is computed before the message is written: nothing
//! is written twice or moved.

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
            key_value(&mut resource, 1, key, Ref::Text(value));
        }
        let mut scope = Vec::new();
        string(&mut scope, 1, "llmgate");
        string(&mut scope, 2, env!("CARGO_PKG_VERSION"));
        Self { resource, scope }
    }

    /// `spans` as one export request, into `out` (cleared first).
    /// Bytes a batch keeps free in front of its spans for [`Encoder::write_envelope`].
    pub fn envelope_room(&self) -> usize {
        // Four length-delimited headers (a one-byte key and a varint length of at most ten
        // bytes each) around the resource and the scope.
        self.resource.len() + self.scope.len() + 4 * 11
    }

    /// Write the `ExportTraceServiceRequest` around `spans_len` bytes of spans (as
    /// [`push_span`] wrote them) into the end of `room`, so that it runs straight into them;
    /// returns where in `room` it starts.
    pub fn write_envelope(&self, room: &mut [u8], spans_len: usize) -> usize {
        let scope_spans = field_len(1, self.scope.len()) + spans_len;
        let resource_spans = field_len(1, self.resource.len()) + field_len(2, scope_spans);
        let mut envelope = Vec::with_capacity(self.envelope_room());
        // ExportTraceServiceRequest.resource_spans: ResourceSpans { resource, scope_spans }
        header(&mut envelope, 1, resource_spans);
        bytes(&mut envelope, 1, &self.resource);
        // ScopeSpans { scope, spans }: the spans follow.
        header(&mut envelope, 2, scope_spans);
        bytes(&mut envelope, 1, &self.scope);
        let start = room.len() - envelope.len();
        room[start..].copy_from_slice(&envelope);
        start
    }
}

/// Append `span` as one entry of `ScopeSpans.spans`: what the request path does when a span
/// ends, while its data is still in the core's cache.
pub(super) fn push_span(out: &mut Vec<u8>, span: &SpanRecord) {
    let len = span_len(span);
    // Room for the whole span at once: no growth check inside the writes below.
    out.reserve(field_len(2, len));
    header(out, 2, len);
    encode_span(out, span);
}

const FIXED_FIELDS: usize = (2 + 16) + (2 + 8) + 2 + (1 + 8) + (1 + 8) + (2 + 4);

/// The length of a `Span` message's body, as [`encode_span`] writes it.
fn span_len(span: &SpanRecord) -> usize {
    let [first, second] = &span.name;
    let mut len = FIXED_FIELDS + field_len(5, text(first).len() + 1 + text(second).len());
    if let Some(state) = &span.trace_state {
        len += field_len(3, state.len());
    }
    if span.parent_span_id.is_some() {
        len += 2 + 8;
    }
    for (name, value) in &span.attributes {
        len += field_len(9, key_value_len(name, value.into()));
    }
    if let Some(message) = &span.error {
        len += field_len(15, status_len(message));
    }
    len
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
    header(out, 5, first.len() + 1 + second.len());
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
        key_value(out, 9, name, value.into());
    }
    if let Some(message) = &span.error {
        header(out, 15, status_len(message));
        string(out, 2, message);
        key(out, 3, VARINT);
        varint(out, STATUS_ERROR);
    }
    let remote = if span.remote_parent {
        FLAG_IS_REMOTE
    } else {
        0
    };
    key(out, 16, FIXED32);
    out.extend_from_slice(&(FLAG_SAMPLED | FLAG_HAS_IS_REMOTE | remote).to_le_bytes());
}

/// A `Status` with `message` and the error code.
fn status_len(message: &str) -> usize {
    field_len(2, message.len()) + 2
}

/// A `KeyValue` as field `field`: its key, and its value as an `AnyValue`.
#[inline]
fn key_value(out: &mut Vec<u8>, field: u32, name: &str, value: Ref<'_>) {
    header(out, field, key_value_len(name, value));
    string(out, 1, name);
    header(out, 2, any_value_len(value));
    match value {
        Ref::Text(text) => string(out, 1, text),
        Ref::Bool(b) => {
            key(out, 2, VARINT);
            varint(out, u64::from(b));
        }
        Ref::Int(n) => {
            key(out, 3, VARINT);
            varint(out, int64(n));
        }
    }
}

#[inline]
fn key_value_len(name: &str, value: Ref<'_>) -> usize {
    field_len(1, name.len()) + field_len(2, any_value_len(value))
}

#[inline]
fn any_value_len(value: Ref<'_>) -> usize {
    match value {
        Ref::Text(text) => field_len(1, text.len()),
        Ref::Bool(_) => 2,
        Ref::Int(n) => 1 + varint_len(int64(n)),
    }
}

/// int64 is written as its two's complement.
fn int64(n: i64) -> u64 {
    n as u64
}

/// A value as it is written.
#[derive(Clone, Copy)]
enum Ref<'a> {
    Text(&'a str),
    Int(i64),
    Bool(bool),
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

#[inline]
fn key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, u64::from(field << 3 | u32::from(wire_type)));
}

#[inline]
fn varint(out: &mut Vec<u8>, mut n: u64) {
    // Field keys and most lengths fit in one byte.
    if n < 0x80 {
        out.push(n as u8);
        return;
    }
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[inline]
fn varint_len(n: u64) -> usize {
    let bits = 64 - (n | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// The bytes of a length-delimited field `field` whose body is `len` bytes.
#[inline]
fn field_len(field: u32, len: usize) -> usize {
    varint_len(u64::from(field << 3)) + varint_len(len as u64) + len
}

/// The key and length of a length-delimited field; its body follows.
#[inline]
fn header(out: &mut Vec<u8>, field: u32, len: usize) {
    key(out, field, LEN);
    varint(out, len as u64);
}

#[inline]
fn bytes(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    header(out, field, data.len());
    out.extend_from_slice(data);
}

#[inline]
fn string(out: &mut Vec<u8>, field: u32, text: &str) {
    bytes(out, field, text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::super::record::Kind;
    use super::*;

    #[test]
    fn varints_are_little_endian_base_128_and_measured_right() {
        let mut out = Vec::new();
        varint(&mut out, 1);
        varint(&mut out, 300);
        assert_eq!(out, [0x01, 0xac, 0x02]);
        for n in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            varint(&mut out, n);
            assert_eq!(out.len(), varint_len(n), "{n}");
        }
    }

    #[test]
    fn every_message_is_exactly_as_long_as_its_length_says() {
        let mut span =
            SpanRecord::start([1; 16], [2; 8], Kind::Server, ["POST".into(), "/p".into()]);
        span.parent_span_id = Some([3; 8]);
        span.trace_state = Some("a=1".into());
        span.set("yes", true);
        span.set("neg", -5i64);
        span.set("big", u64::MAX);
        span.set("long", Value::Text("x".repeat(300).into()));
        span.fail("boom");
        let short = SpanRecord::start([1; 16], [2; 8], Kind::Client, ["chat".into(), "m".into()]);
        let spans = [span.end(), short.end()];
        for span in &spans {
            let mut out = Vec::new();
            encode_span(&mut out, span);
            assert_eq!(out.len(), span_len(span));
        }
        let encoder = Encoder::new("svc");
        let mut out = vec![0; encoder.envelope_room()];
        for span in &spans {
            push_span(&mut out, span);
        }
        let spans_len = out.len() - encoder.envelope_room();
        let start = encoder.write_envelope(&mut out[..encoder.envelope_room()], spans_len);
        let out = out.split_off(start);
        let expected = field_len(
            1,
            field_len(1, encoder.resource.len())
                + field_len(
                    2,
                    field_len(1, encoder.scope.len())
                        + spans
                            .iter()
                            .map(|s| field_len(2, span_len(s)))
                            .sum::<usize>(),
                ),
        );
        assert_eq!(out.len(), expected);
        let name = b"\x2a\x06chat m";
        assert!(out.windows(name.len()).any(|w| w == name), "{out:x?}");
    }
}
