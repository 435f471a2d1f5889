//! OpenAI Responses API (`POST {base}/v1/responses`) answers as the real API shapes them, for
//! upstreams configured with `responses_api: true`: whole `response` objects and typed event
//! streams with `sequence_number`.

use serde_json::{Value, json};

use crate::reply::Reply;

/// A finished `response` with one message of `text` and its usage.
pub fn response(model: &str, text: &str, input_tokens: u64, output_tokens: u64) -> Value {
    json!({
        "id": "resp_up_1", "object": "response", "created_at": 1, "status": "completed",
        "error": null, "incomplete_details": null, "model": model,
        "output": [message(text)],
        "usage": usage(input_tokens, 0, output_tokens, 0)
    })
}

/// `usage` with cached input and reasoning output tokens.
pub fn usage(input: u64, cached: u64, output: u64, reasoning: u64) -> Value {
    json!({
        "input_tokens": input, "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output, "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input + output
    })
}

fn message(text: &str) -> Value {
    json!({"type": "message", "id": "msg_up_1", "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

/// The events of a streamed answer of one message whose text arrives in `pieces`.
pub fn text_events(
    model: &str,
    pieces: &[&str],
    input_tokens: u64,
    output_tokens: u64,
) -> Vec<Value> {
    let text: String = pieces.concat();
    let mut head = response(model, "", input_tokens, output_tokens);
    head["status"] = json!("in_progress");
    head["output"] = json!([]);
    head["usage"] = Value::Null;
    let mut events = vec![
        json!({"type": "response.created", "response": head}),
        json!({"type": "response.output_item.added", "output_index": 0,
               "item": {"type": "message", "id": "msg_up_1", "status": "in_progress",
                        "role": "assistant", "content": []}}),
    ];
    for piece in pieces {
        events.push(
            json!({"type": "response.output_text.delta", "item_id": "msg_up_1",
                           "output_index": 0, "content_index": 0, "delta": piece}),
        );
    }
    events.push(
        json!({"type": "response.output_item.done", "output_index": 0,
                       "item": message(&text)}),
    );
    events.push(json!({"type": "response.completed",
                       "response": response(model, &text, input_tokens, output_tokens)}));
    for (number, event) in events.iter_mut().enumerate() {
        event["sequence_number"] = json!(number);
    }
    events
}

/// A 200 event stream of `events`, each as `event: TYPE` then `data: JSON`.
pub fn sse(events: &[Value]) -> Reply {
    crate::anthropic::sse(events)
}
