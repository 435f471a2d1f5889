//! A completion stream as a Server-Sent Events body.
//!
//! The body is a stream over the gateway's `CompletionStream` (no spawned pump), so a client
//! that goes away drops it, which drops the upstream connection and settles the hold.

use std::convert::Infallible;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use llmgate_core::{CompletionStream, Error};
use serde::Serialize;

use super::response::Body;

/// Append one `data: ...` event.
fn write_event<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(b"data: ");
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(start);
        write_error(&Error::internal("A chunk could not be encoded."), out);
        return;
    }
    out.extend_from_slice(b"\n\n");
}

fn write_error(error: &Error, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("data: {}\n\n", error.to_json()).as_bytes());
}

const DONE: &[u8] = b"data: [DONE]\n\n";

/// Chunks already waiting when a frame is written go out in the same frame, up to this much:
/// one write for a burst instead of one per chunk, and never a wait for more.
const COALESCE_BYTES: usize = 16 * 1024;

/// Where the body is in the stream.
enum Phase {
    Streaming(CompletionStream),
    /// The last event went out; nothing follows.
    Finished,
}

/// Append what one stream item turns into; true when it was the last.
fn write_item(
    item: Option<llmgate_core::Result<llmgate_core::ChatChunk>>,
    span: &tracing::Span,
    out: &mut Vec<u8>,
) -> bool {
    match item {
        Some(Ok(chunk)) => {
            if let Some(cost) = chunk
                .extra
                .get("llmgate")
                .and_then(|l| l.get("cost_micros"))
                .and_then(serde_json::Value::as_i64)
            {
                span.record("cost_micros", cost);
            }
            write_event(&chunk, out);
            false
        }
        Some(Err(error)) => {
            tracing::warn!(parent: span, %error, "stream failed after it started");
            write_error(&error, out);
            true
        }
        None => {
            tracing::info!(parent: span, "stream finished");
            out.extend_from_slice(DONE);
            true
        }
    }
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
        let mut out = Vec::new();
        let mut finished = write_item(stream.next().await, &span, &mut out);
        while !finished && out.len() < COALESCE_BYTES {
            match stream.next().now_or_never() {
                Some(item) => finished = write_item(item, &span, &mut out),
                None => break,
            }
        }
        let next = if finished {
            Phase::Finished
        } else {
            Phase::Streaming(stream)
        };
        Some((
            Ok::<_, Infallible>(Frame::data(Bytes::from(out))),
            (next, span),
        ))
    });
    StreamBody::new(frames).boxed_unsync()
}

/// A 200 response carrying the event stream.
pub(crate) fn response(stream: CompletionStream) -> Response<Body> {
    let mut response = Response::new(body(stream));
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
