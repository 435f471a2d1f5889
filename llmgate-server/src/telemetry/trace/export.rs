//! Getting batches of finished spans to the collector without ever holding up a request.
//!
//! One task wakes when a batch is started (see [`super::queue`]), lets spans gather for a
//! tenth of a second (not a wake-up per span) or until a batch is full, then posts every
//! batch, one at a time, each under a timeout; a batch the collector refuses, or that times
//! out, is dropped and counted. Nothing retries: a trace system that falls behind loses
//! spans, never requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::counters::{SPANS_DROPPED, SPANS_EXPORTED};
use super::otlp::Encoder;
use super::queue::{Batch, Queue, QueueLimits, Shared};

/// How long the exporter lets spans gather after a batch starts, before sending what is there.
pub(super) const BATCH_DELAY: Duration = Duration::from_millis(100);

/// Where batches go: the collector, over HTTP.
pub(super) trait Sink: Send + Sync + 'static {
    /// Deliver one encoded export request; `Err` says why it was not accepted.
    fn send(&self, body: Bytes) -> impl Future<Output = Result<(), String>> + Send;
}

/// The queue spans are pushed into, with its export task started on the current runtime.
/// The task sends what is left and ends once the queue is dropped.
pub(super) fn start(sink: impl Sink, encoder: Encoder, limits: QueueLimits) -> Queue {
    let (queue, shared) = Queue::new(encoder, limits);
    tokio::spawn(export_loop(sink, shared));
    queue
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
        self.shared.recycle(std::mem::take(&mut self.buffer));
    }
}

/// Export batches as they start, until the queue is dropped.
async fn export_loop(sink: impl Sink, shared: Arc<Shared>) {
    let failed = metrics::counter!(SPANS_DROPPED, "reason" => "export_failed");
    let exported = metrics::counter!(SPANS_EXPORTED);
    loop {
        let closed = shared.wait().await;
        if !closed {
            // Let batches fill without waking this task for each span, but send as soon as
            // one is full: under load, waiting out the delay let full batches pile up to the
            // queue's bound and spans be dropped with the collector keeping up.
            tokio::select! {
                () = tokio::time::sleep(shared.limits.gather) => {}
                () = shared.filled() => {}
            }
        }
        for Batch { mut buffer, spans } in shared.take_batches() {
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
            shared.sent(spans);
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

    use super::super::record::{Kind, SpanRecord};
    use super::*;

    /// A collector that never answers.
    struct Stuck;

    impl Sink for Stuck {
        async fn send(&self, _body: Bytes) -> Result<(), String> {
            std::future::pending().await
        }
    }

    /// A collector that accepts every post and says so.
    struct Posts(tokio::sync::mpsc::UnboundedSender<()>);

    impl Sink for Posts {
        async fn send(&self, _body: Bytes) -> Result<(), String> {
            let _ = self.0.send(());
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_full_batch_is_sent_without_waiting_for_more_spans() {
        let (posts, mut posted) = tokio::sync::mpsc::unbounded_channel();
        // Spans would gather for an hour: only a full batch gets them sent in this test.
        let limits = QueueLimits {
            max_queued: 100,
            max_batch: 2,
            export_timeout: Duration::from_secs(60),
            gather: Duration::from_secs(3600),
        };
        let queue = start(Posts(posts), Encoder::new("test"), limits);
        for n in 1..=2 {
            let mut span = SpanRecord::start([1; 16], [n; 8], Kind::Server, ["a", "b"]);
            span.end();
            queue.push(&span);
        }
        let sent = tokio::time::timeout(Duration::from_secs(30), posted.recv()).await;
        assert!(matches!(sent, Ok(Some(()))), "the full batch was not sent");
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let limits = QueueLimits {
            max_queued: 2,
            max_batch: 1,
            export_timeout: Duration::from_secs(60),
            gather: BATCH_DELAY,
        };
        let queue =
            metrics::with_local_recorder(&recorder, || start(Stuck, Encoder::new("test"), limits));
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
