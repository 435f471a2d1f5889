//! A metered chat stream as Messages events, by a state machine over the chunks.
//!
//! Invariants the encoder keeps:
//! - `message_start` (then a `ping`) comes before anything else, once.
//! - At most one content block is open; a block is stopped before the next starts, so block
//!   indexes rise from 0 without gaps. Reasoning goes to a `thinking` block, text to a `text`
//!   block, each tool call to its own `tool_use` block (a fragment of an earlier call, which
//!   chat completions allows and Messages does not, is sent as a delta of that call's block).
//! - A good end stops the open block, then sends `message_delta` (stop reason and the usage in
//!   Anthropic's classes, with the gateway's charge under `llmgate`) and `message_stop`.
//! - A failure sends one `error` event and nothing after it: never `message_stop`.
//! - Events an Anthropic upstream sent (carried on the chunks) are forwarded byte for byte and
//!   nothing is encoded besides them.

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use futures::StreamExt;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use llmgate_core::chat::{ChatChunk, WireFormat};
use llmgate_core::gateway::CompletionStream;
use serde_json::{Map, Value};

use super::errors;
use super::response::{message_id, reasoning, stop_reason, usage};
use super::wire::{
    BlockDelta, MessageDelta, MessageResponse, OutputBlock, OutputUsage, StreamEvent,
};
use crate::api::response::Body;
use crate::api::sse::{self, Tally};

/// The block that is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    /// The tool call with this chat index.
    Tool(u32),
}

/// Chunks in, events out.
#[derive(Debug, Default)]
pub(super) struct Encoder {
    started: bool,
    open: Option<(Open, u32)>,
    next_index: u32,
    /// Chat tool-call index to its block index.
    tools: HashMap<u32, u32>,
    tally: Tally,
    /// The upstream speaks Messages: its events are forwarded as they came.
    forwarding: bool,
}

impl Encoder {
    /// The bytes one chunk adds: the upstream's own event when the chunk carries one (an
    /// Anthropic upstream), else the events encoded from it. Once the upstream's events are
    /// forwarded, chunks without them (the pipeline's closing usage chunk) add nothing.
    pub fn bytes(&mut self, chunk: &ChatChunk) -> Bytes {
        if let Some(upstream) = chunk.wire.get_as(WireFormat::AnthropicMessages) {
            self.forwarding = true;
            return upstream.clone();
        }
        if self.forwarding {
            return Bytes::new();
        }
        all_bytes(&self.chunk(chunk))
    }

    /// The bytes of a good end.
    pub fn end(&mut self) -> Bytes {
        if self.forwarding {
            return Bytes::new();
        }
        all_bytes(&self.finish())
    }

    /// The events one chunk adds.
    pub fn chunk(&mut self, chunk: &ChatChunk) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        if !self.started {
            self.started = true;
            events.push(StreamEvent::MessageStart {
                message: MessageResponse {
                    id: message_id(&chunk.id),
                    kind: "message",
                    role: "assistant",
                    content: Vec::new(),
                    model: chunk.model.clone(),
                    stop_reason: None,
                    stop_sequence: None,
                    usage: OutputUsage::default(),
                },
            });
            events.push(StreamEvent::Ping);
        }
        let Some(choice) = self.tally.note(chunk) else {
            return events;
        };
        let delta = &choice.delta;
        if let Some(thinking) = reasoning(&delta.extra) {
            self.open_block(Open::Thinking, &mut events);
            events.push(self.delta(BlockDelta::ThinkingDelta {
                thinking: thinking.to_owned(),
            }));
        }
        if let Some(signature) = signature(&delta.extra) {
            self.open_block(Open::Thinking, &mut events);
            events.push(self.delta(BlockDelta::SignatureDelta {
                signature: signature.to_owned(),
            }));
        }
        let text = delta.content.as_deref().or(delta.refusal.as_deref());
        if let Some(text) = text.filter(|t| !t.is_empty()) {
            self.open_block(Open::Text, &mut events);
            events.push(self.delta(BlockDelta::TextDelta {
                text: text.to_owned(),
            }));
        }
        for call in delta.tool_calls.iter().flatten() {
            let function = call.function.as_ref();
            if !self.tools.contains_key(&call.index) {
                self.close(&mut events);
                let index = self.next_index;
                self.next_index += 1;
                self.tools.insert(call.index, index);
                self.open = Some((Open::Tool(call.index), index));
                events.push(StreamEvent::ContentBlockStart {
                    index,
                    content_block: OutputBlock::ToolUse {
                        id: call.id.clone().unwrap_or_default(),
                        name: function.and_then(|f| f.name.clone()).unwrap_or_default(),
                        input: Value::Object(Map::new()),
                    },
                });
            }
            let arguments = function.and_then(|f| f.arguments.as_deref());
            if let (Some(arguments), Some(&index)) = (
                arguments.filter(|a| !a.is_empty()),
                self.tools.get(&call.index),
            ) {
                events.push(StreamEvent::ContentBlockDelta {
                    index,
                    delta: BlockDelta::InputJsonDelta {
                        partial_json: arguments.to_owned(),
                    },
                });
            }
        }
        events
    }

    /// The events of a good end.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        self.close(&mut events);
        events.push(StreamEvent::MessageDelta {
            delta: MessageDelta {
                stop_reason: Some(stop_reason(self.tally.finish)),
                stop_sequence: None,
            },
            usage: self.tally.usage.as_ref().map(usage).unwrap_or_default(),
            llmgate: self.tally.charge.take(),
        });
        events.push(StreamEvent::MessageStop);
        events
    }

    /// Open a block of this kind unless one is open already.
    fn open_block(&mut self, kind: Open, events: &mut Vec<StreamEvent>) {
        if matches!(self.open, Some((open, _)) if open == kind) {
            return;
        }
        self.close(events);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((kind, index));
        let content_block = match kind {
            Open::Thinking => OutputBlock::Thinking {
                thinking: String::new(),
                signature: String::new(),
            },
            Open::Text | Open::Tool(_) => OutputBlock::Text {
                text: String::new(),
            },
        };
        events.push(StreamEvent::ContentBlockStart {
            index,
            content_block,
        });
    }

    /// A delta of the open block.
    fn delta(&self, delta: BlockDelta) -> StreamEvent {
        StreamEvent::ContentBlockDelta {
            index: self.open.map_or(0, |(_, index)| index),
            delta,
        }
    }

    fn close(&mut self, events: &mut Vec<StreamEvent>) {
        if let Some((_, index)) = self.open.take() {
            events.push(StreamEvent::ContentBlockStop { index });
        }
    }
}

/// A thinking block's signature, when an upstream sends one.
fn signature(extra: &Map<String, Value>) -> Option<&str> {
    extra
        .get("reasoning_signature")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// One `event: NAME` / `data: JSON` event.
pub(super) fn event_bytes(event: &StreamEvent) -> Bytes {
    let json = serde_json::to_vec(event).unwrap_or_else(|_| b"{}".to_vec());
    let name = event.name();
    let mut out = Vec::with_capacity(json.len() + name.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(&json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

fn all_bytes(events: &[StreamEvent]) -> Bytes {
    events.iter().flat_map(event_bytes).collect()
}

/// The body: an `unfold` over the metered stream (no spawned pump), so a client that goes away
/// drops the upstream connection and the hold is settled.
fn body(stream: CompletionStream) -> Body {
    let span = tracing::Span::current();
    let start = (Some((stream, Encoder::default())), span);
    let frames = futures::stream::unfold(start, |(state, span)| async move {
        let (mut stream, mut encoder) = state?;
        // A chunk may add no bytes (the closing usage chunk of a forwarded stream): read on,
        // so that no empty frame is sent.
        loop {
            let (bytes, next) = match stream.next().await {
                Some(Ok(chunk)) => {
                    sse::record_cost(&span, &chunk);
                    (encoder.bytes(&chunk), Some((stream, encoder)))
                }
                Some(Err(error)) => {
                    tracing::warn!(parent: &span, %error, "stream failed after it started");
                    (event_bytes(&errors::event(&error)), None)
                }
                None => {
                    tracing::info!(parent: &span, "stream finished");
                    (encoder.end(), None)
                }
            };
            match next {
                Some(state) if bytes.is_empty() => (stream, encoder) = state,
                _ if bytes.is_empty() => return None,
                next => return Some((Ok::<_, Infallible>(Frame::data(bytes)), (next, span))),
            }
        }
    });
    StreamBody::new(frames).boxed_unsync()
}

/// A 200 response carrying the event stream.
pub(super) fn response(stream: CompletionStream) -> Response<Body> {
    sse::event_stream(body(stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmgate_core::Error;
    use serde_json::json;

    fn chunks(values: Vec<Value>) -> Vec<ChatChunk> {
        values
            .into_iter()
            .map(|v| serde_json::from_value(v).unwrap())
            .collect()
    }

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn encode(values: Vec<Value>) -> Vec<Value> {
        let mut encoder = Encoder::default();
        let mut events = Vec::new();
        for chunk in chunks(values) {
            events.extend(encoder.chunk(&chunk));
        }
        events.extend(encoder.finish());
        events
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect()
    }

    #[test]
    fn text_stream_has_the_documented_event_order() {
        let events = encode(vec![
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": "Hel"}), Value::Null),
            chunk(json!({"content": "lo"}), json!("length")),
            json!({"id": "c1", "model": "m", "choices": [],
                   "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12,
                             "prompt_tokens_details": {"cached_tokens": 4}},
                   "llmgate": {"cost_micros": 7}}),
        ]);
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[0]["message"]["id"], "msg_c1");
        assert_eq!(
            events[3]["delta"],
            json!({"type": "text_delta", "text": "Hel"})
        );
        assert_eq!(
            events[6],
            json!({"type": "message_delta",
                   "delta": {"stop_reason": "max_tokens", "stop_sequence": null},
                   "usage": {"input_tokens": 6, "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 4, "output_tokens": 2},
                   "llmgate": {"cost_micros": 7}})
        );
    }

    #[test]
    fn thinking_then_text_then_tool_calls_get_their_own_blocks() {
        let events = encode(vec![
            chunk(json!({"reasoning_content": "hm"}), Value::Null),
            chunk(json!({"content": "Ok."}), Value::Null),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                     "function": {"name": "f", "arguments": ""}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\""}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                                     "function": {"name": "g", "arguments": "{}"}}]}),
                json!("tool_calls"),
            ),
        ]);
        let summary: Vec<String> = events
            .iter()
            .skip(2)
            .map(|e| {
                let index = e["index"]
                    .as_u64()
                    .map(|i| i.to_string())
                    .unwrap_or_default();
                let what = e["content_block"]["type"]
                    .as_str()
                    .or(e["delta"]["type"].as_str())
                    .unwrap_or("");
                format!("{} {index} {what}", e["type"].as_str().unwrap())
            })
            .collect();
        assert_eq!(
            summary,
            [
                "content_block_start 0 thinking",
                "content_block_delta 0 thinking_delta",
                "content_block_stop 0 ",
                "content_block_start 1 text",
                "content_block_delta 1 text_delta",
                "content_block_stop 1 ",
                "content_block_start 2 tool_use",
                "content_block_delta 2 input_json_delta",
                "content_block_delta 2 input_json_delta",
                "content_block_stop 2 ",
                "content_block_start 3 tool_use",
                "content_block_delta 3 input_json_delta",
                "content_block_stop 3 ",
                "message_delta  ",
                "message_stop  ",
            ]
        );
        assert_eq!(events[15]["delta"]["stop_reason"], "tool_use");
        assert_eq!(
            events[8]["content_block"],
            json!({"type": "tool_use", "id": "call_1", "name": "f", "input": {}})
        );
    }

    #[test]
    fn upstream_events_are_forwarded_and_nothing_is_added() {
        let mut encoder = Encoder::default();
        let event = "event: ping\ndata: {\"type\":\"ping\"}\n\n";
        let mut carrier = ChatChunk::empty("msg_1", "m", 0);
        carrier.wire = llmgate_core::chat::WireJson::of(WireFormat::AnthropicMessages, event);
        assert_eq!(encoder.bytes(&carrier), event);
        // The pipeline's closing chunk with usage and charge, then the end.
        let closing: ChatChunk = serde_json::from_value(json!({
            "id": "msg_1", "model": "m", "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            "llmgate": {"cost_micros": 3}
        }))
        .unwrap();
        assert!(encoder.bytes(&closing).is_empty());
        assert!(encoder.end().is_empty());
        // Chat completions bytes are not Messages events: the chunk is encoded.
        let mut openai = ChatChunk::empty("c", "m", 0);
        openai.wire = llmgate_core::chat::WireJson::new("{}");
        let encoded = Encoder::default().bytes(&openai);
        assert!(encoded.starts_with(b"event: message_start\n"));
    }

    #[test]
    fn a_failure_is_an_error_event() {
        let event = errors::event(&Error::from_upstream_status("p", 529, "busy"));
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["type"], "error");
        assert_eq!(value["error"]["type"], "overloaded_error");
        let bytes = event_bytes(&event);
        assert!(bytes.starts_with(b"event: error\ndata: {"));
    }
}
