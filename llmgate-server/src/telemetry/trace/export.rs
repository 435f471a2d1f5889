//! Getting finished spans to the collector without ever holding up a request.
//!
//! A span that ends is written into the batch being filled at once, on the request's own
//! thread, under a short lock: its name and attributes were encoded as OTLP protobuf while
//! they were set, so this is one copy and a few fixed fields, and it never waits for the
//! export. When the spans waiting reach the queue's bound (the collector
//! is down or slower than the traffic) the span is dropped and counted. One task wakes when a
//! batch is started, lets spans gather for a tenth of a second (not a wake-up per span), then
//! posts every batch, one at a time, each under a timeout; a batch the collector refuses, or
//! that times out, is dropped and counted too. Nothing retries: a trace system that falls
//! behind loses spans, never requests.
//!
//! Batch buffers are reused: a sent batch's buffer goes back to a pool (as many as may wait at
//! once), so under load the export allocates nothing and, above all, frees no large blocks (measured at 64 clients:
//! the earlier channel of span records, copied into a batch and freed on the export task's
//! thread, cost the request threads' allocator more than the encoding itself).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use metrics::{Counter, Unit};
use tokio::sync::Notify;

use super::otlp::{Encoder, push_span};
use super::record::SpanRecord;

/// Spans dropped instead of exported, by reason (`queue_full`, `export_failed`).
pub const SPANS_DROPPED: &str = "llmgate_trace_spans_dropped_total";
/// Spans the collector accepted.
pub const SPANS_EXPORTED: &str = "llmgate_trace_spans_exported_total";

pub(crate) fn describe() {
    metrics::describe_counter!(
        SPANS_DROPPED,
        Unit::Count,
        "Trace spans dropped instead of exported (queue full, export failed or timed out)."
    );
    metrics::describe_counter!(
        SPANS_EXPORTED,
        Unit::Count,
        "Trace spans the OTLP collector accepted."
    );
}

/// How long the exporter lets spans gather after a batch starts, before sending what is there.
const BATCH_DELAY: Duration = Duration::from_millis(100);

/// What a span usually takes encoded, to size a new batch's buffer at once (growing it by
/// doubling would copy it a dozen times).
const SPAN_BYTES: usize = 512;

/// A new batch buffer's capacity at most, whatever `max_export_batch` says.
const MAX_BUFFER_BYTES: usize = 1 << 20;

/// How the queue and its exporter are sized.
#[derive(Debug, Clone, Copy)]
pub(super) struct QueueLimits {
    pub max_queued: usize,
    pub max_batch: usize,
    pub export_timeout: Duration,
}

/// Where batches go: the collector, over HTTP.
pub(super) trait Sink: Send + Sync + 'static {
    /// Deliver one encoded export request; `Err` says why it was not accepted.
    fn send(&self, body: Bytes) -> impl Future<Output = Result<(), String>> + Send;
}

/// Spans encoded and waiting for the export task.
#[derive(Debug)]
struct Batch {
    /// The envelope's room (see [`Encoder::envelope_room`]), then the spans.
    buffer: Vec<u8>,
    spans: usize,
}

#[derive(Debug, Default)]
struct Waiting {
    /// The batch spans are written into.
    filling: Option<Batch>,
    /// Batches that reached the batch size, oldest first.
    full: Vec<Batch>,
    /// Spans in batches not yet sent (the queue's bound counts these).
    spans: usize,
    /// Buffers of sent batches, for the next ones.
    pool: Vec<Vec<u8>>,
}

/// What the request threads and the export task share.
#[derive(Debug)]
struct Shared {
    waiting: Mutex<Waiting>,
    /// A batch was started, or the queue closed.
    wake: Notify,
    closed: AtomicBool,
    encoder: Encoder,
    limits: QueueLimits,
}

impl Shared {
    fn waiting(&self) -> MutexGuard<'_, Waiting> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A buffer for a new batch, with the envelope's room in front.
    fn new_buffer(&self, pool: &mut Vec<Vec<u8>>) -> Vec<u8> {
        let room = self.encoder.envelope_room();
        let mut buffer = pool.pop().unwrap_or_else(|| {
            let spans = self.limits.max_batch.saturating_mul(SPAN_BYTES);
            Vec::with_capacity(room + spans.min(MAX_BUFFER_BYTES))
        });
        buffer.clear();
        buffer.resize(room, 0);
        buffer
    }

    /// Buffers worth keeping: as many batches as may wait at once, and one being sent.
    fn pool_size(&self) -> usize {
        let limits = self.limits;
        limits.max_queued.div_ceil(limits.max_batch.max(1)) + 1
    }
}

/// Finished spans into batches, or counted as dropped.
#[derive(Debug)]
pub(super) struct Queue {
    shared: Arc<Shared>,
    dropped: Counter,
}

impl Queue {
    /// The queue, and the export task it feeds started on the current runtime. The task sends
    /// what is left and ends once the queue is dropped.
    pub fn start(sink: impl Sink, encoder: Encoder, limits: QueueLimits) -> Self {
        let shared = Arc::new(Shared {
            waiting: Mutex::default(),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            encoder,
            limits,
        });
        tokio::spawn(export_loop(sink, shared.clone()));
        Self {
            shared,
            dropped: metrics::counter!(SPANS_DROPPED, "reason" => "queue_full"),
        }
    }

    /// Write a finished span into the current batch; never waits for the export. Its name
    /// and attributes were encoded as they were set, so under the lock this is a copy of them
    /// and a few fixed fields.
    pub fn push(&self, span: &SpanRecord) {
        let shared = &*self.shared;
        let mut waiting = shared.waiting();
        if waiting.spans >= shared.limits.max_queued {
            drop(waiting);
            self.dropped.increment(1);
            return;
        }
        let Waiting {
            filling,
            full,
            spans,
            pool,
        } = &mut *waiting;
        if let Some(batch) = filling.take_if(|batch| batch.spans >= shared.limits.max_batch) {
            full.push(batch);
        }
        let started = filling.is_none();
        let batch = filling.get_or_insert_with(|| Batch {
            buffer: shared.new_buffer(pool),
            spans: 0,
        });
        push_span(&mut batch.buffer, span);
        batch.spans += 1;
        *spans += 1;
        if started {
            shared.wake.notify_one();
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

/// A sent batch's buffer, back to the pool when the HTTP client is done with it.
struct Pooled {
    buffer: Vec<u8>,
    shared: Arc<Shared>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut waiting = self.shared.waiting();
        if waiting.pool.len() < self.shared.pool_size() {
            waiting.pool.push(std::mem::take(&mut self.buffer));
        }
    }
}

/// Export batches as they start, until the queue is dropped.
async fn export_loop(sink: impl Sink, shared: Arc<Shared>) {
    let failed = metrics::counter!(SPANS_DROPPED, "reason" => "export_failed");
    let exported = metrics::counter!(SPANS_EXPORTED);
    loop {
        shared.wake.notified().await;
        let closed = shared.closed.load(Ordering::Acquire);
        if !closed {
            // Let the batch fill without waking this task for each span.
            tokio::time::sleep(BATCH_DELAY).await;
        }
        let batches = {
            let mut waiting = shared.waiting();
            let mut batches = std::mem::take(&mut waiting.full);
            batches.extend(waiting.filling.take());
            batches
        };
        for Batch { mut buffer, spans } in batches {
            let room = shared.encoder.envelope_room();
            let spans_len = buffer.len() - room;
            let start = shared
                .encoder
                .write_envelope(&mut buffer[..room], spans_len);
            let body = Bytes::from_owner(Pooled {
                buffer,
                shared: shared.clone(),
            })
            .slice(start..);
            let count = spans as u64;
            match tokio::time::timeout(shared.limits.export_timeout, sink.send(body)).await {
                Ok(Ok(())) => exported.increment(count),
                Ok(Err(error)) => {
                    tracing::debug!(%error, spans = count, "span export failed; spans dropped");
                    failed.increment(count);
                }
                Err(_) => {
                    tracing::debug!(spans = count, "span export timed out; spans dropped");
                    failed.increment(count);
                }
            }
            shared.waiting().spans -= spans;
        }
        if closed {
            return;
        }
    }
}

/// An OTLP/HTTP collector: `POST {otlp_endpoint}/v1/traces`, protobuf.
#[derive(Debug)]
pub(super) struct Collector {
    client: reqwest::Client,
    url: String,
}

impl Collector {
    pub fn new(url: String, timeout: Duration) -> Result<Self, reqwest::Error> {
        // For an https collector; a no-op when the process installed one already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Self { client, url })
    }
}

impl Sink for Collector {
    async fn send(&self, body: Bytes) -> Result<(), String> {
        let response = self
            .client
            .post(&self.url)
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .send()
            .await
            .map_err(|error| error.without_url().to_string())?;
        let status = response.status();
        // Read the (empty) answer so the connection goes back to the pool.
        let _ = response.bytes().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the collector answered {status}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::super::record::Kind;
    use super::*;

    /// A collector that never answers.
    struct Stuck;

    impl Sink for Stuck {
        async fn send(&self, _body: Bytes) -> Result<(), String> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let limits = QueueLimits {
            max_queued: 2,
            max_batch: 1,
            export_timeout: Duration::from_secs(60),
        };
        let queue = metrics::with_local_recorder(&recorder, || {
            Queue::start(Stuck, Encoder::new("test"), limits)
        });
        let started = std::time::Instant::now();
        for _ in 0..10 {
            let mut span = SpanRecord::start([1; 16], [1; 8], Kind::Server, ["a", "b"]);
            span.end();
            queue.push(&span);
            tokio::task::yield_now().await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "ending a span never waits"
        );
        // At most one span is in the stuck export and two are queued: the rest are dropped.
        let dropped: u64 = handle
            .render()
            .lines()
            .find(|line| line.starts_with(SPANS_DROPPED))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
            .unwrap();
        assert!((7..=8).contains(&dropped), "{dropped}");
    }
}
