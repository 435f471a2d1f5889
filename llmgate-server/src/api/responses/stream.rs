//! A metered chat stream as Responses events, by a state machine over the chunks.
//!
//! Invariants the encoder keeps:
//! - Every event carries `sequence_number`, counting from 0 without gaps.
//! - `response.created` then `response.in_progress` come first, once.
//! - One output item is open at a time: reasoning (a `reasoning` item with one summary part),
//!   text (a `message` item with one `output_text` part), or one tool call (a `function_call`
//!   item). An item is closed (its `.done` events, then `response.output_item.done`) before
//!   the next is added, so `output_index` rises from 0 without gaps. A fragment of a call that
//!   was already closed (chat completions allows it, Responses does not) still goes out as an
//!   arguments delta of that call's item, and the final response carries the whole arguments.
//! - A good end closes the open item and sends `response.completed` (or `response.incomplete`
//!   when the output hit its cap or a content filter) carrying the whole response, its usage
//!   with cached and reasoning tokens, and the gateway's charge under `llmgate`.
//! - A failure sends one `response.failed` (status `failed`, the error's code and message, the
//!   output so far) and nothing after it: never a `response.completed`.
//! - Events a Responses upstream sent (carried on the chunks) are forwarded byte for byte and
//!   nothing is encoded besides them, except that its `response.completed` (or
//!   `response.incomplete`) is held back until the stream has ended and the response is kept.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use llmgate_core::Error;
use llmgate_core::chat::{ChatChunk, WireFormat};
use llmgate_core::gateway::CompletionStream;
use serde_json::Value;

use super::exchange::Exchange;
use super::response::{finish, named_back, reasoning, response_usage, shell, summary};
use super::wire::{
    OutputContent, OutputItem, ResponseError, ResponseObject, Sequenced, Status, StreamEvent,
};
use crate::api::response::Body;
use crate::api::sse::{self, Tally};

/// What to do with the finished response (as JSON) once the stream has ended well (storing it).
pub(super) type AfterDone = Box<dyn FnOnce(Value) -> BoxFuture<'static, ()> + Send>;

/// The item that is open, by its `output_index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Reasoning(u32),
    Text(u32),
    /// The tool call with this chat index.
    Call(u32, u32),
}

/// Chunks in, events out.
#[derive(Debug)]
pub(super) struct Encoder {
    exchange: Arc<Exchange>,
    sequence: u64,
    started: bool,
    response: ResponseObject,
    open: Option<Open>,
    /// Chat tool-call index to its `output_index`.
    calls: HashMap<u32, u32>,
    tally: Tally,
    /// The upstream speaks Responses: its events are forwarded as they came.
    forwarding: bool,
    /// A forwarded stream's closing event, held back until the end, and its `response`.
    closing: Option<(Bytes, Value)>,
}

impl Encoder {
    pub fn new(exchange: Arc<Exchange>) -> Encoder {
        let response = shell(&exchange, Status::InProgress);
        Encoder {
            exchange,
            sequence: 0,
            started: false,
            response,
            open: None,
            calls: HashMap::new(),
            tally: Tally::default(),
            forwarding: false,
            closing: None,
        }
    }

    /// The bytes one chunk adds: the upstream's own event when the chunk carries one (a
    /// Responses upstream), else the events encoded from it. Once the upstream's events are
    /// forwarded, chunks without them (the pipeline's closing usage chunk) add nothing.
    pub fn chunk_bytes(&mut self, chunk: &ChatChunk) -> Bytes {
        if let Some(upstream) = chunk.wire.get_as(WireFormat::OpenAiResponses) {
            self.forwarding = true;
            if let Some(response) = closing_response(upstream) {
                self.closing = Some((upstream.clone(), response));
                return Bytes::new();
            }
            return upstream.clone();
        }
        if self.forwarding {
            return Bytes::new();
        }
        let events = self.chunk(chunk);
        self.bytes(&events)
    }

    /// The bytes of a good end, and the finished response to keep.
    pub fn end_bytes(&mut self) -> (Bytes, Option<Value>) {
        if self.forwarding {
            return match self.closing.take() {
                Some((bytes, response)) => (bytes, Some(response)),
                None => (Bytes::new(), None),
            };
        }
        let events = self.finish();
        let response = serde_json::to_value(&self.response).ok();
        (self.bytes(&events), response)
    }

    /// The events one chunk adds.
    pub fn chunk(&mut self, chunk: &ChatChunk) -> Vec<StreamEvent> {
        let mut events = self.start();
        let Some(choice) = self.tally.note(chunk) else {
            return events;
        };
        let delta = &choice.delta;
        if let Some(text) = reasoning(&delta.extra) {
            let index = self.open_reasoning(&mut events);
            if let Some(OutputItem::Reasoning { summary, .. }) = self.item(index)
                && let Some(part) = summary.first_mut()
            {
                part.text.push_str(text);
            }
            events.push(StreamEvent::SummaryDelta {
                item_id: self.item_id(index),
                output_index: index,
                summary_index: 0,
                delta: text.to_owned(),
            });
        }
        let text = delta.content.as_deref().or(delta.refusal.as_deref());
        if let Some(text) = text.filter(|t| !t.is_empty()) {
            let index = self.open_text(&mut events);
            if let Some(OutputItem::Message { content, .. }) = self.item(index)
                && let Some(OutputContent::OutputText { text: all, .. }) = content.first_mut()
            {
                all.push_str(text);
            }
            events.push(StreamEvent::TextDelta {
                item_id: self.item_id(index),
                output_index: index,
                content_index: 0,
                delta: text.to_owned(),
                logprobs: [],
            });
        }
        for call in delta.tool_calls.iter().flatten() {
            let function = call.function.as_ref();
            let index = match self.calls.get(&call.index) {
                Some(&index) => index,
                None => {
                    let name = function.and_then(|f| f.name.clone()).unwrap_or_default();
                    let id = call.id.clone().unwrap_or_default();
                    self.open_call(call.index, id, &name, &mut events)
                }
            };
            let arguments = function.and_then(|f| f.arguments.as_deref());
            if let Some(arguments) = arguments.filter(|a| !a.is_empty()) {
                if let Some(OutputItem::FunctionCall { arguments: all, .. }) = self.item(index) {
                    all.push_str(arguments);
                }
                events.push(StreamEvent::ArgumentsDelta {
                    item_id: self.item_id(index),
                    output_index: index,
                    delta: arguments.to_owned(),
                });
            }
        }
        events
    }

    /// The events of a good end.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut events = self.start();
        self.close(&mut events);
        finish(
            &mut self.response,
            self.tally.finish,
            self.tally.usage.as_ref(),
        );
        self.response.llmgate = self.tally.charge.take();
        let response = self.response.clone();
        events.push(match response.status {
            Status::Incomplete => StreamEvent::Incomplete { response },
            _ => StreamEvent::Completed { response },
        });
        events
    }

    /// The one event of a failure: the output so far, failed with the error.
    pub fn failed(&mut self, error: &Error) -> Vec<StreamEvent> {
        let mut events = self.start();
        let mut response = self.response.clone();
        response.status = Status::Failed;
        response.error = Some(ResponseError {
            code: error_code(error).to_owned(),
            message: error.message().to_owned(),
        });
        response.usage = self.tally.usage.as_ref().map(response_usage);
        events.push(StreamEvent::Failed { response });
        events
    }

    /// The events as SSE bytes, numbered in order.
    pub fn bytes(&mut self, events: &[StreamEvent]) -> Bytes {
        let mut out = Vec::new();
        for event in events {
            let sequenced = Sequenced {
                event,
                sequence_number: self.sequence,
            };
            self.sequence += 1;
            let json = serde_json::to_vec(&sequenced).unwrap_or_else(|_| b"{}".to_vec());
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(event.name().as_bytes());
            out.extend_from_slice(b"\ndata: ");
            out.extend_from_slice(&json);
            out.extend_from_slice(b"\n\n");
        }
        Bytes::from(out)
    }

    /// `response.created` and `response.in_progress`, the first time only.
    fn start(&mut self) -> Vec<StreamEvent> {
        if std::mem::replace(&mut self.started, true) {
            return Vec::new();
        }
        vec![
            StreamEvent::Created {
                response: self.response.clone(),
            },
            StreamEvent::InProgress {
                response: self.response.clone(),
            },
        ]
    }

    fn item(&mut self, index: u32) -> Option<&mut OutputItem> {
        self.response.output.get_mut(index as usize)
    }

    fn item_id(&self, index: u32) -> String {
        match self.response.output.get(index as usize) {
            Some(
                OutputItem::Reasoning { id, .. }
                | OutputItem::Message { id, .. }
                | OutputItem::FunctionCall { id, .. },
            ) => id.clone(),
            None => String::new(),
        }
    }

    /// The next `output_index`.
    fn next_index(&self) -> u32 {
        u32::try_from(self.response.output.len()).unwrap_or(u32::MAX)
    }

    /// Add an item: it is the open one.
    fn add(&mut self, item: OutputItem, open: Open, events: &mut Vec<StreamEvent>) -> u32 {
        let index = self.next_index();
        events.push(StreamEvent::ItemAdded {
            output_index: index,
            item: item.clone(),
        });
        self.response.output.push(item);
        self.open = Some(open);
        index
    }

    fn open_reasoning(&mut self, events: &mut Vec<StreamEvent>) -> u32 {
        if let Some(Open::Reasoning(index)) = self.open {
            return index;
        }
        self.close(events);
        let index = self.next_index();
        let item = OutputItem::Reasoning {
            id: self.exchange.item_id("rs", index),
            summary: Vec::new(),
        };
        self.add(item, Open::Reasoning(index), events);
        let item_id = self.item_id(index);
        if let Some(OutputItem::Reasoning { summary: parts, .. }) = self.item(index) {
            parts.push(summary(String::new()));
        }
        events.push(StreamEvent::SummaryPartAdded {
            item_id,
            output_index: index,
            summary_index: 0,
            part: summary(String::new()),
        });
        index
    }

    fn open_text(&mut self, events: &mut Vec<StreamEvent>) -> u32 {
        if let Some(Open::Text(index)) = self.open {
            return index;
        }
        self.close(events);
        let index = self.next_index();
        let item = OutputItem::Message {
            id: self.exchange.item_id("msg", index),
            status: Status::InProgress,
            role: "assistant",
            content: Vec::new(),
        };
        self.add(item, Open::Text(index), events);
        let part = OutputContent::OutputText {
            text: String::new(),
            annotations: [],
        };
        let item_id = self.item_id(index);
        if let Some(OutputItem::Message { content, .. }) = self.item(index) {
            content.push(part.clone());
        }
        events.push(StreamEvent::PartAdded {
            item_id,
            output_index: index,
            content_index: 0,
            part,
        });
        index
    }

    fn open_call(
        &mut self,
        chat_index: u32,
        call_id: String,
        flat_name: &str,
        events: &mut Vec<StreamEvent>,
    ) -> u32 {
        self.close(events);
        let index = self.next_index();
        let (namespace, name) = named_back(&self.exchange, flat_name);
        let item = OutputItem::FunctionCall {
            id: self.exchange.item_id("fc", index),
            call_id,
            name,
            arguments: String::new(),
            status: Status::InProgress,
            namespace,
        };
        self.calls.insert(chat_index, index);
        self.add(item, Open::Call(chat_index, index), events)
    }

    /// Close the open item: its `.done` events, then `response.output_item.done`.
    fn close(&mut self, events: &mut Vec<StreamEvent>) {
        let Some(open) = self.open.take() else {
            return;
        };
        let index = match open {
            Open::Reasoning(index) | Open::Text(index) | Open::Call(_, index) => index,
        };
        let item_id = self.item_id(index);
        let Some(item) = self.item(index) else {
            return;
        };
        match item {
            OutputItem::Reasoning { summary: parts, .. } => {
                let part = parts
                    .first()
                    .cloned()
                    .unwrap_or_else(|| summary(String::new()));
                events.push(StreamEvent::SummaryDone {
                    item_id: item_id.clone(),
                    output_index: index,
                    summary_index: 0,
                    text: part.text.clone(),
                });
                events.push(StreamEvent::SummaryPartDone {
                    item_id,
                    output_index: index,
                    summary_index: 0,
                    part,
                });
            }
            OutputItem::Message {
                status, content, ..
            } => {
                *status = Status::Completed;
                if let Some(part) = content.first().cloned() {
                    if let OutputContent::OutputText { text, .. } = &part {
                        events.push(StreamEvent::TextDone {
                            item_id: item_id.clone(),
                            output_index: index,
                            content_index: 0,
                            text: text.clone(),
                            logprobs: [],
                        });
                    }
                    events.push(StreamEvent::PartDone {
                        item_id,
                        output_index: index,
                        content_index: 0,
                        part,
                    });
                }
            }
            OutputItem::FunctionCall {
                status, arguments, ..
            } => {
                *status = Status::Completed;
                events.push(StreamEvent::ArgumentsDone {
                    item_id,
                    output_index: index,
                    arguments: arguments.clone(),
                });
            }
        }
        let item = item.clone();
        events.push(StreamEvent::ItemDone {
            output_index: index,
            item,
        });
    }
}

/// The `response` of a forwarded `response.completed` / `response.incomplete` event.
fn closing_response(event: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(event).ok()?;
    let data = text.lines().find_map(|line| line.strip_prefix("data: "))?;
    let mut value: Value = serde_json::from_str(data).ok()?;
    match value.get("type").and_then(Value::as_str) {
        Some("response.completed" | "response.incomplete") => {
            value.get_mut("response").map(Value::take)
        }
        _ => None,
    }
}

/// The `code` of a failed response: the error's own code, else one for its status.
fn error_code(error: &Error) -> &str {
    if let Some(code) = error.code() {
        return code;
    }
    match error.status() {
        429 => "rate_limit_exceeded",
        400..=499 => "invalid_request",
        _ => "server_error",
    }
}

/// The body's state while streaming; `None` once the last event went out.
type Streaming = Option<(CompletionStream, Encoder, Option<AfterDone>)>;

/// The body: an `unfold` over the metered stream (no spawned pump), so a client that goes away
/// drops the upstream connection and the hold is settled. `after` runs once the stream ended
/// well, before `response.completed` goes out (so a follow-up request finds what it stored).
fn body(stream: CompletionStream, encoder: Encoder, after: Option<AfterDone>) -> Body {
    let span = tracing::Span::current();
    let start: (Streaming, _) = (Some((stream, encoder, after)), span);
    let frames = futures::stream::unfold(start, |(state, span)| async move {
        let (mut stream, mut encoder, mut after) = state?;
        // A chunk may add no bytes (the closing usage chunk of a forwarded stream): read on,
        // so that no empty frame is sent.
        loop {
            let (bytes, next) = match stream.next().await {
                Some(Ok(chunk)) => {
                    sse::record_cost(&span, &chunk);
                    (encoder.chunk_bytes(&chunk), Some((stream, encoder, after)))
                }
                Some(Err(error)) => {
                    tracing::warn!(parent: &span, %error, "stream failed after it started");
                    let events = encoder.failed(&error);
                    (encoder.bytes(&events), None)
                }
                None => {
                    tracing::info!(parent: &span, "stream finished");
                    let (bytes, response) = encoder.end_bytes();
                    if let (Some(after), Some(response)) = (after.take(), response) {
                        after(response).await;
                    }
                    (bytes, None)
                }
            };
            match next {
                Some(state) if bytes.is_empty() => (stream, encoder, after) = state,
                _ if bytes.is_empty() => return None,
                next => return Some((Ok::<_, Infallible>(Frame::data(bytes)), (next, span))),
            }
        }
    });
    StreamBody::new(frames).boxed_unsync()
}

/// A 200 response carrying the event stream.
pub(super) fn response(
    stream: CompletionStream,
    exchange: Arc<Exchange>,
    after: Option<AfterDone>,
) -> Response<Body> {
    sse::event_stream(body(stream, Encoder::new(exchange), after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chunk(delta: Value, finish: Value) -> ChatChunk {
        serde_json::from_value(json!({"id": "c1", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}))
        .unwrap()
    }

    fn encode(chunks: Vec<ChatChunk>) -> Vec<Value> {
        let mut exchange = Exchange::new("m");
        exchange
            .namespaced
            .insert("ns__g".to_owned(), ("ns".to_owned(), "g".to_owned()));
        let mut encoder = Encoder::new(Arc::new(exchange));
        let mut events = Vec::new();
        for chunk in &chunks {
            events.extend(encoder.chunk(chunk));
        }
        events.extend(encoder.finish());
        let bytes = encoder.bytes(&events);
        let text = std::str::from_utf8(&bytes).unwrap();
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (name, data) = e
                    .strip_prefix("event: ")
                    .unwrap()
                    .split_once("\ndata: ")
                    .unwrap();
                let data: Value = serde_json::from_str(data).unwrap();
                assert_eq!(data["type"], name);
                data
            })
            .collect()
    }

    fn types(events: &[Value]) -> Vec<&str> {
        events.iter().map(|e| e["type"].as_str().unwrap()).collect()
    }

    #[test]
    fn a_text_stream_has_the_documented_event_order_and_numbers() {
        let usage: ChatChunk =
            serde_json::from_value(json!({"id": "c1", "model": "m", "choices": [],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12,
                      "prompt_tokens_details": {"cached_tokens": 4}},
            "llmgate": {"cost_micros": 7}}))
            .unwrap();
        let events = encode(vec![
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": "Hel"}), Value::Null),
            chunk(json!({"content": "lo"}), json!("stop")),
            usage,
        ]);
        assert_eq!(
            types(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        for (n, event) in events.iter().enumerate() {
            assert_eq!(event["sequence_number"], n as u64);
        }
        assert_eq!(events[0]["response"]["status"], "in_progress");
        assert_eq!(events[6]["text"], "Hello");
        let done = &events[9]["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output_text"], "Hello");
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["usage"]["input_tokens_details"]["cached_tokens"], 4);
        assert_eq!(done["llmgate"]["cost_micros"], 7);
    }

    #[test]
    fn reasoning_text_and_calls_are_items_in_order() {
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
                json!({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                                     "function": {"name": "ns__g", "arguments": "{}"}}]}),
                Value::Null,
            ),
            // A late fragment of the first call.
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
                json!("tool_calls"),
            ),
        ]);
        let summary: Vec<String> = events
            .iter()
            .skip(2)
            .map(|e| {
                format!(
                    "{} {}",
                    e["type"].as_str().unwrap(),
                    e["output_index"]
                        .as_u64()
                        .map(|i| i.to_string())
                        .unwrap_or_default()
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                "response.output_item.added 0",
                "response.reasoning_summary_part.added 0",
                "response.reasoning_summary_text.delta 0",
                "response.reasoning_summary_text.done 0",
                "response.reasoning_summary_part.done 0",
                "response.output_item.done 0",
                "response.output_item.added 1",
                "response.content_part.added 1",
                "response.output_text.delta 1",
                "response.output_text.done 1",
                "response.content_part.done 1",
                "response.output_item.done 1",
                "response.output_item.added 2",
                "response.function_call_arguments.delta 2",
                "response.function_call_arguments.done 2",
                "response.output_item.done 2",
                "response.output_item.added 3",
                "response.function_call_arguments.delta 3",
                "response.function_call_arguments.delta 2",
                "response.function_call_arguments.done 3",
                "response.output_item.done 3",
                "response.completed ",
            ]
        );
        let output = &events.last().unwrap()["response"]["output"];
        assert_eq!(output[2]["arguments"], "{\"a\":1}");
        assert_eq!(output[2]["call_id"], "call_1");
        assert_eq!(
            (output[3]["name"].as_str(), output[3]["namespace"].as_str()),
            (Some("g"), Some("ns"))
        );
        assert_eq!(output[3]["status"], "completed");
    }

    #[test]
    fn a_failure_is_response_failed_and_nothing_else() {
        let mut encoder = Encoder::new(Arc::new(Exchange::new("m")));
        let mut events = encoder.chunk(&chunk(json!({"content": "Hel"}), Value::Null));
        events.extend(encoder.failed(&Error::upstream_stream("p", "connection reset")));
        let last = serde_json::to_value(events.last().unwrap()).unwrap();
        assert_eq!(last["type"], "response.failed");
        assert_eq!(last["response"]["status"], "failed");
        assert_eq!(last["response"]["error"]["code"], "upstream_stream_error");
        assert!(
            !types(
                &events
                    .iter()
                    .map(|e| serde_json::to_value(e).unwrap())
                    .collect::<Vec<_>>()
            )
            .contains(&"response.completed")
        );
    }

    #[test]
    fn upstream_events_are_forwarded_and_the_closing_one_is_held_to_the_end() {
        let mut encoder = Encoder::new(Arc::new(Exchange::new("m")));
        let carrier = |event: &str| {
            let mut chunk = ChatChunk::empty("r", "m", 0);
            chunk.wire =
                llmgate_core::chat::WireJson::of(WireFormat::OpenAiResponses, event.to_owned());
            chunk
        };
        let delta = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n";
        let done = "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_up\"}}\n\n";
        assert_eq!(encoder.chunk_bytes(&carrier(delta)), delta);
        assert!(encoder.chunk_bytes(&carrier(done)).is_empty());
        // The pipeline's closing usage chunk adds nothing to a forwarded stream.
        let closing: ChatChunk = serde_json::from_value(json!({"id": "r", "model": "m",
            "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}))
        .unwrap();
        assert!(encoder.chunk_bytes(&closing).is_empty());
        let (bytes, kept) = encoder.end_bytes();
        assert_eq!(bytes, done);
        assert_eq!(kept.unwrap()["id"], "resp_up");
    }

    #[test]
    fn a_capped_answer_ends_incomplete() {
        let events = encode(vec![chunk(json!({"content": "Hel"}), json!("length"))]);
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(
            last["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
    }
}
