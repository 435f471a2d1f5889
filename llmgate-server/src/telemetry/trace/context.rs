//! W3C trace context: the caller's `traceparent` (and `tracestate`) read from the request, new
//! trace and span ids, the sampling decision, and the `traceparent` an upstream call carries.

use std::cell::RefCell;
use std::sync::Arc;

use http::{HeaderMap, HeaderName};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

/// A 16-byte trace id, never all zeros.
pub(super) type TraceId = [u8; 16];
/// An 8-byte span id, never all zeros.
pub(super) type SpanId = [u8; 8];

/// The span a request continues: the caller's, from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Parent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
    /// The caller's `tracestate`, carried on every span of the trace.
    pub trace_state: Option<Arc<str>>,
}

/// The headers, named once (a name given as text is parsed on every lookup).
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// W3C caps `tracestate` at 32 list members; this bounds what one request can make us keep.
const MAX_TRACE_STATE: usize = 512;

/// The caller's span; `None` (a new trace) when the headers carry none or a malformed one.
pub(super) fn caller(headers: &HeaderMap) -> Option<Parent> {
    let value = headers.get(TRACEPARENT)?.to_str().ok()?.trim();
    let mut parts = value.split('-');
    let version = parts.next().filter(|part| part.len() == 2)?;
    let version = lower_hex::<1>(version)?[0];
    let trace_id = lower_hex::<16>(parts.next()?)?;
    let span_id = lower_hex::<8>(parts.next()?)?;
    let flags = lower_hex::<1>(parts.next()?)?[0];
    // Version 00 has exactly four fields; later versions may append more, which we ignore.
    let valid_version = version != 0xff && (version != 0 || parts.next().is_none());
    if !valid_version || trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    let trace_state = headers
        .get(TRACESTATE)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|state| !state.is_empty() && state.len() <= MAX_TRACE_STATE)
        .map(Arc::from);
    Some(Parent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
        trace_state,
    })
}

/// `N` bytes from exactly `2 * N` lowercase hex digits (W3C rejects upper case).
fn lower_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |digit: u8| match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    };
    let mut bytes = [0; N];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(bytes)
}

thread_local! {
    /// Ids come from a small fast generator per thread, seeded from the OS-seeded thread
    /// generator: ids must be unique and unguessable enough to not collide, not secret, and the
    /// cryptographic generator cost more per span than writing its attributes' keys.
    static IDS: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

fn random_u64() -> u64 {
    IDS.with(|ids| ids.borrow_mut().next_u64())
}

/// A new random trace id.
pub(super) fn new_trace_id() -> TraceId {
    loop {
        let mut id: TraceId = [0; 16];
        id[..8].copy_from_slice(&random_u64().to_le_bytes());
        id[8..].copy_from_slice(&random_u64().to_le_bytes());
        if id != [0; 16] {
            return id;
        }
    }
}

/// A new random span id.
pub(super) fn new_span_id() -> SpanId {
    loop {
        let id: SpanId = random_u64().to_le_bytes();
        if id != [0; 8] {
            return id;
        }
    }
}

/// Which new traces are recorded: OpenTelemetry's `TraceIdRatioBased` rule (the trace id's
/// low 63 bits under `ratio` of their range), so every service sampling by the same ratio
/// agrees on a trace.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sampler {
    /// `None`: every trace.
    below: Option<u64>,
}

impl Sampler {
    pub fn new(ratio: f64) -> Self {
        // Not money: a share of traces, where a float is the natural unit.
        let below = (ratio < 1.0).then(|| (ratio.max(0.0) * (1u64 << 63) as f64) as u64);
        Self { below }
    }

    pub fn samples(self, trace_id: &TraceId) -> bool {
        let Some(below) = self.below else {
            return true;
        };
        let mut low = [0; 8];
        low.copy_from_slice(&trace_id[8..]);
        (u64::from_be_bytes(low) >> 1) < below
    }
}

#[cfg(test)]
mod tests {
    use llmgate_core::trace::Traceparent;

    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn headers(traceparent: &str, tracestate: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", traceparent.parse().unwrap());
        if let Some(state) = tracestate {
            headers.insert("tracestate", state.parse().unwrap());
        }
        headers
    }

    #[test]
    fn a_callers_traceparent_is_continued_and_written_back_the_same() {
        let parent = caller(&headers(
            &format!("00-{TRACE}-{SPAN}-01"),
            Some("vendor=abc"),
        ))
        .unwrap();
        assert!(parent.sampled);
        assert_eq!(parent.trace_state.as_deref(), Some("vendor=abc"));
        assert_eq!(
            Traceparent::new(&parent.trace_id, &parent.span_id, true).as_str(),
            format!("00-{TRACE}-{SPAN}-01")
        );
        let unsampled = caller(&headers(&format!("00-{TRACE}-{SPAN}-00"), None)).unwrap();
        assert!(!unsampled.sampled && unsampled.trace_state.is_none());
        // A later version may carry more fields.
        assert!(caller(&headers(&format!("01-{TRACE}-{SPAN}-01-extra"), None)).is_some());
    }

    #[test]
    fn a_malformed_traceparent_starts_a_new_trace() {
        for bad in [
            "00-nothex-00f067aa0ba902b7-01".to_owned(),
            format!("00-{}-{SPAN}-01", TRACE.to_uppercase()),
            format!("00-{}-{SPAN}-01", "0".repeat(32)),
            format!("00-{TRACE}-{}-01", "0".repeat(16)),
            format!("00-{TRACE}-{SPAN}-01-extra"),
            format!("ff-{TRACE}-{SPAN}-01"),
            format!("00-{TRACE}-{SPAN}"),
            format!("00-{}-{SPAN}-01", &TRACE[1..]),
            format!("0-{TRACE}-{SPAN}-01"),
        ] {
            assert_eq!(caller(&headers(&bad, None)), None, "{bad}");
        }
        assert_eq!(caller(&HeaderMap::new()), None);
    }

    #[test]
    fn sampling_follows_the_trace_ids_low_bits() {
        let mut low = [0u8; 16];
        low[8] = 0x40; // a quarter of the way through the 63-bit range
        let mut high = [0u8; 16];
        high[8] = 0xf0;
        let half = Sampler::new(0.5);
        assert!(half.samples(&low) && !half.samples(&high));
        assert!(Sampler::new(1.0).samples(&high));
        assert!(!Sampler::new(0.0).samples(&low));
        assert_ne!(new_trace_id(), new_trace_id());
    }
}
