//! A span as the request path fills it in: ids and times as plain data, its name, attributes
//! and status encoded as protobuf fields the moment they are set (a slot each, so setting one
//! again replaces it), handed to the export queue when the span ends.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::context::{SpanId, TraceId};
use super::proto::{self, Ref};

/// The attributes a span can carry, by their OpenTelemetry names (GenAI conventions, and the
/// gateway's own under `llmgate.*`). A span holds at most one value of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attr {
    OperationName,
    RequestMethod,
    UrlPath,
    RequestId,
    User,
    ProviderName,
    RequestModel,
    Model,
    Stream,
    ResponseModel,
    Attempts,
    KeySource,
    InputTokens,
    OutputTokens,
    CostMicros,
    ErrorType,
    StatusCode,
}

impl Attr {
    /// How many there are: the size of a span's slots.
    const COUNT: usize = Attr::StatusCode as usize + 1;

    /// Every attribute, in declaration order.
    #[cfg(test)]
    const ALL: [Attr; Attr::COUNT] = [
        Attr::OperationName,
        Attr::RequestMethod,
        Attr::UrlPath,
        Attr::RequestId,
        Attr::User,
        Attr::ProviderName,
        Attr::RequestModel,
        Attr::Model,
        Attr::Stream,
        Attr::ResponseModel,
        Attr::Attempts,
        Attr::KeySource,
        Attr::InputTokens,
        Attr::OutputTokens,
        Attr::CostMicros,
        Attr::ErrorType,
        Attr::StatusCode,
    ];

    #[inline(always)]
    pub const fn name(self) -> &'static str {
        match self {
            Attr::OperationName => "gen_ai.operation.name",
            Attr::RequestMethod => "http.request.method",
            Attr::UrlPath => "url.path",
            Attr::RequestId => "llmgate.request_id",
            Attr::User => "llmgate.user",
            Attr::ProviderName => "gen_ai.provider.name",
            Attr::RequestModel => "gen_ai.request.model",
            Attr::Model => "llmgate.model",
            Attr::Stream => "llmgate.stream",
            Attr::ResponseModel => "gen_ai.response.model",
            Attr::Attempts => "llmgate.attempts",
            Attr::KeySource => "llmgate.key_source",
            Attr::InputTokens => "gen_ai.usage.input_tokens",
            Attr::OutputTokens => "gen_ai.usage.output_tokens",
            Attr::CostMicros => "llmgate.cost_micros",
            Attr::ErrorType => "error.type",
            Attr::StatusCode => "http.response.status_code",
        }
    }
}

/// OTLP's span kinds, numbered as the protocol numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Server = 2,
    Client = 3,
}

/// Where a field is in a span's encoded body.
#[derive(Debug, Clone, Copy)]
struct Slot {
    start: u32,
    len: u32,
}

/// The slot of the span's status, after the attributes'.
const STATUS: usize = Attr::COUNT;

/// One span, from its start to its end.
#[derive(Debug, Clone)]
pub(super) struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    /// Whether the parent came from another process (the caller).
    pub remote_parent: bool,
    pub trace_state: Option<Arc<str>>,
    pub kind: Kind,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    /// The `Span` message's name, attributes and status (fields 5, 9 and 15), encoded as they
    /// are set: the span's only allocation, and what it ends with is one copy away from the
    /// export's bytes.
    body: Vec<u8>,
    /// Where each attribute (by [`Attr`]), then the status, is in `body`, once set.
    slots: [Option<Slot>; Attr::COUNT + 1],
}

/// Room for a span's encoded fields before its buffer grows: a server span's fifteen or so
/// attributes take about 550 bytes, a client span's about 250. (Growing past 512 bytes
/// would also move the buffer into the allocator's slower size classes.)
fn body_room(kind: Kind) -> usize {
    match kind {
        Kind::Server => 768,
        Kind::Client => 384,
    }
}

/// A span's opening fields (its name and first attributes) as [`SpanRecord::start`] and
/// [`SpanRecord::set`] write them, kept to start many spans from with one copy.
#[derive(Debug, Clone)]
pub(super) struct Opening {
    kind: Kind,
    body: Box<[u8]>,
    slots: [Option<Slot>; Attr::COUNT + 1],
}

impl Opening {
    /// The opening of a `kind` span named `name` with `attributes` set.
    pub fn new(kind: Kind, name: [&str; 2], attributes: &[(Attr, Ref<'_>)]) -> Self {
        let mut span = SpanRecord::start([0; 16], [0; 8], kind, name);
        for &(attr, value) in attributes {
            span.set(attr, value);
        }
        Self {
            kind,
            body: span.body.into_boxed_slice(),
            slots: span.slots,
        }
    }
}

impl SpanRecord {
    /// A span starting now with `opening`'s name and attributes.
    pub fn open(trace_id: TraceId, span_id: SpanId, opening: &Opening) -> Self {
        let mut body = Vec::with_capacity(body_room(opening.kind).max(opening.body.len()));
        body.extend_from_slice(&opening.body);
        Self::starting_now((trace_id, span_id), opening.kind, body, opening.slots)
    }

    /// A span named by its two words (`POST` `/v1/chat/completions`, `chat` `gpt-4o`),
    /// starting now.
    pub fn start(trace_id: TraceId, span_id: SpanId, kind: Kind, name: [&str; 2]) -> Self {
        let mut body = Vec::with_capacity(body_room(kind));
        let [first, second] = name;
        proto::header(&mut body, 5, first.len() + 1 + second.len());
        body.extend_from_slice(first.as_bytes());
        body.push(b' ');
        body.extend_from_slice(second.as_bytes());
        Self::starting_now((trace_id, span_id), kind, body, [None; Attr::COUNT + 1])
    }

    fn starting_now(
        (trace_id, span_id): (TraceId, SpanId),
        kind: Kind,
        body: Vec<u8>,
        slots: [Option<Slot>; Attr::COUNT + 1],
    ) -> Self {
        Self {
            trace_id,
            span_id,
            parent_span_id: None,
            remote_parent: false,
            trace_state: None,
            kind,
            start_unix_nano: now_unix_nano(),
            end_unix_nano: 0,
            body,
            slots,
        }
    }

    /// Set `attr`, replacing an earlier value of it. Inlined, so that `attr`'s name is a
    /// constant where it is written (see [`proto::key_value`]).
    #[inline(always)]
    pub fn set<'a>(&mut self, attr: Attr, value: impl Into<Ref<'a>>) {
        let value = value.into();
        let start = self.clear(attr as usize);
        proto::key_value(&mut self.body, 9, attr.name(), value);
        self.filled(attr as usize, start);
    }

    /// Take slot `slot`'s field out of the body (rare: most attributes are set once).
    #[inline(never)]
    fn take_out(&mut self, slot: usize) {
        let Some(old) = self.slots[slot].take() else {
            return;
        };
        let (start, len) = (old.start as usize, old.len as usize);
        self.body.drain(start..start + len);
        for later in self.slots.iter_mut().flatten() {
            if later.start > old.start {
                later.start -= old.len;
            }
        }
    }

    /// Mark the span as failed, with `message`.
    pub fn fail(&mut self, message: &str) {
        let start = self.clear(STATUS);
        proto::header(&mut self.body, 15, status_len(message));
        proto::string(&mut self.body, 2, message);
        proto::key(&mut self.body, 3, proto::VARINT);
        proto::varint(&mut self.body, STATUS_ERROR);
        self.filled(STATUS, start);
    }

    /// The span ends now.
    pub fn end(&mut self) {
        self.end_unix_nano = now_unix_nano();
    }

    /// The encoded name, attributes and status.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Take out what slot `slot` held; where its new field starts (the end of the body).
    #[inline(always)]
    fn clear(&mut self, slot: usize) -> usize {
        if self.slots[slot].is_some() {
            self.take_out(slot);
        }
        self.body.len()
    }

    /// Slot `slot`'s field was written from `start` to the end of the body.
    #[inline(always)]
    fn filled(&mut self, slot: usize, start: usize) {
        // A span's body is a few hundred bytes: u32 always holds it.
        self.slots[slot] = Some(Slot {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            len: u32::try_from(self.body.len() - start).unwrap_or(0),
        });
    }
}

/// `Status.code` of a failed span.
const STATUS_ERROR: u64 = 2;

/// A `Status` with `message` and the error code.
fn status_len(message: &str) -> usize {
    proto::field_len(2, message.len()) + 2
}

fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(name: &str, value: Ref<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        proto::key_value(&mut out, 9, name, value);
        out
    }

    #[test]
    fn setting_an_attribute_again_replaces_it_where_the_others_stay() {
        let mut span = SpanRecord::start([1; 16], [2; 8], Kind::Server, ["POST", "/p"]);
        let name_len = span.body().len();
        span.set(Attr::Attempts, 1i64);
        span.set(Attr::User, "u-1");
        span.set(Attr::Stream, true);
        span.set(Attr::Attempts, 2u64);
        span.set(Attr::User, "user-2");
        span.fail("first");
        span.fail("second");
        let mut expected = span.body()[..name_len].to_vec();
        expected.extend(kv("llmgate.stream", Ref::Bool(true)));
        expected.extend(kv("llmgate.attempts", Ref::Int(2)));
        expected.extend(kv("llmgate.user", Ref::Text("user-2")));
        let mut status = Vec::new();
        proto::header(&mut status, 15, status_len("second"));
        proto::string(&mut status, 2, "second");
        status.extend([0x18, 2]);
        expected.extend(status);
        assert_eq!(span.body(), expected);
        span.end();
        assert!(span.end_unix_nano >= span.start_unix_nano && span.start_unix_nano > 0);
    }

    #[test]
    fn a_span_opened_from_an_opening_is_the_span_started_and_set_the_same_way() {
        let attributes = [
            (Attr::OperationName, Ref::Text("chat")),
            (Attr::Attempts, Ref::Int(1)),
        ];
        let opening = Opening::new(Kind::Client, ["chat", "m-1"], &attributes);
        let mut opened = SpanRecord::open([1; 16], [2; 8], &opening);
        let mut started = SpanRecord::start([1; 16], [2; 8], Kind::Client, ["chat", "m-1"]);
        for (attr, value) in attributes {
            started.set(attr, value);
        }
        assert_eq!(opened.body(), started.body());
        // The slots came along: setting an opening attribute again replaces it.
        opened.set(Attr::Attempts, 2i64);
        started.set(Attr::Attempts, 2i64);
        assert_eq!(opened.body(), started.body());
        assert_eq!(opened.kind, Kind::Client);
        assert!(opened.start_unix_nano > 0);
    }

    #[test]
    fn every_attribute_is_listed_once_at_its_own_index() {
        for (index, attr) in Attr::ALL.iter().enumerate() {
            assert_eq!(*attr as usize, index, "{attr:?}");
        }
        let mut names: Vec<_> = Attr::ALL.iter().map(|attr| attr.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Attr::COUNT);
    }
}
