//! Fixtures in OpenAI's documented chat completions wire format.

use serde_json::{Value, json};

const ID: &str = "chatcmpl-fake123";
const CREATED: u64 = 1_700_000_000;
const FINGERPRINT: &str = "fp_fake";

/// A whole completion answering with `text`.
pub fn completion(model: &str, text: &str, prompt_tokens: u64, completion_tokens: u64) -> Value {
    whole(
        model,
        json!({"role": "assistant", "content": text, "refusal": null}),
        "stop",
        usage(prompt_tokens, completion_tokens),
    )
}

/// A whole completion asking for one tool call.
pub fn tool_call_completion(model: &str, call_id: &str, name: &str, arguments: &str) -> Value {
    whole(
        model,
        json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [{
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": arguments}
            }]
        }),
        "tool_calls",
        usage(20, 10),
    )
}

/// A whole completion of one choice: `message`, stopped for `finish_reason`.
fn whole(model: &str, message: Value, finish_reason: &str, usage: Value) -> Value {
    json!({
        "id": ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason
        }],
        "usage": usage,
        "system_fingerprint": FINGERPRINT
    })
}

/// The chunks of a streamed text answer: a role chunk, one chunk per piece, a finish chunk
/// (`stop`) and, when `usage` is given, the usage-only chunk with `choices: []` (earlier chunks
/// then carry `usage: null`, as OpenAI sends them with `include_usage`).
pub fn text_chunks(model: &str, pieces: &[&str], usage: Option<(u64, u64)>) -> Vec<Value> {
    let mut chunks = vec![chunk(
        model,
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
    )];
    for piece in pieces {
        chunks.push(chunk(model, json!({"content": piece}), None));
    }
    chunks.push(chunk(model, json!({}), Some("stop")));
    finish_with_usage(model, chunks, usage)
}

/// The chunks of a streamed tool call whose arguments arrive in `argument_pieces`.
pub fn tool_call_chunks(
    model: &str,
    call_id: &str,
    name: &str,
    argument_pieces: &[&str],
    usage: Option<(u64, u64)>,
) -> Vec<Value> {
    let mut chunks = vec![chunk(
        model,
        json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [{
                "index": 0, "id": call_id, "type": "function",
                "function": {"name": name, "arguments": ""}
            }]
        }),
        None,
    )];
    for piece in argument_pieces {
        chunks.push(chunk(
            model,
            json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
            None,
        ));
    }
    chunks.push(chunk(model, json!({}), Some("tool_calls")));
    finish_with_usage(model, chunks, usage)
}

/// An error body: `{"error": {"message", "type", "param": null, "code"}}`.
pub fn error(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({
        "error": {"message": message, "type": kind, "param": null, "code": code}
    })
}

/// A usage object as OpenAI reports it.
pub fn usage(prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}
    })
}

/// A usage object with `cached` of the prompt tokens read from the prompt cache and
/// `reasoning` of the completion tokens spent reasoning, as OpenAI reports them (both are
/// inside the totals).
pub fn usage_with_details(prompt: u64, cached: u64, completion: u64, reasoning: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0}
    })
}

fn chunk(model: &str, delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}]
    })
}

fn finish_with_usage(
    model: &str,
    mut chunks: Vec<Value>,
    totals: Option<(u64, u64)>,
) -> Vec<Value> {
    if let Some((prompt, completion)) = totals {
        for chunk in &mut chunks {
            chunk["usage"] = Value::Null;
        }
        chunks.push(json!({
            "id": ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": FINGERPRINT,
            "choices": [],
            "usage": usage(prompt, completion)
        }));
    }
    chunks
}
