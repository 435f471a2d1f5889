//! The counters that say how many spans reached the collector and how many were dropped.

use metrics::Unit;

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
