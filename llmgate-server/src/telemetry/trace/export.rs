//! Getting finished spans to the collector without ever holding up a request.
//!
//! A span that ends is put on a bounded queue with `try_send`: it never waits. When the queue
//! is full (the collector is down or slower than the traffic) the span is dropped and counted.
//! One task takes spans off the queue in batches (waking at most every tenth of a second, not
//! per span), encodes each batch as OTLP protobuf and posts one batch at a time, each under a
//! timeout; a batch the collector refuses, or that times out, is dropped and counted too.
//! Nothing retries: a trace system that falls behind loses spans, never requests.

use std::time::Duration;

use metrics::{Counter, Unit};
use tokio::sync::mpsc;

use super::otlp::Encoder;
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

/// How long the exporter lets spans gather after the first, before sending what is there.
const BATCH_DELAY: Duration = Duration::from_millis(100);

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
    fn send(&self, body: Vec<u8>) -> impl Future<Output = Result<(), String>> + Send;
}

/// Finished spans onto the queue, or counted as dropped.
#[derive(Debug)]
pub(super) struct Queue {
    spans: mpsc::Sender<SpanRecord>,
    dropped: Counter,
}

impl Queue {
    /// The queue, and the export task it feeds started on the current runtime. The task ends
    /// once the queue is dropped.
    pub fn start(sink: impl Sink, encoder: Encoder, limits: QueueLimits) -> Self {
        let (spans, queued) = mpsc::channel(limits.max_queued);
        tokio::spawn(export_loop(sink, encoder, queued, limits));
        Self {
            spans,
            dropped: metrics::counter!(SPANS_DROPPED, "reason" => "queue_full"),
        }
    }

    /// Queue a finished span; never waits.
    pub fn push(&self, span: SpanRecord) {
        if self.spans.try_send(span).is_err() {
            self.dropped.increment(1);
        }
    }
}

/// Export batches until the queue's sender is gone.
async fn export_loop(
    sink: impl Sink,
    encoder: Encoder,
    mut spans: mpsc::Receiver<SpanRecord>,
    limits: QueueLimits,
) {
    let failed = metrics::counter!(SPANS_DROPPED, "reason" => "export_failed");
    let exported = metrics::counter!(SPANS_EXPORTED);
    let mut batch = Vec::with_capacity(limits.max_batch);
    let mut body = Vec::new();
    loop {
        if spans.recv_many(&mut batch, limits.max_batch).await == 0 {
            return;
        }
        // Let spans gather without waking this task for each one (under load a wake-up per
        // span cost more than building it), then send all that is there, batch by batch.
        tokio::time::sleep(BATCH_DELAY).await;
        loop {
            while batch.len() < limits.max_batch {
                match spans.try_recv() {
                    Ok(span) => batch.push(span),
                    Err(_) => break,
                }
            }
            let full = batch.len() == limits.max_batch;
            let count = batch.len() as u64;
            encoder.encode(&batch, &mut body);
            batch.clear();
            let sent = std::mem::take(&mut body);
            match tokio::time::timeout(limits.export_timeout, sink.send(sent)).await {
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
            if !full {
                break;
            }
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
    async fn send(&self, body: Vec<u8>) -> Result<(), String> {
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
        async fn send(&self, _body: Vec<u8>) -> Result<(), String> {
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
            let span = SpanRecord::start([1; 16], [1; 8], Kind::Server, ["a".into(), "b".into()]);
            queue.push(span.end());
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
