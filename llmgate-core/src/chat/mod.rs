//! Provider-neutral chat types. Their JSON is OpenAI's, the lingua franca of clients; adapters
//! translate them to each upstream's own wire types.

mod message;
mod native;
mod request;
mod response;

pub use message::{Content, ContentPart, FunctionCall, ImageUrl, Message, Role, ToolCall};
pub use native::{NativeBody, WireFormat};
pub use request::{
    ChatRequest, FunctionDefinition, NamedFunction, NamedToolChoice, ResponseFormat, Stop,
    StreamOptions, Tool, ToolChoice, ToolChoiceMode,
};
pub use response::{
    ChatChunk, ChatResponse, Choice, ChunkChoice, CompletionTokensDetails, Delta, FinishReason,
    FunctionCallDelta, PromptTokensDetails, ToolCallDelta, Usage, WireJson,
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_round_trips_every_openai_field_and_keeps_unknown_ones() {
        let body = json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{\"x\":1}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a cat"}
            ],
            "tools": [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "look"}},
            "response_format": {"type": "json_object"},
            "temperature": 0.2, "top_p": 0.9, "n": 2, "stop": ["END"], "seed": 7,
            "max_tokens": 100, "user": "u1", "stream": true,
            "stream_options": {"include_usage": true},
            "logit_bias": {"50256": -100},
            "vendor_knob": {"deep": [1, 2]}
        });
        let request: ChatRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(request.messages.len(), 4);
        assert_eq!(
            request.extra.get("vendor_knob"),
            Some(&json!({"deep": [1, 2]}))
        );
        let mut back = serde_json::to_value(&request).unwrap();
        // `content: null` is dropped on the way out, which upstreams treat the same.
        back["messages"][2]["content"] = serde_json::Value::Null;
        assert_eq!(back, body);
    }

    #[test]
    fn power_level_is_read_but_never_forwarded() {
        let request: ChatRequest = serde_json::from_value(json!({
            "model": "auto", "messages": [{"role": "user", "content": "hi"}], "power_level": "eco"
        }))
        .unwrap();
        assert_eq!(request.power_level, Some(crate::power::PowerLevel::Eco));
        let out = serde_json::to_value(&request).unwrap();
        assert!(out.get("power_level").is_none());
    }

    #[test]
    fn unknown_role_is_rejected() {
        let parsed = serde_json::from_value::<ChatRequest>(json!({
            "model": "m", "messages": [{"role": "wizard", "content": "hi"}]
        }));
        assert!(parsed.is_err());
    }

    #[test]
    fn tool_call_deltas_parse_from_openai_chunks() {
        let chunk: ChatChunk = serde_json::from_value(json!({
            "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
            ], "reasoning_content": "hmm"}, "finish_reason": null}],
            "usage": null
        }))
        .unwrap();
        let delta = &chunk.choices[0].delta;
        assert_eq!(
            delta.tool_calls.as_ref().unwrap()[0].id.as_deref(),
            Some("call_1")
        );
        assert_eq!(delta.extra.get("reasoning_content"), Some(&json!("hmm")));
    }
}
