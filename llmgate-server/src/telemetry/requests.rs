//! Per-request chat metrics: requests by model, provider, key source and status; how long they
//! took (a stream until its last byte); and the gateway's own overhead, which is the time to
//! the answer (or a stream's first chunk) minus the time spent waiting on upstreams.
//!
//! Handles are cached per label set, so a request looks its handles up by borrowed strings and
//! builds no labels once a combination has been seen; each thread keeps the sets it saw last
//! in front of the shared cache.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use llmgate_core::{Error, catalog::Catalog, gateway::RouteInfo};
use metrics::{Counter, Histogram, Unit};

use crate::response_body::Body;

/// Chat requests by model, provider, key source and HTTP status.
pub const REQUESTS: &str = "llmgate_requests_total";
/// Chat request latency (a stream until its last byte), by model, provider and stream.
pub const REQUEST_DURATION: &str = "llmgate_request_duration_seconds";
/// The gateway's own time per answered request: to the answer (or first chunk) minus upstream.
pub const OVERHEAD: &str = "llmgate_gateway_overhead_seconds";

/// Labels for what is not known (an unparsed request, no provider reached).
const NONE: &str = "none";

pub(super) fn describe() {
    metrics::describe_counter!(
        REQUESTS,
        "Chat requests by model, provider, key source and HTTP status."
    );
    metrics::describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Chat request latency (streams until their last byte)."
    );
    metrics::describe_histogram!(
        OVERHEAD,
        Unit::Seconds,
        "Gateway overhead: time to the answer or first chunk minus time spent upstream."
    );
}

/// A model name as a label: configured names and `auto` as they are, anything else `other`.
pub(crate) fn served_model_label<'a>(catalog: &Catalog, name: &'a str) -> &'a str {
    if name == "auto" || catalog.contains(name) {
        name
    } else {
        llmgate_core::metrics::OTHER_MODEL
    }
}

#[derive(Clone)]
struct Handles {
    requests: Counter,
    duration: Histogram,
}

/// (key source, status, stream) → handles.
type ByOutcome = HashMap<(&'static str, u16, bool), Handles>;
/// model → provider → outcome.
type Cache = RwLock<HashMap<String, HashMap<String, ByOutcome>>>;

static CACHE: OnceLock<Cache> = OnceLock::new();
static OVERHEAD_HANDLES: OnceLock<[Histogram; 2]> = OnceLock::new();

fn handles(
    model: &str,
    provider: &str,
    key_source: &'static str,
    status: u16,
    stream: bool,
) -> Arc<Handles> {
    let labels = Labels {
        model,
        provider,
        key_source,
        status,
        stream,
    };
    if let Some(found) = recent::find(&labels) {
        return found;
    }
    // The thread's own handle on the same counter and histogram: taking it per request does
    // not write a count that the other threads' requests write too.
    let own = Arc::new(shared_handles(&labels));
    recent::keep(&labels, own.clone());
    own
}

/// A request's label set, borrowed.
struct Labels<'a> {
    model: &'a str,
    provider: &'a str,
    key_source: &'static str,
    status: u16,
    stream: bool,
}

/// The handles of the label sets this thread saw last, in front of the shared cache: a
/// request finds its own here without a lock, a hash or a count shared between threads
/// (counted at 64 clients: about 700 instructions a request, and a lock word both cores
/// wrote).
mod recent {
    use std::cell::RefCell;
    use std::sync::Arc;

    use super::{Handles, Labels};

    /// Label sets one thread keeps; the oldest makes room.
    pub(super) const KEPT: usize = 16;

    struct Kept {
        model: Box<str>,
        provider: Box<str>,
        key_source: &'static str,
        status: u16,
        stream: bool,
        handles: Arc<Handles>,
    }

    impl Kept {
        fn is(&self, labels: &Labels<'_>) -> bool {
            self.status == labels.status
                && self.stream == labels.stream
                && self.key_source == labels.key_source
                && *self.model == *labels.model
                && *self.provider == *labels.provider
        }
    }

    thread_local! {
        static RECENT: RefCell<Vec<Kept>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn find(labels: &Labels<'_>) -> Option<Arc<Handles>> {
        RECENT
            .try_with(|recent| {
                let recent = recent.try_borrow().ok()?;
                let kept = recent.iter().rev().find(|kept| kept.is(labels))?;
                Some(kept.handles.clone())
            })
            .ok()
            .flatten()
    }

    pub(super) fn keep(labels: &Labels<'_>, handles: Arc<Handles>) {
        let _ = RECENT.try_with(|recent| {
            let Ok(mut recent) = recent.try_borrow_mut() else {
                return;
            };
            if recent.len() >= KEPT {
                recent.remove(0);
            }
            recent.push(Kept {
                model: labels.model.into(),
                provider: labels.provider.into(),
                key_source: labels.key_source,
                status: labels.status,
                stream: labels.stream,
                handles,
            });
        });
    }
}

/// The process's handles for `labels`, registered on first use.
fn shared_handles(labels: &Labels<'_>) -> Handles {
    let Labels {
        model,
        provider,
        key_source,
        status,
        stream,
    } = *labels;
    let cache = CACHE.get_or_init(Cache::default);
    let outcome = (key_source, status, stream);
    if let Ok(read) = cache.read()
        && let Some(found) = read
            .get(model)
            .and_then(|p| p.get(provider))
            .and_then(|o| o.get(&outcome))
    {
        return found.clone();
    }
    let built = Handles {
        requests: metrics::counter!(
            REQUESTS,
            "model" => model.to_owned(),
            "provider" => provider.to_owned(),
            "key_source" => key_source,
            "status" => status.to_string()
        ),
        duration: metrics::histogram!(
            REQUEST_DURATION,
            "model" => model.to_owned(),
            "provider" => provider.to_owned(),
            "stream" => if stream { "true" } else { "false" }
        ),
    };
    if let Ok(mut write) = cache.write() {
        write
            .entry(model.to_owned())
            .or_default()
            .entry(provider.to_owned())
            .or_default()
            .insert(outcome, built.clone());
    }
    built
}

fn overhead(stream: bool) -> &'static Histogram {
    let pair = OVERHEAD_HANDLES.get_or_init(|| {
        [
            metrics::histogram!(OVERHEAD, "stream" => "false"),
            metrics::histogram!(OVERHEAD, "stream" => "true"),
        ]
    });
    &pair[usize::from(stream)]
}

/// One chat request, watched from arrival to its last byte.
#[derive(Debug)]
pub(crate) struct ChatWatch {
    started: Instant,
    /// The requested model when it is a label-worthy name (configured or `auto`).
    requested: Option<String>,
    stream: bool,
}

impl ChatWatch {
    pub fn start() -> Self {
        Self {
            started: Instant::now(),
            requested: None,
            stream: false,
        }
    }

    /// The body was parsed: remember what was asked for, for the error case.
    pub fn parsed(&mut self, catalog: &Catalog, model: &str, stream: bool) {
        self.stream = stream;
        let label = served_model_label(catalog, model);
        self.requested = Some(label.to_owned());
    }

    /// The requested model as a label (configured, `auto` or `other`), once the body is read.
    pub fn requested(&self) -> Option<&str> {
        self.requested.as_deref()
    }

    /// The request ended in an error response.
    pub fn failed(self, error: &Error) {
        let model = self.requested.as_deref().unwrap_or(NONE);
        let handles = handles(model, NONE, NONE, error.status(), self.stream);
        handles.requests.increment(1);
        handles
            .duration
            .record(self.started.elapsed().as_secs_f64());
    }

    /// The request was answered by `route`. A stream's body is wrapped so that its duration
    /// is recorded when the last byte went out (or the client left).
    pub fn answered(
        self,
        catalog: &Catalog,
        route: &RouteInfo,
        response: Response<Body>,
    ) -> Response<Body> {
        let to_answer = self.started.elapsed();
        overhead(self.stream).record(to_answer.saturating_sub(route.upstream_time).as_secs_f64());
        let model = served_model_label(catalog, &route.model);
        let handles = handles(
            model,
            &route.provider,
            route.key_source.as_str(),
            response.status().as_u16(),
            self.stream,
        );
        handles.requests.increment(1);
        if !self.stream {
            handles.duration.record(to_answer.as_secs_f64());
            return response;
        }
        response.map(|body| {
            TimedBody {
                inner: body,
                started: self.started,
                duration: Some(handles.duration.clone()),
            }
            .boxed_unsync()
        })
    }
}

/// A streamed body that records its duration once, when it ends or is dropped.
struct TimedBody {
    inner: Body,
    started: Instant,
    duration: Option<Histogram>,
}

impl TimedBody {
    fn finish(&mut self) {
        if let Some(duration) = self.duration.take() {
            duration.record(self.started.elapsed().as_secs_f64());
        }
    }
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.finish();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TimedBody {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_reuses_its_own_handles_per_label_set() {
        let first = handles("m-recent", "p", "platform", 200, false);
        let again = handles("m-recent", "p", "platform", 200, false);
        assert!(Arc::ptr_eq(&first, &again));
        let other_status = handles("m-recent", "p", "platform", 500, false);
        assert!(!Arc::ptr_eq(&first, &other_status));
        // Another thread has handles of its own on the same label set.
        let elsewhere = std::thread::spawn(|| handles("m-recent", "p", "platform", 200, false))
            .join()
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &elsewhere));
    }

    #[test]
    fn a_thread_keeps_the_label_sets_it_saw_last() {
        std::thread::spawn(|| {
            let first = handles("m-bound", "p", "platform", 200, true);
            for status in 0..recent::KEPT as u16 {
                handles("m-bound", "p", "platform", 300 + status, true);
            }
            // The oldest made room: looked up again, it is kept anew.
            let labels = Labels {
                model: "m-bound",
                provider: "p",
                key_source: "platform",
                status: 200,
                stream: true,
            };
            assert!(recent::find(&labels).is_none());
            let again = handles("m-bound", "p", "platform", 200, true);
            assert!(!Arc::ptr_eq(&first, &again));
            assert!(recent::find(&labels).is_some());
        })
        .join()
        .unwrap();
    }
}
