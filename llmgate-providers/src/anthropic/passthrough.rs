//! Same protocol both ways: a Messages request a client sent (see
//! [`NativeBody`](llmgate_core::chat::NativeBody)) goes upstream as it came, and the answer's
//! bytes come back as the upstream wrote them, while the usage is read on the way for the
//! charge.
//!
//! Only the gateway's own decisions are written into the body: `model` (the upstream's id) and
//! `max_tokens` (never above the cap the hold was computed for, so the charge stays within the
//! hold). Unknown fields (`context_management`, `output_config`, ...) are kept. The client's
//! `anthropic-version` and `anthropic-beta` headers are passed on.
//!
//! In a stream every upstream event rides on a chunk as its bytes
//! ([`WireJson::of`](llmgate_core::chat::WireJson::of)), on a chunk without usage: the meter takes the
//! usage off the chunk that carries it (and so clears its bytes), so the usage travels on a
//! chunk of its own after the event that reported it.

use llmgate_core::Result;
use llmgate_core::chat::{ChatChunk, ChatRequest, ChatResponse, WireJson};
use llmgate_core::chat::{NativeBody, WireFormat};
use sse_stream::Sse;

use super::stream::EventDecoder;
use crate::chunks::ChunkDecoder;
use crate::native::{Rewrite, sse_event_bytes};

/// The client's Messages body, when the request carries one.
pub(super) fn native(request: &ChatRequest) -> Option<&NativeBody> {
    request
        .native
        .as_ref()
        .filter(|native| native.format == WireFormat::AnthropicMessages)
}

/// The client's body with the upstream model id and the output cap written in.
pub(super) fn body(native: &NativeBody, request: &ChatRequest, stream: bool) -> Result<Vec<u8>> {
    let mut body = Rewrite::of(&native.body)?;
    body.set("model", request.model.as_str())?;
    body.cap("max_tokens", request.requested_max_tokens())?;
    body.set("stream", stream)?;
    body.finish()
}

/// A count request's body (`/v1/messages/count_tokens`) with the upstream model id written in.
pub(super) fn count_body(native: &NativeBody, request: &ChatRequest) -> Result<Vec<u8>> {
    let mut body = Rewrite::of(&native.body)?;
    body.set("model", request.model.as_str())?;
    body.finish()
}

/// `{"input_tokens": N}`, the answer of `/v1/messages/count_tokens`.
#[derive(Debug, serde::Deserialize)]
pub(super) struct TokenCount {
    pub input_tokens: u64,
}

/// The client's protocol headers to send on.
pub(super) fn headers(native: &NativeBody) -> impl Iterator<Item = (&'static str, &str)> {
    native.headers.iter().filter_map(|(name, value)| {
        let name = match name.as_str() {
            "anthropic-version" => "anthropic-version",
            "anthropic-beta" => "anthropic-beta",
            _ => return None,
        };
        Some((name, value.as_str()))
    })
}

/// A whole answer read for its usage, with its bytes kept for the client.
pub(super) fn whole(mut answer: ChatResponse, bytes: bytes::Bytes) -> ChatResponse {
    answer.wire = WireJson::of(WireFormat::AnthropicMessages, bytes);
    answer
}

/// The Messages event decoder, with each event's bytes carried on a chunk.
#[derive(Debug)]
pub(super) struct Passthrough {
    pub inner: EventDecoder,
}

impl ChunkDecoder for Passthrough {
    type Event = Sse;
    const END_MARKER: &'static str = EventDecoder::END_MARKER;

    fn provider(&self) -> &str {
        self.inner.provider()
    }

    fn decode(&mut self, event: Sse) -> Result<Vec<ChatChunk>> {
        let bytes = sse_event_bytes(&event);
        let mut chunks = self.inner.decode(event)?;
        let carrier = chunks.iter().position(|chunk| chunk.usage.is_none());
        match carrier {
            Some(index) => chunks[index].wire = WireJson::of(WireFormat::AnthropicMessages, bytes),
            None => {
                let mut carrier = self.inner.empty_chunk();
                carrier.wire = WireJson::of(WireFormat::AnthropicMessages, bytes);
                chunks.insert(0, carrier);
            }
        }
        Ok(chunks)
    }

    fn is_done(&self) -> bool {
        self.inner.is_done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmgate_core::chat::Message;
    use serde_json::{Value, json};

    fn native_of(body: Value) -> NativeBody {
        NativeBody {
            format: WireFormat::AnthropicMessages,
            body: body.to_string().into(),
            headers: vec![
                ("anthropic-beta".to_owned(), "a,b".to_owned()),
                ("x-other".to_owned(), "no".to_owned()),
            ],
        }
    }

    #[test]
    fn the_body_keeps_unknown_fields_and_gets_the_upstream_model_and_cap() {
        let native = native_of(json!({
            "model": "claude", "max_tokens": 32000, "stream": true,
            "context_management": {"edits": [{"type": "clear"}]},
            "messages": [{"role": "user", "content": "hi"}]
        }));
        let mut request = ChatRequest::new("claude-up", vec![Message::user("hi")]);
        request.max_tokens = Some(4096);
        let sent: Value = serde_json::from_slice(&body(&native, &request, true).unwrap()).unwrap();
        assert_eq!(
            sent,
            json!({
                "model": "claude-up", "max_tokens": 4096, "stream": true,
                "context_management": {"edits": [{"type": "clear"}]},
                "messages": [{"role": "user", "content": "hi"}]
            })
        );
        let passed: Vec<_> = headers(&native).collect();
        assert_eq!(passed, [("anthropic-beta", "a,b")]);
    }

    #[test]
    fn every_event_rides_on_a_chunk_without_usage() {
        let mut decoder = Passthrough {
            inner: EventDecoder::new("anthropic", "claude-up", 1),
        };
        let events = [
            (
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-up", "content": [], "usage": {"input_tokens": 5, "output_tokens": 1}}}),
            ),
            ("ping", json!({"type": "ping"})),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ];
        let mut carried = Vec::new();
        let mut usage = None;
        for (name, data) in events {
            let sse = Sse::default().event(name).data(data.to_string());
            for chunk in decoder.decode(sse).unwrap() {
                if let Some(bytes) = chunk.wire.get_as(WireFormat::AnthropicMessages) {
                    assert!(chunk.usage.is_none());
                    carried.push(String::from_utf8(bytes.to_vec()).unwrap());
                }
                usage = usage.or(chunk.usage);
            }
        }
        assert_eq!(carried.len(), 4);
        assert_eq!(carried[1], "event: ping\ndata: {\"type\":\"ping\"}\n\n");
        let usage = usage.unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (5, 3));
        assert!(decoder.is_done());
    }
}
