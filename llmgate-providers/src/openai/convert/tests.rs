//! Unit tests of the pure translation (`super`).

use super::*;
use llmgate_core::chat::{FinishReason, Message, Role};

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
