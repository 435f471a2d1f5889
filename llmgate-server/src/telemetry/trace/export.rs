//! Getting finished spans to the collector without ever holding up a request.
//!
//! A span that ends is put on a bounded queue with `try_send`: it never waits. When the queue
//! is full (the collector is down or slower than the traffic) the span is dropped and counted.
//! One task takes spans off the queue in batches (waking at most every tenth of a second, not
//! per span) and exports one batch at a time, each under a timeout; a batch the collector refuses, or that times out, is dropped and counted too.
//! Nothing retries: a trace system that falls behind loses spans, never requests.

use std::fmt;
use std::time::Duration;

use metrics::{Counter, Unit};
use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::mpsc;

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

/// The SDK's span processor: finished spans onto the queue, or counted as dropped.
pub(super) struct QueueProcessor {
    queue: mpsc::Sender<SpanData>,
    dropped: Counter,
}

impl fmt::Debug for QueueProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueProcessor").finish_non_exhaustive()
    }
}

impl QueueProcessor {
    /// The processor, and the export task it feeds started on the current runtime.
    pub fn start(exporter: impl SpanExporter + 'static, limits: QueueLimits) -> Self {
        let (queue, spans) = mpsc::channel(limits.max_queued);
        tokio::spawn(export_loop(exporter, spans, limits));
        Self {
            queue,
            dropped: metrics::counter!(SPANS_DROPPED, "reason" => "queue_full"),
        }
    }
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self.queue.try_send(span).is_err() {
            self.dropped.increment(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    /// The export task ends by itself once the provider (and with it this sender) is gone.
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Export batches until every sender (the processor, with the tracer provider) is gone.
async fn export_loop(
    exporter: impl SpanExporter,
    mut spans: mpsc::Receiver<SpanData>,
    limits: QueueLimits,
) {
    let failed = metrics::counter!(SPANS_DROPPED, "reason" => "export_failed");
    let exported = metrics::counter!(SPANS_EXPORTED);
    let export = async |batch: Vec<SpanData>| {
        let count = batch.len() as u64;
        match tokio::time::timeout(limits.export_timeout, exporter.export(batch)).await {
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
    };
    let mut batch = Vec::with_capacity(limits.max_batch);
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
            export(std::mem::replace(
                &mut batch,
                Vec::with_capacity(limits.max_batch),
            ))
            .await;
            if !full {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use metrics_exporter_prometheus::PrometheusBuilder;
    use opentelemetry::trace::{Tracer, TracerProvider};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    use super::*;

    /// A collector that never answers.
    #[derive(Debug)]
    struct Stuck;

    impl SpanExporter for Stuck {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
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
        let processor =
            metrics::with_local_recorder(&recorder, || QueueProcessor::start(Stuck, limits));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("test");
        let started = std::time::Instant::now();
        for _ in 0..10 {
            tracer.in_span("request", |_| {});
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
