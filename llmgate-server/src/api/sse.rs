//! A completion stream as a Server-Sent Events body.
//!
//! The body is a stream over the gateway's `CompletionStream` (no spawned pump), so a client
//! that goes away drops it, which drops the upstream connection and settles the hold.
//!
//! Contract: docs/http-api.md#post-v1chatcompletions

use std::convert::Infallible;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use llmgate_core::chat::{ChatChunk, ChunkChoice, FinishReason, Usage};
use llmgate_core::{Error, gateway::CompletionStream};
use serde::Serialize;
use serde_json::Value;

use super::response::Body;

/// One chunk's event: the upstream's own JSON when the chunk carries it unchanged (see
/// `ChatChunk::wire`), else the chunk encoded.
fn chunk_event(chunk: &ChatChunk) -> Bytes {
    let Some(json) = chunk.wire.get() else {
        return event(chunk);
    };
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// One `data: ...` event.
fn event<T: Serialize>(value: &T) -> Bytes {
    match serde_json::to_vec(value) {
        Ok(json) => {
            let mut out = Vec::with_capacity(json.len() + 8);
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&json);
            out.extend_from_slice(b"\n\n");
            Bytes::from(out)
        }
        Err(_) => error_event(&Error::internal("A chunk could not be encoded.")),
    }
}

fn error_event(error: &Error) -> Bytes {
    Bytes::from(format!("data: {}\n\n", error.to_json()))
}

const DONE: &[u8] = b"data: [DONE]\n\n";

/// Where the body is in the stream.
enum Phase {
    Streaming(CompletionStream),
    /// The last event went out; nothing follows.
    Finished,
}

/// Chunks as `data: {json}`, then `data: [DONE]` after a good end; a failure becomes one error
/// event and ends the body without `[DONE]`.
///
/// The request's span (current when this is called) gets the stream's cost, and one log line
/// when the stream ends.
pub(crate) fn body(stream: CompletionStream) -> Body {
    let span = tracing::Span::current();
    let start = (Phase::Streaming(stream), span);
    let frames = futures::stream::unfold(start, |(phase, span)| async move {
        let Phase::Streaming(mut stream) = phase else {
            return None;
        };
        let (bytes, next) = match stream.next().await {
            Some(Ok(chunk)) => {
                record_cost(&span, &chunk);
                (chunk_event(&chunk), Phase::Streaming(stream))
            }
            Some(Err(error)) => {
                tracing::warn!(parent: &span, %error, "stream failed after it started");
                (error_event(&error), Phase::Finished)
            }
            None => {
                tracing::info!(parent: &span, "stream finished");
                (Bytes::from_static(DONE), Phase::Finished)
            }
        };
        Some((Ok::<_, Infallible>(Frame::data(bytes)), (next, span)))
    });
    StreamBody::new(frames).boxed_unsync()
}

/// The stream's charge on the request's span, from the last chunk that carries it.
pub(super) fn record_cost(span: &tracing::Span, chunk: &ChatChunk) {
    if let Some(cost) = chunk
        .extra
        .get("llmgate")
        .and_then(|l| l.get("cost_micros"))
        .and_then(serde_json::Value::as_i64)
    {
        span.record("cost_micros", cost);
    }
}

/// What another protocol's stream encoder reads off the chunks for its closing event: the
/// usage, the gateway's charge (the metered stream's last chunk carries both) and the finish
/// reason.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub usage: Option<Usage>,
    pub charge: Option<Value>,
    pub finish: Option<FinishReason>,
}

impl Tally {
    /// Note what the chunk carries; its first choice, if it has one.
    pub fn note<'a>(&mut self, chunk: &'a ChatChunk) -> Option<&'a ChunkChoice> {
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage.clone());
        }
        if let Some(charge) = chunk.extra.get("llmgate") {
            self.charge = Some(charge.clone());
        }
        let choice = chunk.choices.iter().find(|c| c.index == 0)?;
        if choice.finish_reason.is_some() {
            self.finish = choice.finish_reason;
        }
        Some(choice)
    }
}

/// A 200 response carrying the event stream.
pub(crate) fn response(stream: CompletionStream) -> Response<Body> {
    event_stream(body(stream))
}

/// A 200 `text/event-stream` response with this body, of any protocol.
pub(super) fn event_stream(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tell buffering proxies (nginx) to pass events through as they come.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmgate_core::chat::WireJson;

    #[test]
    fn an_unchanged_upstream_chunk_goes_out_as_it_came() {
        let upstream = r#"{"id":"c1", "object":"chat.completion.chunk","created":1,"model":"m","choices":[],"vendor":{"b":1,"a":2}}"#;
        let mut chunk: ChatChunk = serde_json::from_str(upstream).unwrap();
        chunk.wire = WireJson::new(upstream.as_bytes().to_vec());
        assert_eq!(chunk_event(&chunk), format!("data: {upstream}\n\n"));

        chunk.wire.clear();
        let encoded = chunk_event(&chunk);
        assert_ne!(encoded, format!("data: {upstream}\n\n"));
        assert_eq!(encoded, event(&chunk));
    }
}
