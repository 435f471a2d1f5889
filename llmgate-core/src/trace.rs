//! Hooks for distributed tracing: an application that traces its requests learns of every
//! upstream attempt the gateway makes, and the upstream call carries the attempt's trace
//! context.
//!
//! The core knows no tracing system. An application runs a request's gateway call inside
//! [`traced`] with its [`RequestTracer`]; the gateway then asks that tracer for an
//! [`AttemptSpan`] for each upstream call (every failover and retry is one), tells it how the
//! call ended, and the provider sends the span's W3C `traceparent` as a header
//! ([`traceparent`]). The span starts with the attempt and counts once the provider sends its
//! request: an attempt that never reaches the network (a provider with no counting endpoint, a
//! body that cannot be translated, the in-process demo) ends with [`AttemptSpan::unsent`] and
//! records nothing. Outside [`traced`] nothing is built: the cost of tracing off is one failed
//! task-local lookup per attempt.
//!
//! The tracer lives in a task-local, not on the [`Caller`](crate::Caller), so that every entry
//! point (chat, streams, embeddings, token counts, and those added later) is traced without a
//! parameter of its own. It covers the calls made while the request's future runs, which is
//! every upstream call: a stream's request is sent before its first chunk is returned. A
//! request's attempts run one after another, so the one under way sits in the same
//! task-local; the call itself is awaited where it is, not wrapped in a scope of its own.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::sync::Arc;

use crate::catalog::Deployment;
use crate::chat::{ChatChunk, ChatResponse, Usage};
use crate::embeddings::EmbeddingResponse;
use crate::error::{Error, Result};
use crate::provider::ChunkStream;

/// Starts a span for each upstream attempt of one request (the request's own span is its
/// parent).
pub trait RequestTracer: Send + Sync {
    /// An upstream attempt on `deployment` starts; its span may keep this handle to the
    /// tracer. If the attempt never sends a request, the span is told [`AttemptSpan::unsent`].
    fn attempt(self: Arc<Self>, deployment: &Deployment) -> Box<dyn AttemptSpan>;
}

/// The span of one upstream call; ended by [`AttemptSpan::answered`] or [`AttemptSpan::failed`]
/// (or dropped, when the request is abandoned mid-call).
pub trait AttemptSpan: Send {
    /// The W3C `traceparent` header value the upstream request carries.
    fn traceparent(&self) -> Option<Traceparent>;
    /// The upstream answered (a stream: its first chunk arrived).
    fn answered(self: Box<Self>, answer: Answer<'_>);
    /// The call failed with `error`.
    fn failed(self: Box<Self>, error: &Error);
    /// The attempt ended without sending a request (a provider that answers from its own
    /// count, a body that could not be translated, the in-process demo): not an upstream call,
    /// so nothing should be recorded.
    fn unsent(self: Box<Self>);
}

/// A W3C `traceparent` header value, version 00: `00-{trace id}-{span id}-{flags}`. Held
/// inline, so an attempt hands it to its upstream request without an allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Traceparent([u8; 55]);

impl Traceparent {
    /// The header naming span `span_id` of trace `trace_id`, sampled or not.
    pub fn new(trace_id: &[u8; 16], span_id: &[u8; 8], sampled: bool) -> Self {
        let mut text = *b"00-________________________________-________________-00";
        text[3..35].copy_from_slice(&hex::<16, 32>(trace_id));
        text[36..52].copy_from_slice(&hex::<8, 16>(span_id));
        if sampled {
            text[54] = b'1';
        }
        Self(text)
    }

    /// The header value's bytes (ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The header value as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written, so this never takes the empty branch.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for Traceparent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `bytes` in lowercase hex (`M` is twice `N`). Over fixed sizes, so the loop compiles to
/// straight stores: through slices and iterators it cost more than the rest of the header.
/// Each byte's two digits are looked up at once.
fn hex<const N: usize, const M: usize>(bytes: &[u8; N]) -> [u8; M] {
    let mut out = [b'0'; M];
    for (i, byte) in bytes.iter().enumerate().take(M / 2) {
        let [high, low] = HEX_PAIRS[usize::from(*byte)];
        out[2 * i] = high;
        out[2 * i + 1] = low;
    }
    out
}

/// Every byte's two lowercase hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [DIGITS[byte >> 4], DIGITS[byte & 15]];
        byte += 1;
    }
    pairs
};

/// What an upstream's answer says about itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Answer<'a> {
    /// The model id the upstream reports answering.
    pub model: Option<&'a str>,
    /// Input tokens, when the answer counted them.
    pub input_tokens: Option<u64>,
    /// Output tokens, when the answer counted them.
    pub output_tokens: Option<u64>,
}

const _: Option<&dyn RequestTracer> = None;
const _: Option<&dyn AttemptSpan> = None;

tokio::task_local! {
    static TRACED: Traced;
}

/// A traced request's tracer, and its attempt under way. A request's attempts run one after
/// another, so one slot holds the current one: the call runs in the request's scope as it is,
/// instead of being moved into a scope of its own (a second task-local future around every
/// upstream call, its body copied in and swapped per poll).
struct Traced {
    tracer: Arc<dyn RequestTracer>,
    /// Only the request's own task reaches it (through the task-local), and no borrow is
    /// held across an await.
    attempt: RefCell<Option<Pending>>,
}

/// An attempt under way and its span, which counts once the provider sends its request.
struct Pending {
    /// Taken only when the attempt ends.
    span: Option<Box<dyn AttemptSpan>>,
    sent: Cell<bool>,
}

impl Pending {
    fn traceparent(&self) -> Option<Traceparent> {
        self.sent.set(true);
        self.span.as_ref()?.traceparent()
    }

    /// The attempt's span, if its request was sent; an unsent one is discarded.
    fn into_sent(mut self) -> Option<Box<dyn AttemptSpan>> {
        let span = self.span.take()?;
        if self.sent.get() {
            Some(span)
        } else {
            span.unsent();
            None
        }
    }
}

impl Drop for Pending {
    /// An attempt abandoned mid-call (the client left): a sent span is recorded as far as it
    /// got, an unsent one is discarded.
    fn drop(&mut self) {
        if let Some(span) = self.span.take()
            && !self.sent.get()
        {
            span.unsent();
        }
    }
}

/// Ends the request's attempt under way when the attempt's future ends or is dropped mid-call.
struct AttemptEnds;

impl Drop for AttemptEnds {
    fn drop(&mut self) {
        // Taken out of the slot here, dropped (and so ended) after the borrow.
        let _ = TRACED.try_with(|traced| traced.attempt.take());
    }
}

/// Run `request` (a gateway call) with `tracer` told of each of its upstream attempts.
pub async fn traced<F: Future>(tracer: Arc<dyn RequestTracer>, request: F) -> F::Output {
    let traced = Traced {
        tracer,
        attempt: RefCell::new(None),
    };
    TRACED.scope(traced, request).await
}

/// The `traceparent` the upstream request being sent should carry, if it is traced; starts
/// the attempt's span. Providers call it for every request they send.
pub fn traceparent() -> Option<Traceparent> {
    TRACED
        .try_with(|traced| traced.attempt.borrow().as_ref()?.traceparent())
        .ok()
        .flatten()
}

/// Make one upstream call, in an attempt span when the request is traced.
pub(crate) async fn attempt<T: Answered>(
    deployment: &Arc<Deployment>,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    // The span is made now, while the deployment is at hand, rather than when the provider
    // asks for its traceparent: that kept a handle on the deployment meanwhile and built the
    // span inside the provider's request, and measured dearer at 64 clients.
    let started = TRACED.try_with(|traced| {
        let span = traced.tracer.clone().attempt(deployment);
        let pending = Pending {
            span: Some(span),
            sent: Cell::new(false),
        };
        // The slot is empty: `AttemptEnds` empties it when an attempt ends or is dropped.
        *traced.attempt.borrow_mut() = Some(pending);
    });
    if started.is_err() {
        return call.await;
    }
    let ends = AttemptEnds;
    let answer = call.await;
    let span = TRACED
        .try_with(|traced| traced.attempt.take())
        .ok()
        .flatten()
        .and_then(Pending::into_sent);
    drop(ends);
    if let Some(span) = span {
        match &answer {
            Ok(value) => span.answered(value.answer()),
            Err(error) => span.failed(error),
        }
    }
    answer
}

/// An upstream call's successful value, as an attempt span sees it.
pub(crate) trait Answered {
    fn answer(&self) -> Answer<'_>;
}

impl Answered for ChatResponse {
    fn answer(&self) -> Answer<'_> {
        usage_answer(&self.model, self.usage.as_ref())
    }
}

/// A stream's first chunk (its usage, if any, comes at the end).
impl Answered for (ChatChunk, ChunkStream) {
    fn answer(&self) -> Answer<'_> {
        usage_answer(&self.0.model, self.0.usage.as_ref())
    }
}

impl Answered for EmbeddingResponse {
    fn answer(&self) -> Answer<'_> {
        Answer {
            model: Some(self.model.as_str()).filter(|model| !model.is_empty()),
            input_tokens: self.usage.as_ref().map(|usage| usage.prompt_tokens),
            output_tokens: None,
        }
    }
}

/// A token count: its input tokens, when the upstream counted.
impl Answered for Option<u64> {
    fn answer(&self) -> Answer<'_> {
        Answer {
            input_tokens: *self,
            ..Answer::default()
        }
    }
}

fn usage_answer<'a>(model: &'a str, usage: Option<&Usage>) -> Answer<'a> {
    Answer {
        model: Some(model).filter(|model| !model.is_empty()),
        input_tokens: usage.map(|usage| usage.prompt_tokens),
        output_tokens: usage.map(|usage| usage.completion_tokens),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);

    struct Recorder(Arc<Seen>, String);

    impl RequestTracer for Seen {
        fn attempt(self: Arc<Self>, deployment: &Deployment) -> Box<dyn AttemptSpan> {
            Box::new(Recorder(self, deployment.provider.clone()))
        }
    }

    /// The traceparent the recorder gives an attempt to `provider`: span id from its name.
    fn traceparent_of(provider: &str) -> Traceparent {
        let mut span_id = [0; 8];
        span_id[0] = provider.as_bytes()[0];
        Traceparent::new(&[7; 16], &span_id, true)
    }

    impl AttemptSpan for Recorder {
        fn traceparent(&self) -> Option<Traceparent> {
            Some(traceparent_of(&self.1))
        }
        fn answered(self: Box<Self>, answer: Answer<'_>) {
            let line = format!("{} ok {:?}", self.1, answer.output_tokens);
            self.0.0.lock().unwrap().push(line);
        }
        fn failed(self: Box<Self>, error: &Error) {
            let line = format!("{} failed {}", self.1, error.status());
            self.0.0.lock().unwrap().push(line);
        }
        fn unsent(self: Box<Self>) {
            let line = format!("{} unsent", self.1);
            self.0.0.lock().unwrap().push(line);
        }
    }

    fn deployment(provider: &str) -> Arc<Deployment> {
        Arc::new(Deployment::new("m", provider, "m-1"))
    }

    #[tokio::test]
    async fn untraced_calls_see_no_traceparent() {
        let answer = attempt(&deployment("a"), async {
            assert!(traceparent().is_none());
            Ok(Some(3u64))
        })
        .await;
        assert_eq!(answer.unwrap(), Some(3));
    }

    #[tokio::test]
    async fn each_attempt_is_a_span_whose_traceparent_the_call_sees() {
        let seen = Arc::new(Seen::default());
        traced(seen.clone(), async {
            let failed: Result<Option<u64>> = attempt(&deployment("a"), async {
                assert_eq!(traceparent(), Some(traceparent_of("a")));
                Err(Error::upstream_timeout("a"))
            })
            .await;
            assert!(failed.is_err());
            // A provider that sends nothing (its own count) makes no span.
            let local = attempt(&deployment("local"), async { Ok(None::<u64>) }).await;
            assert_eq!(local.unwrap(), None);
            let response = attempt(&deployment("b"), async {
                assert_eq!(traceparent(), Some(traceparent_of("b")));
                Ok(ChatResponse::assistant("m-1", "hi").with_usage(Usage::new(3, 2)))
            })
            .await;
            assert!(response.is_ok());
            assert!(traceparent().is_none(), "only inside an attempt");
        })
        .await;
        let seen = seen.0.lock().unwrap().clone();
        assert_eq!(seen, ["a failed 504", "local unsent", "b ok Some(2)"]);
    }

    #[tokio::test]
    async fn an_attempt_abandoned_before_it_sends_records_nothing() {
        let seen = Arc::new(Seen::default());
        traced(seen.clone(), async {
            // Polled once, then dropped mid-call (the client left) before any request went out.
            let never = std::future::pending::<Result<Option<u64>>>();
            let deployment = deployment("c");
            let mut call = Box::pin(attempt(&deployment, never));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(call.as_mut().poll(&mut cx).is_pending());
            drop(call);
            // Ended when dropped, not when the request ends.
            assert_eq!(*seen.0.lock().unwrap(), ["c unsent"]);
            assert!(traceparent().is_none());
        })
        .await;
        assert_eq!(*seen.0.lock().unwrap(), ["c unsent"]);
    }

    #[test]
    fn a_traceparent_is_version_00_lowercase_hex_and_its_flag() {
        let trace_id = [
            0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
            0x47, 0x36,
        ];
        let span_id = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];
        assert_eq!(
            Traceparent::new(&trace_id, &span_id, true).as_str(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert!(
            Traceparent::new(&trace_id, &span_id, false)
                .as_str()
                .ends_with("-00")
        );
    }
}
