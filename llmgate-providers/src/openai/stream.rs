//! OpenAI's server-sent-event stream as core chunks.
//!
//! Bytes → SSE events (the `sse-stream` crate, see [`crate::http::sse_events`]) → chunks. A good
//! stream ends with `data: [DONE]`; anything else that ends it (a cut connection, silence longer
//! than the idle timeout, an error event, garbage) becomes one `Err` item, and then the stream
//! ends.

use std::sync::Arc;

use llmgate_core::{Result, chat::ChatChunk, keys::Secret};
use sse_stream::Sse;

use super::convert;
use crate::chunks::ChunkDecoder;

/// Turns SSE events into chunks. Pure: no I/O, no clock.
#[derive(Debug, Clone)]
pub(crate) struct EventDecoder {
    provider: Arc<str>,
    /// Scrubbed from in-band error messages.
    key: Option<Secret>,
    done: bool,
}

impl EventDecoder {
    pub(crate) fn new(provider: Arc<str>, key: Option<Secret>) -> Self {
        Self {
            provider,
            key,
            done: false,
        }
    }
}

impl ChunkDecoder for EventDecoder {
    type Event = Sse;
    const END_MARKER: &'static str = "[DONE]";

    fn provider(&self) -> &str {
        &self.provider
    }

    fn decode(&mut self, event: Sse) -> Result<Vec<ChatChunk>> {
        let Some(data) = event.data else {
            // `id:`/`retry:`-only blocks carry nothing for us.
            return Ok(Vec::new());
        };
        let data = data.trim();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        if data == "[DONE]" {
            self.done = true;
            return Ok(Vec::new());
        }
        if event.event.as_deref() == Some("error") {
            return Err(convert::stream_error_event(
                &self.provider,
                data,
                self.key.as_ref(),
            ));
        }
        convert::chunk_from_wire(&self.provider, data, self.key.as_ref()).map(|chunk| vec![chunk])
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunks::decode_all;

    fn event(data: &str) -> Sse {
        Sse::default().data(data)
    }

    const CHUNK: &str =
        r#"{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}"#;

    fn decode(events: Vec<Sse>) -> (Vec<serde_json::Value>, Result<()>) {
        decode_all(EventDecoder::new("p".into(), None), events)
    }

    #[test]
    fn done_ends_cleanly_and_empty_events_are_ignored() {
        let (chunks, end) = decode(vec![
            Sse::default().id("1"),
            event(CHUNK),
            Sse::default().event("ping").data(""),
            event("[DONE]"),
            event("garbage after the end is never read"),
        ]);
        end.unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "hi");
    }

    #[test]
    fn end_without_done_is_an_error() {
        let (chunks, end) = decode(vec![event(CHUNK)]);
        assert_eq!(chunks.len(), 1);
        let error = end.unwrap_err();
        assert!(error.message().contains("without [DONE]"), "{error}");
    }

    #[test]
    fn error_named_event_fails_the_stream_without_the_key() {
        let key = Secret::new("sk-KEY-0123456789abc");
        let (chunks, end) = decode_all(
            EventDecoder::new("p".into(), Some(key)),
            vec![
                event(CHUNK),
                Sse::default()
                    .event("error")
                    .data(r#"{"message":"boom for sk-KEY-0123456789abc"}"#),
                event(CHUNK),
            ],
        );
        assert_eq!(chunks.len(), 1);
        let error = end.unwrap_err();
        assert!(error.message().contains("boom"), "{error}");
        assert!(!error.message().contains("sk-KEY"), "{error}");
    }

    #[test]
    fn nothing_follows_a_malformed_event() {
        let (chunks, end) = decode(vec![event("nope"), event(CHUNK), event("[DONE]")]);
        assert!(chunks.is_empty());
        assert_eq!(end.unwrap_err().code(), Some("upstream_stream_error"));
    }
}
