//! Fixtures in Anthropic's documented Messages API wire format.

use serde_json::{Value, json};

use crate::reply::Reply;

const ID: &str = "msg_01FakeXyz";

/// A whole `message` answering with `text` (`stop_reason: end_turn`).
pub fn message(model: &str, text: &str, input_tokens: u64, output_tokens: u64) -> Value {
    json!({
        "id": ID,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": usage(input_tokens, output_tokens)
    })
}

/// A whole `message` asking for one tool call (`stop_reason: tool_use`).
pub fn tool_use_message(model: &str, call_id: &str, name: &str, input: Value) -> Value {
    json!({
        "id": ID,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "tool_use", "id": call_id, "name": name, "input": input}],
        "stop_reason": "tool_use",
        "stop_sequence": null,
        "usage": usage(20, 10)
    })
}

/// The events of a streamed text answer, in the documented order: `message_start`, a text
/// block (`content_block_start`, a `ping`, one `text_delta` per piece, `content_block_stop`),
/// `message_delta` with the stop reason and cumulative output tokens, `message_stop`.
pub fn text_events(
    model: &str,
    pieces: &[&str],
    input_tokens: u64,
    output_tokens: u64,
) -> Vec<Value> {
    let mut events = vec![
        message_start(model, input_tokens),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
    ];
    events.extend(block_end(0, "text_delta", "text", pieces));
    events.extend(finish("end_turn", output_tokens));
    events
}

/// The events of a streamed tool call whose input JSON arrives in `input_pieces` (the first
/// `input_json_delta` is empty, as the API sends it), after a short text block: the tool_use
/// is content block 1 but tool call 0.
pub fn tool_use_events(
    model: &str,
    call_id: &str,
    name: &str,
    input_pieces: &[&str],
    input_tokens: u64,
    output_tokens: u64,
) -> Vec<Value> {
    let mut events = vec![
        message_start(model, input_tokens),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking."}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1,
               "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}}}),
        json!({"type": "content_block_delta", "index": 1,
               "delta": {"type": "input_json_delta", "partial_json": ""}}),
    ];
    events.extend(block_end(
        1,
        "input_json_delta",
        "partial_json",
        input_pieces,
    ));
    events.extend(finish("tool_use", output_tokens));
    events
}

/// The rest of content block `index`: one `content_block_delta` per piece (a `delta_type`
/// carrying the piece as `field`), then `content_block_stop`.
fn block_end(index: u32, delta_type: &str, field: &str, pieces: &[&str]) -> Vec<Value> {
    let mut events: Vec<Value> = pieces
        .iter()
        .map(|piece| {
            json!({
                "type": "content_block_delta", "index": index,
                "delta": {"type": delta_type, field: piece}
            })
        })
        .collect();
    events.push(json!({"type": "content_block_stop", "index": index}));
    events
}

/// `message_start` with the input token count (and one output token, as the API reports).
pub fn message_start(model: &str, input_tokens: u64) -> Value {
    json!({
        "type": "message_start",
        "message": {
            "id": ID, "type": "message", "role": "assistant", "content": [], "model": model,
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1}
        }
    })
}

/// `message_delta` (stop reason, cumulative output tokens) and `message_stop`.
pub fn finish(stop_reason: &str, output_tokens: u64) -> Vec<Value> {
    vec![
        json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": output_tokens}
        }),
        json!({"type": "message_stop"}),
    ]
}

/// An error body, also the data of a mid-stream `error` event:
/// `{"type":"error","error":{"type","message"}}`.
pub fn error(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// Usage as the API reports it, without cache fields.
pub fn usage(input_tokens: u64, output_tokens: u64) -> Value {
    json!({"input_tokens": input_tokens, "output_tokens": output_tokens})
}

/// Usage with prompt-cache fields: `input_tokens` counts only the uncached prompt tokens,
/// cache reads and writes are reported beside it.
pub fn cache_usage(
    input_tokens: u64,
    cache_read: u64,
    cache_write: u64,
    output_tokens: u64,
) -> Value {
    json!({
        "input_tokens": input_tokens,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_write,
        "output_tokens": output_tokens
    })
}

/// The stream body for `events`: each as `event: TYPE` then `data: JSON` and a blank line. No
/// `[DONE]`: Anthropic ends with `message_stop`.
pub fn sse_body(events: &[Value]) -> String {
    let mut body = String::new();
    for event in events {
        let name = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        body.push_str("event: ");
        body.push_str(name);
        body.push_str("\ndata: ");
        body.push_str(&event.to_string());
        body.push_str("\n\n");
    }
    body
}

/// A 200 event stream of `events`.
pub fn sse(events: &[Value]) -> Reply {
    Reply::sse_raw(sse_body(events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_body_names_each_event_and_has_no_done_marker() {
        let body = sse_body(&[json!({"type": "ping"}), json!({"type": "message_stop"})]);
        assert_eq!(
            body,
            "event: ping\ndata: {\"type\":\"ping\"}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
    }

    #[test]
    fn tool_use_is_the_second_block() {
        let events = tool_use_events("m", "toolu_1", "f", &["{}"], 1, 2);
        assert_eq!(events[4]["index"], 1);
        assert_eq!(events[4]["content_block"]["type"], "tool_use");
        assert_eq!(events.last().unwrap()["type"], "message_stop");
    }
}
