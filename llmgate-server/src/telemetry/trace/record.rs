//! A span as plain data: what the request path fills in (ids, times, attributes by static
//! name) and hands to the export queue. Nothing here formats or encodes; that is the export
//! task's job, off the request path.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::context::{SpanId, TraceId};

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Static(&'static str),
    Text(Arc<str>),
    Int(i64),
    Bool(bool),
}

impl From<&'static str> for Value {
    fn from(text: &'static str) -> Self {
        Value::Static(text)
    }
}

impl From<Arc<str>> for Value {
    fn from(text: Arc<str>) -> Self {
        Value::Text(text)
    }
}

impl From<&String> for Value {
    fn from(text: &String) -> Self {
        Value::Text(Arc::from(text.as_str()))
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// OTLP's span kinds, numbered as the protocol numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Server = 2,
    Client = 3,
}

/// One span, from its start to its end.
#[derive(Debug, Clone)]
pub(super) struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    /// Whether the parent came from another process (the caller).
    pub remote_parent: bool,
    pub trace_state: Option<Arc<str>>,
    /// The name, in two words joined by a space when encoded (`POST` `/v1/chat/completions`,
    /// `chat` `gpt-4o`): joining them here would cost the request an allocation.
    pub name: [Value; 2],
    pub kind: Kind,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub attributes: Vec<(&'static str, Value)>,
    /// The status message of a span marked as failed.
    pub error: Option<Box<str>>,
}

/// Attributes a span starts with, and room for those it gains.
const ATTRIBUTES: usize = 16;

impl SpanRecord {
    pub fn start(trace_id: TraceId, span_id: SpanId, kind: Kind, name: [Value; 2]) -> Self {
        Self {
            trace_id,
            span_id,
            parent_span_id: None,
            remote_parent: false,
            trace_state: None,
            name,
            kind,
            start_unix_nano: now_unix_nano(),
            end_unix_nano: 0,
            attributes: Vec::with_capacity(ATTRIBUTES),
            error: None,
        }
    }

    /// Set `key`, replacing an earlier value of it.
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        let value = value.into();
        match self.attributes.iter_mut().find(|(name, _)| *name == key) {
            Some((_, old)) => *old = value,
            None => self.attributes.push((key, value)),
        }
    }

    /// Mark the span as failed, with `message`.
    pub fn fail(&mut self, message: &str) {
        self.error = Some(Box::from(message));
    }

    /// The span as it ends now.
    pub fn end(mut self) -> Self {
        self.end_unix_nano = now_unix_nano();
        self
    }
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

    #[test]
    fn setting_an_attribute_again_replaces_it() {
        let mut span = SpanRecord::start([1; 16], [2; 8], Kind::Server, ["a".into(), "b".into()]);
        span.set("n", 1i64);
        span.set("s", "x");
        span.set("n", 2u64);
        assert_eq!(
            span.attributes,
            [("n", Value::Int(2)), ("s", Value::Static("x"))]
        );
        let span = span.end();
        assert!(span.end_unix_nano >= span.start_unix_nano && span.start_unix_nano > 0);
    }
}
