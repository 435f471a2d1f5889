//! Pure translation between the core types and OpenAI's wire format. No I/O here.

use std::borrow::Cow;

use llmgate_core::chat::{FunctionCallDelta, ToolCallDelta};
use llmgate_core::{
    Error, ErrorKind, Result,
    chat::{
        ChatChunk, ChatRequest, ChatResponse, ChunkChoice, Content, ContentPart, Delta, WireJson,
    },
    keys::Secret,
};
use serde_json::{Map, Value, json};

use super::wire::ErrorBody;
use crate::http::safe_detail;
use crate::presets::{Quirks, is_openai_reasoning_model};

/// The request body. The core request already is OpenAI's shape, unknown fields included;
/// only the upstream's quirks change it.
pub(crate) fn request_body(request: &ChatRequest, quirks: Quirks) -> Result<Vec<u8>> {
    serde_json::to_vec(&with_quirks(request, quirks))
        .map_err(|e| Error::internal(format!("Could not encode the upstream request: {e}")))
}

/// The request as this upstream wants it. OpenAI's reasoning models refuse `max_tokens` (the
/// cap goes as `max_completion_tokens`) and any sampling setting but the default; OpenAI has no
/// `cache_control`.
fn with_quirks(request: &ChatRequest, quirks: Quirks) -> Cow<'_, ChatRequest> {
    let reasoning = is_openai_reasoning_model(&request.model);
    let move_cap = reasoning
        && quirks.reasoning_models_take_max_completion_tokens
        && request.max_tokens.is_some();
    let drop_sampling = reasoning
        && quirks.reasoning_models_reject_sampling
        && (request.temperature.is_some() || request.top_p.is_some());
    let drop_cache_control = quirks.rejects_cache_control && has_cache_control(request);
    if !move_cap && !drop_sampling && !drop_cache_control {
        return Cow::Borrowed(request);
    }
    let mut request = request.clone();
    if drop_cache_control {
        strip_cache_control(&mut request);
    }
    if move_cap {
        request.max_completion_tokens = request.requested_max_tokens();
        request.max_tokens = None;
    }
    if drop_sampling {
        request.temperature = None;
        request.top_p = None;
    }
    Cow::Owned(request)
}

fn has_cache_control(request: &ChatRequest) -> bool {
    let in_parts = request.messages.iter().any(|message| {
        message.extra.contains_key("cache_control")
            || matches!(&message.content, Some(Content::Parts(parts)) if parts.iter().any(|part| matches!(
                part,
                ContentPart::Text { cache_control: Some(_), .. }
                    | ContentPart::ImageUrl { cache_control: Some(_), .. }
            )))
    });
    in_parts
        || request
            .tools
            .iter()
            .flatten()
            .any(|tool| tool.cache_control.is_some())
}

fn strip_cache_control(request: &mut ChatRequest) {
    for message in &mut request.messages {
        message.extra.remove("cache_control");
        if let Some(Content::Parts(parts)) = &mut message.content {
            for part in parts {
                if let ContentPart::Text { cache_control, .. }
                | ContentPart::ImageUrl { cache_control, .. } = part
                {
                    *cache_control = None;
                }
            }
        }
    }
    for tool in request.tools.iter_mut().flatten() {
        tool.cache_control = None;
    }
}

/// A whole completion from a 2xx body.
pub(crate) fn response_from_wire(
    provider: &str,
    body: &[u8],
    key: Option<&Secret>,
) -> Result<ChatResponse> {
    // Fast path: a well-formed answer parses straight into the core type.
    if let Ok(response) = serde_json::from_slice::<ChatResponse>(body)
        && !response.extra.contains_key("error")
    {
        return Ok(response);
    }
    let malformed = |what: &dyn std::fmt::Display| {
        Error::new(
            ErrorKind::Upstream,
            format!("Upstream {provider} sent a malformed response: {what}"),
        )
        .with_code("upstream_malformed_response")
    };
    let mut value: Value = serde_json::from_slice(body).map_err(|e| malformed(&e))?;
    let Some(object) = value.as_object_mut() else {
        return Err(malformed(&"not a JSON object"));
    };
    if object.contains_key("error") {
        let detail = in_band_detail(&value, key);
        return Err(Error::new(
            ErrorKind::Upstream,
            format!("Upstream {provider} answered with an error: {detail}"),
        )
        .with_code("upstream_failed"));
    }
    if repair(object, "message") {
        return Err(malformed(&"a choice finished with an error"));
    }
    serde_json::from_value(value).map_err(|e| malformed(&e))
}

/// One `data:` payload of a stream.
pub(crate) fn chunk_from_wire(
    provider: &str,
    data: &str,
    key: Option<&Secret>,
) -> Result<ChatChunk> {
    if let Ok(mut chunk) = serde_json::from_str::<ChatChunk>(data)
        && !chunk.extra.contains_key("error")
    {
        // Same protocol both ways: the client gets these bytes, not a re-encoding.
        chunk.wire = WireJson::new(bytes::Bytes::copy_from_slice(data.as_bytes()));
        return Ok(chunk);
    }
    let malformed = |what: &dyn std::fmt::Display| {
        Error::upstream_stream(provider, format!("malformed event: {what}"))
    };
    let mut value: Value = serde_json::from_str(data).map_err(|e| malformed(&e))?;
    let Some(object) = value.as_object_mut() else {
        return Err(malformed(&"not a JSON object"));
    };
    if object.contains_key("error") {
        let detail = in_band_detail(&value, key);
        return Err(Error::upstream_stream(
            provider,
            format!("upstream error: {detail}"),
        ));
    }
    if repair(object, "delta") {
        return Err(Error::upstream_stream(
            provider,
            "a choice finished with an error",
        ));
    }
    serde_json::from_value(value).map_err(|e| malformed(&e))
}

/// An in-band error event (`{"error": ...}` with no status): retryable like any broken stream.
pub(crate) fn stream_error_event(provider: &str, data: &str, key: Option<&Secret>) -> Error {
    let detail = match serde_json::from_str::<Value>(data) {
        Ok(value) => in_band_detail(&value, key),
        Err(_) => safe_detail(data, key),
    };
    Error::upstream_stream(provider, format!("upstream error: {detail}"))
}

/// A whole completion replayed as stream chunks, for upstreams that ignore `stream: true`.
pub(crate) fn response_to_chunks(response: ChatResponse) -> Vec<ChatChunk> {
    let ChatResponse {
        id,
        created,
        model,
        choices,
        usage,
        system_fingerprint,
        ..
    } = response;
    let mut chunk = ChatChunk::empty(id.clone(), model.clone(), created);
    chunk.system_fingerprint = system_fingerprint.clone();
    for choice in choices {
        let message = choice.message;
        let tool_calls = message.tool_calls.map(|calls| {
            calls
                .into_iter()
                .enumerate()
                .map(|(index, call)| ToolCallDelta {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    id: Some(call.id),
                    kind: Some(call.kind),
                    function: Some(FunctionCallDelta {
                        name: Some(call.function.name),
                        arguments: Some(call.function.arguments),
                    }),
                })
                .collect()
        });
        chunk.choices.push(ChunkChoice {
            index: choice.index,
            delta: Delta {
                role: Some(message.role),
                content: message
                    .content
                    .as_ref()
                    .map(llmgate_core::chat::Content::joined_text),
                tool_calls,
                refusal: message.refusal,
                extra: message.extra,
            },
            finish_reason: choice.finish_reason,
            logprobs: choice.logprobs,
        });
    }
    let mut chunks = vec![chunk];
    if let Some(usage) = usage {
        let mut last = ChatChunk::empty(id, model, created);
        last.system_fingerprint = system_fingerprint;
        last.usage = Some(usage);
        chunks.push(last);
    }
    chunks
}

/// The human-readable part of an error body, for [`crate::http::Upstream::error_detail`].
pub(crate) fn error_detail(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|parsed| parsed.text())
}

fn in_band_detail(value: &Value, key: Option<&Secret>) -> String {
    let text = serde_json::from_value::<ErrorBody>(value.clone())
        .ok()
        .and_then(|body| body.text())
        .unwrap_or_else(|| value.to_string());
    safe_detail(&text, key)
}

/// Fill in what lenient servers leave out or spell their own way, so the strict core types
/// parse. `inner` is `message` (whole answers) or `delta` (chunks). Returns true when a choice
/// finished with an error.
fn repair(root: &mut Map<String, Value>, inner: &str) -> bool {
    for field in ["id", "model"] {
        if !root.get(field).is_some_and(Value::is_string) {
            root.insert(field.to_owned(), Value::String(String::new()));
        }
    }
    if root.get("created").is_some_and(|c| !c.is_u64()) {
        root.remove("created");
    }
    if !root.get("choices").is_some_and(Value::is_array) {
        root.insert("choices".to_owned(), json!([]));
    }
    match root.get_mut("usage") {
        Some(Value::Object(usage)) => repair_usage(usage),
        Some(Value::Null) | None => {}
        Some(_) => {
            root.remove("usage");
        }
    }
    let mut errored = false;
    if let Some(Value::Array(choices)) = root.get_mut("choices") {
        for (position, choice) in choices.iter_mut().enumerate() {
            let Value::Object(choice) = choice else {
                continue;
            };
            if !choice.get("index").is_some_and(Value::is_u64) {
                choice.insert("index".to_owned(), json!(position));
            }
            if !choice.get(inner).is_some_and(Value::is_object) {
                choice.insert(inner.to_owned(), json!({}));
            }
            if inner == "message"
                && let Some(Value::Object(message)) = choice.get_mut("message")
                && !message.get("role").is_some_and(Value::is_string)
            {
                message.insert("role".to_owned(), json!("assistant"));
            }
            if let Some(Value::String(reason)) = choice.get("finish_reason") {
                match finish_reason(reason) {
                    Some(known) => {
                        choice.insert("finish_reason".to_owned(), json!(known));
                    }
                    None => errored = true,
                }
            }
        }
    }
    errored
}

fn repair_usage(usage: &mut Map<String, Value>) {
    let count = |usage: &Map<String, Value>, field: &str| usage.get(field).and_then(Value::as_u64);
    let prompt = count(usage, "prompt_tokens").unwrap_or(0);
    let completion = count(usage, "completion_tokens").unwrap_or(0);
    let total = count(usage, "total_tokens").unwrap_or(prompt + completion);
    usage.insert("prompt_tokens".to_owned(), json!(prompt));
    usage.insert("completion_tokens".to_owned(), json!(completion));
    usage.insert("total_tokens".to_owned(), json!(total));
}

/// OpenAI's name for a vendor's finish reason; `None` for an error finish.
fn finish_reason(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "error" => return None,
        "length" | "max_tokens" | "model_length" => "length",
        "tool_calls" | "tool_use" => "tool_calls",
        "content_filter" => "content_filter",
        "function_call" => "function_call",
        // `stop`, `eos`, `end_turn`, `stop_sequence` and anything unknown: a normal end.
        _ => "stop",
    })
}

#[cfg(test)]
mod tests;
