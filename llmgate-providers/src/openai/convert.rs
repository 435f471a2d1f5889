//! Pure translation between the core types and OpenAI's wire format. No I/O here.

use std::borrow::Cow;

use llmgate_core::chat::{FunctionCallDelta, ToolCallDelta};
use llmgate_core::{
    ChatChunk, ChatRequest, ChatResponse, ChunkChoice, Content, ContentPart, Delta, Error,
    ErrorKind, Result, Secret, WireJson,
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
                    .map(llmgate_core::Content::joined_text),
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
mod tests {
    use super::*;
    use llmgate_core::{FinishReason, Message, Role};

    fn key() -> Secret {
        Secret::new("sk-test-SECRET-0123456789")
    }

    #[test]
    fn request_body_is_the_core_request_with_extras() {
        let mut request = ChatRequest::new("up-model", vec![Message::user("hi")]);
        request.extra.insert("vendor_knob".into(), json!(3));
        let body: Value =
            serde_json::from_slice(&request_body(&request, Quirks::default()).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"model": "up-model", "messages": [{"role": "user", "content": "hi"}], "vendor_knob": 3})
        );
    }

    #[test]
    fn well_formed_response_parses() {
        let body = json!({
            "id": "x", "object": "chat.completion", "created": 5, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hey"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
        });
        let response = response_from_wire("p", body.to_string().as_bytes(), None).unwrap();
        assert_eq!(response.choices[0].message.text_content(), "hey");
        assert_eq!(response.usage.unwrap().total_tokens, 3);
    }

    #[test]
    fn cached_and_reasoning_counts_are_read_whole_and_streamed() {
        let usage = json!({"prompt_tokens": 3000, "completion_tokens": 500, "total_tokens": 3500,
                           "prompt_tokens_details": {"cached_tokens": 2000, "audio_tokens": 0},
                           "completion_tokens_details": {"reasoning_tokens": 300, "audio_tokens": 0}});
        let body = json!({
            "id": "x", "object": "chat.completion", "created": 5, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hey"}, "finish_reason": "stop"}],
            "usage": usage
        });
        let whole = response_from_wire("p", body.to_string().as_bytes(), None)
            .unwrap()
            .usage
            .unwrap();
        let chunk = json!({"id": "c", "model": "m", "choices": [], "usage": usage}).to_string();
        let streamed = chunk_from_wire("p", &chunk, None).unwrap().usage.unwrap();
        for usage in [whole, streamed] {
            let classes = usage.classes();
            assert_eq!(
                (
                    classes.uncached_prompt,
                    classes.cache_read,
                    classes.output,
                    classes.reasoning
                ),
                (1000, 2000, 500, 300)
            );
            // Fields the gateway does not know are kept for the client.
            assert_eq!(
                usage.completion_tokens_details.unwrap().extra["audio_tokens"],
                0
            );
        }
    }

    #[test]
    fn lenient_response_is_repaired() {
        let body = json!({
            "choices": [{"message": {"content": "hey"}, "finish_reason": "eos"}],
            "created": 1.5,
            "usage": {"prompt_tokens": 2, "completion_tokens": 1}
        });
        let response = response_from_wire("p", body.to_string().as_bytes(), None).unwrap();
        assert_eq!(response.choices[0].message.role, Role::Assistant);
        assert_eq!(response.choices[0].finish_reason, Some(FinishReason::Stop));
        assert_eq!(response.usage.unwrap().total_tokens, 3);
    }

    #[test]
    fn garbage_response_is_a_retryable_upstream_error() {
        let error = response_from_wire("p", b"<html>oops", None).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Upstream);
        assert!(error.is_retryable());
        let error = response_from_wire("p", b"[1,2]", None).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Upstream);
    }

    #[test]
    fn error_body_with_200_is_an_error_without_the_key() {
        let body = json!({"error": {"message": "bad key sk-test-SECRET-0123456789"}});
        let error = response_from_wire("p", body.to_string().as_bytes(), Some(&key())).unwrap_err();
        assert!(
            error.message().contains("bad key *****"),
            "{}",
            error.message()
        );
        assert!(!error.message().contains("SECRET"));
    }

    #[test]
    fn chunk_fast_path_and_error_events() {
        let chunk = chunk_from_wire(
            "p",
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"é"},"finish_reason":null}]}"#,
            None,
        )
        .unwrap();
        assert_eq!(chunk.choices[0].delta.content.as_deref(), Some("é"));

        let error = chunk_from_wire(
            "p",
            r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(error.code(), Some("upstream_stream_error"));
        assert!(
            error.message().contains("overloaded"),
            "{}",
            error.message()
        );
        assert!(error.is_retryable());
    }

    #[test]
    fn openrouter_style_error_chunk_is_an_error() {
        let data = json!({
            "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "error": {"code": "server_error", "message": "Provider disconnected"},
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]
        });
        let error = chunk_from_wire("p", &data.to_string(), None).unwrap_err();
        assert!(
            error.message().contains("Provider disconnected"),
            "{}",
            error.message()
        );
    }

    #[test]
    fn malformed_chunk_is_an_error() {
        for data in ["{\"id\":", "42", "{\"choices\": 7, \"id\": 1}x"] {
            let error = chunk_from_wire("p", data, None).unwrap_err();
            assert_eq!(error.code(), Some("upstream_stream_error"), "{data}");
        }
    }

    #[test]
    fn chunk_missing_fields_is_repaired() {
        let chunk = chunk_from_wire(
            "p",
            r#"{"choices":[{"delta":{"content":"x"}}],"usage":null}"#,
            None,
        )
        .unwrap();
        assert_eq!(chunk.id, "");
        assert_eq!(chunk.choices[0].index, 0);
        let usage_only = chunk_from_wire(
            "p",
            r#"{"id":"c","model":"m","usage":{"prompt_tokens":4,"completion_tokens":6}}"#,
            None,
        )
        .unwrap();
        assert!(usage_only.choices.is_empty());
        assert_eq!(usage_only.usage.unwrap().total_tokens, 10);
    }

    #[test]
    fn finish_reasons_map_to_openai_names() {
        for (vendor, ours) in [
            ("max_tokens", FinishReason::Length),
            ("tool_use", FinishReason::ToolCalls),
            ("end_turn", FinishReason::Stop),
            ("content_filter", FinishReason::ContentFilter),
        ] {
            let data = json!({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": vendor}]});
            let chunk = chunk_from_wire("p", &data.to_string(), None).unwrap();
            assert_eq!(chunk.choices[0].finish_reason, Some(ours), "{vendor}");
        }
    }

    #[test]
    fn whole_response_replays_as_chunks() {
        let body = json!({
            "id": "x", "created": 5, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
        });
        let response = response_from_wire("p", body.to_string().as_bytes(), None).unwrap();
        let chunks = response_to_chunks(response);
        assert_eq!(chunks.len(), 2);
        let calls = chunks[0].choices[0].delta.tool_calls.as_ref().unwrap();
        assert_eq!(calls[0].id.as_deref(), Some("call_1"));
        assert_eq!(
            calls[0].function.as_ref().unwrap().arguments.as_deref(),
            Some("{}")
        );
        assert_eq!(
            chunks[0].choices[0].finish_reason,
            Some(FinishReason::ToolCalls)
        );
        assert!(chunks[1].choices.is_empty());
        assert_eq!(chunks[1].usage.as_ref().unwrap().total_tokens, 3);
    }

    #[test]
    fn error_detail_reads_every_body_shape() {
        for (body, expected) in [
            (
                json!({"error": {"message": "bad model", "type": "invalid_request_error"}}),
                "bad model",
            ),
            (json!({"error": "plain text"}), "plain text"),
            (
                json!({"object": "error", "message": "vllm says no"}),
                "vllm says no",
            ),
            (json!({"detail": "fastapi says no"}), "fastapi says no"),
        ] {
            assert_eq!(
                error_detail(body.to_string().as_bytes()).as_deref(),
                Some(expected)
            );
        }
        assert_eq!(error_detail(b"Bad Gateway"), None);
    }

    fn outbound(model: &str, quirks: Quirks, fields: Value) -> Value {
        let mut body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        let request: ChatRequest = serde_json::from_value(body).unwrap();
        serde_json::from_slice(&request_body(&request, quirks).unwrap()).unwrap()
    }

    fn openai_quirks() -> Quirks {
        crate::preset("openai").unwrap().quirks
    }

    #[test]
    fn cache_breakpoints_are_left_out_for_openai_and_kept_for_other_servers() {
        let marked = json!({
            "messages": [
                {"role": "system", "content": "rules", "cache_control": {"type": "ephemeral"}},
                {"role": "user", "content": [
                    {"type": "text", "text": "doc", "cache_control": {"type": "ephemeral"}}
                ]}
            ],
            "tools": [{"type": "function", "function": {"name": "f"},
                       "cache_control": {"type": "ephemeral"}}]
        });
        let to_openai = outbound("gpt-4.1", openai_quirks(), marked.clone());
        assert_eq!(
            to_openai["messages"],
            json!([{"role": "system", "content": "rules"},
                   {"role": "user", "content": [{"type": "text", "text": "doc"}]}])
        );
        assert!(to_openai["tools"][0].get("cache_control").is_none());
        let to_proxy = outbound(
            "claude",
            crate::preset("openrouter").unwrap().quirks,
            marked,
        );
        assert_eq!(
            to_proxy["messages"][1]["content"][0]["cache_control"],
            json!({"type": "ephemeral"})
        );
        assert_eq!(
            to_proxy["messages"][0]["cache_control"],
            json!({"type": "ephemeral"})
        );
        assert_eq!(
            to_proxy["tools"][0]["cache_control"],
            json!({"type": "ephemeral"})
        );
    }

    #[test]
    fn reasoning_models_on_openai_get_max_completion_tokens_and_no_sampling() {
        let sampling = json!({"max_tokens": 300, "temperature": 0.2, "top_p": 0.9, "seed": 1});
        for model in ["o1", "o3-mini", "o4-mini-2025-04-16", "gpt-5", "gpt-5-mini"] {
            let body = outbound(model, openai_quirks(), sampling.clone());
            assert_eq!(body["max_completion_tokens"], 300, "{model}: {body}");
            for gone in ["max_tokens", "temperature", "top_p"] {
                assert!(body.get(gone).is_none(), "{model}: {gone} in {body}");
            }
            assert_eq!(body["seed"], 1, "{model}: other fields stay");
        }
        // Both spellings given: the smaller cap wins, in the only spelling allowed.
        let both = outbound(
            "o3",
            openai_quirks(),
            json!({"max_tokens": 50, "max_completion_tokens": 80}),
        );
        assert_eq!(both["max_completion_tokens"], 50, "{both}");
        assert!(both.get("max_tokens").is_none(), "{both}");
    }

    #[test]
    fn other_models_and_other_upstreams_are_sent_as_asked() {
        let fields = json!({"max_tokens": 300, "temperature": 0.2, "top_p": 0.9});
        let gpt4o = outbound("gpt-4o", openai_quirks(), fields.clone());
        assert_eq!(gpt4o["max_tokens"], 300);
        assert_eq!(gpt4o["temperature"], 0.2);
        assert!(gpt4o.get("max_completion_tokens").is_none());
        // An OpenRouter-style server takes `max_tokens` for every model.
        let elsewhere = outbound("o3-mini", crate::preset("groq").unwrap().quirks, fields);
        assert_eq!(elsewhere["max_tokens"], 300);
        assert_eq!(elsewhere["top_p"], 0.9);
        let untouched = outbound("o1", openai_quirks(), json!({"max_completion_tokens": 7}));
        assert_eq!(untouched["max_completion_tokens"], 7);
    }
}
