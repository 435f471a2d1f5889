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

use super::proto::{
    FIXED32, FIXED64, Ref, VARINT, bytes, field_len, header, key, key_value, string, varint,
};
use super::record::SpanRecord;

/// `Span.flags`: the W3C sampled flag, and whether the parent's remoteness is known and
/// remote (bits 8 and 9).
const FLAG_SAMPLED: u32 = 0x1;
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

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
    let mut len = FIXED_FIELDS + span.body().len();
    if let Some(state) = &span.trace_state {
        len += field_len(3, state.len());
    }
    if span.parent_span_id.is_some() {
        len += 2 + 8;
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
    key(out, 6, VARINT);
    varint(out, span.kind as u64);
    key(out, 7, FIXED64);
    out.extend_from_slice(&span.start_unix_nano.to_le_bytes());
    key(out, 8, FIXED64);
    out.extend_from_slice(&span.end_unix_nano.to_le_bytes());
    // The name (field 5), attributes (9) and status (15), as they were set: protobuf reads
    // a message's fields in any order.
    out.extend_from_slice(span.body());
    let remote = if span.remote_parent {
        FLAG_IS_REMOTE
    } else {
        0
    };
    key(out, 16, FIXED32);
    out.extend_from_slice(&(FLAG_SAMPLED | FLAG_HAS_IS_REMOTE | remote).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::super::record::{Attr, Kind};
    use super::*;

    #[test]
    fn every_message_is_exactly_as_long_as_its_length_says() {
        let mut span = SpanRecord::start([1; 16], [2; 8], Kind::Server, ["POST", "/p"]);
        span.parent_span_id = Some([3; 8]);
        span.trace_state = Some("a=1".into());
        span.set(Attr::Stream, true);
        span.set(Attr::CostMicros, -5i64);
        span.set(Attr::InputTokens, u64::MAX);
        span.set(Attr::RequestModel, "x".repeat(300).as_str());
        span.fail("boom");
        let mut short = SpanRecord::start([1; 16], [2; 8], Kind::Client, ["chat", "m"]);
        span.end();
        short.end();
        let spans = [span, short];
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
