//! OpenAI's server-sent-event stream as a stream of core chunks.
//!
//! Bytes → SSE events (the `sse-stream` crate) → chunks. A good stream ends with `data: [DONE]`;
//! anything else that ends it (a cut connection, silence longer than the idle timeout, an
//! error event, garbage) becomes one `Err` item, and then the stream ends.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, Stream, StreamExt};
use llmgate_core::{ChatChunk, ChunkStream, Error, Secret};
use sse_stream::{Sse, SseByteStream};

use super::convert;

/// Why the byte stream under the events stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyFailure {
    #[error("no data within the idle timeout")]
    Idle,
    #[error("{0}")]
    Transport(String),
}

/// What one event means for the stream.
#[derive(Debug)]
enum Step {
    Chunk(Box<ChatChunk>),
    Skip,
    Done,
    Fail(Error),
}

/// Turns SSE events into chunks. Pure: no I/O, no clock.
#[derive(Debug, Clone)]
struct EventDecoder {
    provider: Arc<str>,
    key: Option<Secret>,
}

impl EventDecoder {
    fn decode(&self, event: Sse) -> Step {
        let Some(data) = event.data else {
            // `id:`/`retry:`-only blocks carry nothing for us.
            return Step::Skip;
        };
        let data = data.trim();
        if data.is_empty() {
            return Step::Skip;
        }
        if data == "[DONE]" {
            return Step::Done;
        }
        if event.event.as_deref() == Some("error") {
            return Step::Fail(convert::stream_error_event(
                &self.provider,
                data,
                self.key.as_ref(),
            ));
        }
        match convert::chunk_from_wire(&self.provider, data, self.key.as_ref()) {
            Ok(chunk) => Step::Chunk(Box::new(chunk)),
            Err(error) => Step::Fail(error),
        }
    }
}

/// Chunks decoded from `bytes`. Every read must bring data within `idle` (keep-alive comments
/// count), or the stream fails with `upstream_timeout`. Dropping the stream drops `bytes`,
/// and with it the connection.
pub(crate) fn decode_sse<S>(
    provider: Arc<str>,
    key: Option<Secret>,
    bytes: S,
    idle: Duration,
) -> ChunkStream
where
    S: Stream<Item = std::result::Result<Bytes, BodyFailure>> + Send + 'static,
{
    let timed = futures::stream::unfold(Some(Box::pin(bytes)), move |state| async move {
        let mut bytes = state?;
        match tokio::time::timeout(idle, bytes.next()).await {
            Ok(Some(item)) => Some((item, Some(bytes))),
            Ok(None) => None,
            Err(_) => Some((Err(BodyFailure::Idle), None)),
        }
    });
    let decoder = EventDecoder { provider, key };
    let events: Pin<Box<dyn Stream<Item = _> + Send>> = Box::pin(SseByteStream::new(timed));
    let chunks = futures::stream::unfold(Some((events, decoder)), |state| async move {
        let (mut events, decoder) = state?;
        loop {
            let step = match events.next().await {
                Some(Ok(event)) => decoder.decode(event),
                Some(Err(error)) => Step::Fail(body_error(&decoder, &error)),
                None => Step::Fail(Error::upstream_stream(
                    &decoder.provider,
                    "ended without [DONE]",
                )),
            };
            match step {
                Step::Chunk(chunk) => return Some((Ok(*chunk), Some((events, decoder)))),
                Step::Skip => continue,
                Step::Fail(error) => return Some((Err(error), None)),
                Step::Done => {
                    // Read the body's clean end if it is already here, so the connection can
                    // go back to the pool; never wait for it.
                    let _ = events.next().now_or_never();
                    return None;
                }
            }
        }
    });
    Box::pin(chunks)
}

fn body_error(decoder: &EventDecoder, error: &sse_stream::Error) -> Error {
    if let sse_stream::Error::Body(inner) = error {
        if let Some(BodyFailure::Idle) = inner.downcast_ref::<BodyFailure>() {
            return Error::upstream_timeout(&decoder.provider);
        }
    }
    let detail = convert::clip(&convert::scrub(
        &convert::describe(error),
        decoder.key.as_ref(),
    ));
    Error::upstream_stream(&decoder.provider, detail)
}

/// A finished list of chunks as a stream (for upstreams that answered a stream request with
/// one JSON body).
pub(crate) fn from_chunks(chunks: Vec<ChatChunk>) -> ChunkStream {
    Box::pin(futures::stream::iter(
        chunks.into_iter().map(Ok::<_, Error>),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmgate_core::{ErrorKind, Result};

    async fn decode_frames(frames: Vec<&'static [u8]>) -> Vec<Result<ChatChunk>> {
        let bytes = futures::stream::iter(
            frames
                .into_iter()
                .map(|f| Ok::<_, BodyFailure>(Bytes::from_static(f))),
        );
        let stream = decode_sse("p".into(), None, bytes, Duration::from_secs(5));
        stream.collect::<Vec<_>>().await
    }

    fn in_runtime<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(future)
    }

    const CHUNK: &[u8] = b"data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";

    #[test]
    fn done_ends_cleanly_and_comments_are_ignored() {
        let items = in_runtime(async {
            decode_frames(vec![
                b": keep-alive\n\n",
                CHUNK,
                b"event: ping\ndata:\n\n",
                b"data: [DONE]\n\n",
            ])
            .await
        });
        assert_eq!(items.len(), 1);
        assert_eq!(
            items[0].as_ref().unwrap().choices[0]
                .delta
                .content
                .as_deref(),
            Some("hi")
        );
    }

    #[test]
    fn end_without_done_is_an_error() {
        let items = in_runtime(async { decode_frames(vec![CHUNK]).await });
        assert_eq!(items.len(), 2);
        let error = items[1].as_ref().unwrap_err();
        assert!(
            error.message().contains("without [DONE]"),
            "{}",
            error.message()
        );
    }

    #[test]
    fn error_named_event_fails_the_stream() {
        let items = in_runtime(async {
            decode_frames(vec![
                CHUNK,
                b"event: error\ndata: {\"message\":\"boom\"}\n\n",
                CHUNK,
            ])
            .await
        });
        assert_eq!(items.len(), 2);
        assert!(items[1].as_ref().unwrap_err().message().contains("boom"));
    }

    #[test]
    fn nothing_follows_an_error() {
        let items = in_runtime(async {
            decode_frames(vec![b"data: nope\n\n", CHUNK, b"data: [DONE]\n\n"]).await
        });
        assert_eq!(items.len(), 1);
        assert!(items[0].is_err());
    }

    #[test]
    fn silence_longer_than_idle_is_a_timeout() {
        let items = in_runtime(async {
            let bytes = futures::stream::iter([Ok::<_, BodyFailure>(Bytes::from_static(CHUNK))])
                .chain(futures::stream::pending());
            decode_sse("p".into(), None, bytes, Duration::from_millis(50))
                .collect::<Vec<_>>()
                .await
        });
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[1].as_ref().unwrap_err().kind(),
            ErrorKind::UpstreamTimeout
        );
    }

    #[test]
    fn transport_failure_is_a_stream_error_without_the_key() {
        let items = in_runtime(async {
            let bytes = futures::stream::iter([
                Ok(Bytes::from_static(CHUNK)),
                Err(BodyFailure::Transport("reset by sk-KEY-123".into())),
            ]);
            decode_sse(
                "p".into(),
                Some(Secret::new("sk-KEY-123")),
                bytes,
                Duration::from_secs(5),
            )
            .collect::<Vec<_>>()
            .await
        });
        let error = items[1].as_ref().unwrap_err();
        assert_eq!(error.code(), Some("upstream_stream_error"));
        assert!(!error.message().contains("sk-KEY"), "{}", error.message());
    }
}
