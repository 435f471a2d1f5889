//! Turning a family's stream events into core chunks: the decoder contract every family's
//! `stream.rs` fulfils, and the one loop that drives a decoder over an upstream body.

use std::collections::VecDeque;
use std::pin::Pin;

use futures::{FutureExt, Stream, StreamExt};
use llmgate_core::{Error, Result, chat::ChatChunk, provider::ChunkStream};

/// A wire family's stream state machine: events in, OpenAI-style chunks out.
pub(crate) trait ChunkDecoder: Send + 'static {
    type Event: Send + 'static;

    /// What ends a good stream (`[DONE]`, `message_stop`), named in the error when a stream
    /// ends without it.
    const END_MARKER: &'static str;

    /// The configured provider name, for errors.
    fn provider(&self) -> &str;

    /// The chunks one event produces. An error ends the stream.
    fn decode(&mut self, event: Self::Event) -> Result<Vec<ChatChunk>>;

    /// Whether the upstream sent its end marker; nothing after it is read.
    fn is_done(&self) -> bool;
}

/// Drive `decoder` over `events` as a chunk stream. A body that ends before the decoder saw
/// its end marker is an error, never a quiet end. Built with `unfold`, so dropping the stream
/// drops the upstream connection; an `Err` item is always the last.
pub(crate) fn chunk_stream<S, D>(events: S, decoder: D) -> ChunkStream
where
    S: Stream<Item = Result<D::Event>> + Send + 'static,
    D: ChunkDecoder,
{
    struct State<S, D> {
        events: Pin<Box<S>>,
        decoder: D,
        pending: VecDeque<ChatChunk>,
        over: bool,
    }
    let state = State {
        events: Box::pin(events),
        decoder,
        pending: VecDeque::new(),
        over: false,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(chunk) = state.pending.pop_front() {
                return Some((Ok(chunk), state));
            }
            if state.over {
                return None;
            }
            if state.decoder.is_done() {
                // Read the body's clean end if it is already here, so the connection can go
                // back to the pool; never wait for it.
                let _ = state.events.next().now_or_never();
                return None;
            }
            let decoded = match state.events.next().await {
                Some(Ok(event)) => state.decoder.decode(event),
                Some(Err(error)) => Err(error),
                None => Err(Error::upstream_stream(
                    state.decoder.provider(),
                    format!("the stream ended without {}", D::END_MARKER),
                )),
            };
            match decoded {
                Ok(chunks) => state.pending.extend(chunks),
                Err(error) => {
                    state.over = true;
                    return Some((Err(error), state));
                }
            }
        }
    }))
}

/// Finished chunks as a stream (an upstream that answered a stream request whole, the demo).
pub(crate) fn replay(chunks: Vec<ChatChunk>) -> ChunkStream {
    Box::pin(futures::stream::iter(
        chunks.into_iter().map(Ok::<_, Error>),
    ))
}

/// Run `decoder` over `events` as [`chunk_stream`] would: every chunk as JSON, and how the
/// stream ended. For the families' unit tests.
#[cfg(test)]
pub(crate) fn decode_all<D: ChunkDecoder>(
    decoder: D,
    events: Vec<D::Event>,
) -> (Vec<serde_json::Value>, Result<()>) {
    let events = futures::stream::iter(events.into_iter().map(Ok));
    let items: Vec<Result<ChatChunk>> = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(chunk_stream(events, decoder).collect());
    let mut chunks = Vec::new();
    for item in items {
        match item {
            Ok(chunk) => chunks.push(serde_json::to_value(chunk).unwrap()),
            Err(error) => return (chunks, Err(error)),
        }
    }
    (chunks, Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers in, one chunk per number out; `0` is the end marker, `-1` a malformed event.
    struct Numbers {
        done: bool,
    }

    impl ChunkDecoder for Numbers {
        type Event = i32;
        const END_MARKER: &'static str = "`0`";

        fn provider(&self) -> &str {
            "p"
        }

        fn decode(&mut self, event: i32) -> Result<Vec<ChatChunk>> {
            match event {
                0 => {
                    self.done = true;
                    Ok(Vec::new())
                }
                -1 => Err(Error::upstream_stream("p", "malformed event")),
                n => Ok(vec![ChatChunk::empty(n.to_string(), "m", 0)]),
            }
        }

        fn is_done(&self) -> bool {
            self.done
        }
    }

    fn run(events: Vec<i32>) -> (Vec<String>, Result<()>) {
        let (chunks, end) = decode_all(Numbers { done: false }, events);
        let ids = chunks.iter().map(|c| c["id"].as_str().unwrap().to_owned());
        (ids.collect(), end)
    }

    #[test]
    fn nothing_after_the_end_marker_is_read() {
        let (ids, end) = run(vec![1, 2, 0, 3, -1]);
        assert_eq!(ids, ["1", "2"]);
        end.unwrap();
    }

    #[test]
    fn a_body_that_ends_without_the_marker_ends_with_an_error() {
        let (ids, end) = run(vec![1, 2]);
        assert_eq!(ids, ["1", "2"]);
        let error = end.unwrap_err();
        assert_eq!(error.code(), Some("upstream_stream_error"));
        assert!(error.message().contains("without `0`"), "{error}");
    }

    #[test]
    fn an_error_is_the_last_item() {
        let (ids, end) = run(vec![1, -1, 2, 0]);
        assert_eq!(ids, ["1"]);
        assert!(end.unwrap_err().message().contains("malformed"));
    }
}
