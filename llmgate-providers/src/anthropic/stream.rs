//! The Messages API event stream as OpenAI-style chunks.
//!
//! Anthropic numbers content blocks; OpenAI numbers tool calls. A text block followed by two
//! tool_use blocks has block indices 0, 1, 2 but tool-call indices 0, 1, so the decoder keeps
//! its own numbering in order of appearance.

use std::collections::HashMap;

use llmgate_core::chat::{FunctionCallDelta, ToolCallDelta};
use llmgate_core::{
    Error, Result,
    chat::{ChatChunk, Delta, FinishReason, Role},
};
use serde_json::Value;
use sse_stream::Sse;

use super::convert::{self, arguments_text};
use super::wire::{BlockDelta, ResponseBlock, StreamEvent, WireUsage};
use crate::chunks::ChunkDecoder;

/// A tool_use block being streamed.
#[derive(Debug, Clone, Copy)]
struct ToolBlock {
    /// Its OpenAI tool-call index.
    call_index: u32,
    /// Whether any input text was sent for it yet.
    has_input: bool,
}

/// Decodes one stream's events, in order.
#[derive(Debug)]
pub(crate) struct EventDecoder {
    provider: String,
    created: u64,
    id: String,
    model: String,
    /// Content-block index → the tool call it carries.
    tool_calls: HashMap<u64, ToolBlock>,
    usage: WireUsage,
    finished: bool,
}

impl EventDecoder {
    pub(crate) fn new(provider: &str, model: &str, created: u64) -> Self {
        Self {
            provider: provider.to_owned(),
            created,
            id: String::new(),
            model: model.to_owned(),
            tool_calls: HashMap::new(),
            usage: WireUsage::default(),
            finished: false,
        }
    }

    /// A chunk with no content of its own (to carry an event's bytes through).
    pub(super) fn empty_chunk(&self) -> ChatChunk {
        ChatChunk::empty(self.id.clone(), self.model.clone(), self.created)
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<FinishReason>) -> ChatChunk {
        ChatChunk::empty(&self.id, &self.model, self.created).with_delta(delta, finish_reason)
    }

    fn malformed(&self, what: impl std::fmt::Display) -> Error {
        Error::upstream_stream(&self.provider, format!("malformed event: {what}"))
    }

    fn on_event(&mut self, event: StreamEvent) -> Result<Vec<ChatChunk>> {
        let chunks = match event {
            StreamEvent::MessageStart { message } => {
                self.id = message.id;
                if !message.model.is_empty() {
                    self.model = message.model;
                }
                if let Some(usage) = message.usage {
                    self.usage = usage;
                }
                let delta = Delta {
                    role: Some(Role::Assistant),
                    content: Some(String::new()),
                    ..Delta::default()
                };
                vec![self.chunk(delta, None)]
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => self.block_start(index, content_block),
            StreamEvent::ContentBlockDelta { index, delta } => self.block_delta(index, delta)?,
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(usage) = usage {
                    self.merge_usage(usage);
                }
                match delta.stop_reason.as_deref() {
                    Some(reason) => {
                        vec![self.chunk(Delta::default(), Some(convert::finish_reason(reason)))]
                    }
                    None => Vec::new(),
                }
            }
            StreamEvent::MessageStop => {
                self.finished = true;
                match convert::usage(&self.usage) {
                    Some(usage) => {
                        let mut last =
                            ChatChunk::empty(self.id.clone(), self.model.clone(), self.created);
                        last.usage = Some(usage);
                        vec![last]
                    }
                    None => Vec::new(),
                }
            }
            StreamEvent::Error { error } => {
                return Err(convert::stream_error(&self.provider, &error));
            }
            StreamEvent::ContentBlockStop { index } => self.block_stop(index),
            StreamEvent::Ping | StreamEvent::Unknown => Vec::new(),
        };
        Ok(chunks)
    }

    fn block_start(&mut self, index: u64, block: ResponseBlock) -> Vec<ChatChunk> {
        match block {
            ResponseBlock::Text { text } if !text.is_empty() => {
                vec![self.chunk(content(text), None)]
            }
            ResponseBlock::ToolUse { id, name, input } => {
                let call_index = self.tool_calls.len() as u32;
                // The input normally arrives as `input_json_delta`s; a start block that already
                // carries a non-empty input is sent as the first fragment.
                let arguments = match &input {
                    Value::Object(map) if !map.is_empty() => arguments_text(&input),
                    _ => String::new(),
                };
                self.tool_calls.insert(
                    index,
                    ToolBlock {
                        call_index,
                        has_input: !arguments.is_empty(),
                    },
                );
                let call = ToolCallDelta {
                    index: call_index,
                    id: Some(id),
                    kind: Some("function".to_owned()),
                    function: Some(FunctionCallDelta {
                        name: Some(name),
                        arguments: Some(arguments),
                    }),
                };
                vec![self.chunk(tool_call(call), None)]
            }
            _ => Vec::new(),
        }
    }

    fn block_delta(&mut self, index: u64, delta: BlockDelta) -> Result<Vec<ChatChunk>> {
        Ok(match delta {
            BlockDelta::TextDelta { text } if text.is_empty() => Vec::new(),
            BlockDelta::TextDelta { text } => vec![self.chunk(content(text), None)],
            BlockDelta::InputJsonDelta { partial_json } => {
                let Some(block) = self.tool_calls.get_mut(&index) else {
                    return Err(self.malformed(format!(
                        "input_json_delta for block {index}, not a tool_use"
                    )));
                };
                if partial_json.is_empty() {
                    return Ok(Vec::new());
                }
                block.has_input = true;
                let call_index = block.call_index;
                vec![self.chunk(arguments_delta(call_index, partial_json), None)]
            }
            BlockDelta::ThinkingDelta { thinking } => {
                let mut delta = Delta::default();
                delta
                    .extra
                    .insert("reasoning_content".to_owned(), Value::String(thinking));
                vec![self.chunk(delta, None)]
            }
            BlockDelta::Other => Vec::new(),
        })
    }

    /// A tool that takes no arguments streams no input at all; OpenAI clients expect the
    /// arguments to parse, so it gets `{}`.
    fn block_stop(&mut self, index: u64) -> Vec<ChatChunk> {
        match self.tool_calls.get_mut(&index) {
            Some(block) if !block.has_input => {
                block.has_input = true;
                let call_index = block.call_index;
                vec![self.chunk(arguments_delta(call_index, "{}".to_owned()), None)]
            }
            _ => Vec::new(),
        }
    }

    /// `message_delta` usage is cumulative: a field that is present replaces the one before.
    fn merge_usage(&mut self, update: WireUsage) {
        let usage = &mut self.usage;
        usage.input_tokens = update.input_tokens.or(usage.input_tokens);
        usage.output_tokens = update.output_tokens.or(usage.output_tokens);
        usage.cache_read_input_tokens = update
            .cache_read_input_tokens
            .or(usage.cache_read_input_tokens);
        usage.cache_creation_input_tokens = update
            .cache_creation_input_tokens
            .or(usage.cache_creation_input_tokens);
    }
}

impl ChunkDecoder for EventDecoder {
    type Event = Sse;
    const END_MARKER: &'static str = "`message_stop`";

    fn provider(&self) -> &str {
        &self.provider
    }

    fn decode(&mut self, event: Sse) -> Result<Vec<ChatChunk>> {
        let Some(data) = event.data else {
            return Ok(Vec::new());
        };
        let parsed =
            StreamEvent::parse(event.event.as_deref(), &data).map_err(|e| self.malformed(e))?;
        self.on_event(parsed)
    }

    fn is_done(&self) -> bool {
        self.finished
    }
}

fn content(text: String) -> Delta {
    Delta {
        content: Some(text),
        ..Delta::default()
    }
}

fn arguments_delta(call_index: u32, arguments: String) -> Delta {
    tool_call(ToolCallDelta {
        index: call_index,
        function: Some(FunctionCallDelta {
            name: None,
            arguments: Some(arguments),
        }),
        ..ToolCallDelta::default()
    })
}

fn tool_call(call: ToolCallDelta) -> Delta {
    Delta {
        tool_calls: Some(vec![call]),
        ..Delta::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sse(event: &str, data: Value) -> Sse {
        Sse::default().event(event).data(data.to_string())
    }

    fn decode_all(events: Vec<Sse>) -> (Vec<Value>, Result<()>) {
        crate::chunks::decode_all(EventDecoder::new("anthropic", "requested", 1), events)
    }

    fn start(input_tokens: u64) -> Sse {
        sse(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "content": [],
                "model": "claude-x", "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1}
            }}),
        )
    }

    #[test]
    fn tool_calls_are_numbered_in_order_of_appearance_not_by_block() {
        let (chunks, end) = decode_all(vec![
            start(10),
            sse(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "On it."}}),
            ),
            sse(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            sse(
                "content_block_start",
                json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}}}),
            ),
            sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            ),
            sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":1}"}}),
            ),
            sse(
                "content_block_start",
                json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}}}),
            ),
            sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
            ),
            sse(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 30}}),
            ),
            sse("message_stop", json!({"type": "message_stop"})),
        ]);
        end.unwrap();
        let calls: Vec<Value> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"].get("tool_calls").cloned())
            .collect();
        assert_eq!(
            calls,
            vec![
                json!([{"index": 0, "id": "toolu_a", "type": "function", "function": {"name": "f", "arguments": ""}}]),
                json!([{"index": 0, "function": {"arguments": "{\"a\":1}"}}]),
                json!([{"index": 1, "id": "toolu_b", "type": "function", "function": {"name": "g", "arguments": ""}}]),
                json!([{"index": 1, "function": {"arguments": "{}"}}]),
            ]
        );
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"], json!([]));
        assert_eq!(
            last["usage"],
            json!({"prompt_tokens": 10, "completion_tokens": 30, "total_tokens": 40})
        );
        assert_eq!(
            chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
            "tool_calls"
        );
    }

    #[test]
    fn a_tool_without_input_gets_empty_object_arguments() {
        let (chunks, end) = decode_all(vec![
            start(3),
            sse(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_n", "name": "now", "input": {}}}),
            ),
            sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            ),
            sse(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            sse(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}}),
            ),
            sse("message_stop", json!({"type": "message_stop"})),
        ]);
        end.unwrap();
        let arguments: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(arguments, "{}");
    }

    #[test]
    fn message_delta_usage_replaces_rather_than_adds() {
        let (chunks, end) = decode_all(vec![
            start(5),
            sse(
                "message_delta",
                json!({"type": "message_delta", "delta": {}, "usage": {"output_tokens": 3}}),
            ),
            sse(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}}),
            ),
            sse("message_stop", json!({"type": "message_stop"})),
        ]);
        end.unwrap();
        assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 9);
    }

    #[test]
    fn ping_and_unknown_events_are_ignored_and_error_events_fail() {
        let (chunks, end) = decode_all(vec![
            start(5),
            sse("ping", json!({"type": "ping"})),
            sse("future_thing", json!({"type": "future_thing", "x": 1})),
            sse(
                "error",
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ),
        ]);
        assert_eq!(chunks.len(), 1);
        let error = end.unwrap_err();
        assert_eq!(error.upstream_status(), Some(529));
        assert!(error.message().contains("Overloaded"));
    }

    #[test]
    fn ending_without_message_stop_is_an_error() {
        let (_, end) = decode_all(vec![start(5)]);
        assert_eq!(end.unwrap_err().code(), Some("upstream_stream_error"));
    }

    #[test]
    fn malformed_data_is_an_error() {
        let mut decoder = EventDecoder::new("anthropic", "m", 1);
        let bad = Sse::default().event("message_start").data("{not json");
        assert!(decoder.decode(bad).is_err());
        let wrong_shape = Sse::default()
            .event("content_block_delta")
            .data(r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}}"#);
        assert!(decoder.decode(wrong_shape).is_err());
    }
}
