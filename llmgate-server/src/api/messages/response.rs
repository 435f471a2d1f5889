//! A core chat answer as a Messages answer.
//!
//! The model's reasoning (`reasoning_content`, as DeepSeek, vLLM and the Anthropic adapter
//! report it) becomes a `thinking` block with an empty `signature` (only Anthropic signs
//! thinking), then the text, then one `tool_use` block per tool call with the call's id and its
//! arguments parsed to an object (`{}` when they are empty or not an object). Usage is split
//! into Anthropic's classes: `input_tokens` counts only the uncached prompt tokens.

use llmgate_core::chat::{ChatResponse, FinishReason, Message, Usage};
use serde_json::Value;

use super::wire::{MessageResponse, OutputBlock, OutputUsage, StopReason};

/// The answer's first choice as a Messages answer.
pub(super) fn from_chat(answer: &ChatResponse) -> MessageResponse {
    let choice = answer.choices.first();
    let content = choice
        .map(|choice| blocks(&choice.message))
        .unwrap_or_default();
    MessageResponse {
        id: message_id(&answer.id),
        kind: "message",
        role: "assistant",
        content,
        model: answer.model.clone(),
        stop_reason: Some(stop_reason(choice.and_then(|c| c.finish_reason))),
        stop_sequence: None,
        usage: answer.usage.as_ref().map(usage).unwrap_or_default(),
    }
}

/// Anthropic's ids start with `msg_`; other upstreams' ids get the prefix.
pub(super) fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_owned()
    } else {
        format!("msg_{id}")
    }
}

fn blocks(message: &Message) -> Vec<OutputBlock> {
    let mut blocks = Vec::new();
    if let Some(thinking) = reasoning(&message.extra) {
        blocks.push(OutputBlock::Thinking {
            thinking: thinking.to_owned(),
            signature: String::new(),
        });
    }
    let text = message.text_content();
    if !text.is_empty() {
        blocks.push(OutputBlock::Text { text });
    } else if let Some(refusal) = message.refusal.as_ref().filter(|r| !r.is_empty()) {
        blocks.push(OutputBlock::Text {
            text: refusal.clone(),
        });
    }
    for call in message.tool_calls.iter().flatten() {
        blocks.push(OutputBlock::ToolUse {
            id: call.id.clone(),
            name: call.function.name.clone(),
            input: input(&call.function.arguments),
        });
    }
    blocks
}

/// The reasoning text a message or delta carries, when there is some.
pub(super) fn reasoning(extra: &serde_json::Map<String, Value>) -> Option<&str> {
    extra
        .get("reasoning_content")
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

/// Tool-call arguments (JSON text) as the object `tool_use.input` must be.
fn input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(object @ Value::Object(_)) => object,
        _ => Value::Object(serde_json::Map::new()),
    }
}

pub(super) fn stop_reason(finish: Option<FinishReason>) -> StopReason {
    match finish {
        Some(FinishReason::Length) => StopReason::MaxTokens,
        Some(FinishReason::ToolCalls | FinishReason::FunctionCall) => StopReason::ToolUse,
        Some(FinishReason::ContentFilter) => StopReason::Refusal,
        Some(FinishReason::Stop) | None => StopReason::EndTurn,
    }
}

pub(super) fn usage(usage: &Usage) -> OutputUsage {
    let classes = usage.classes();
    OutputUsage {
        input_tokens: classes.uncached_prompt,
        cache_creation_input_tokens: classes.cache_write,
        cache_read_input_tokens: classes.cache_read,
        output_tokens: classes.output,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_reasoning_and_tool_calls_become_blocks() {
        let answer: ChatResponse = serde_json::from_value(json!({
            "id": "chatcmpl-1", "model": "gpt-up",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Let me look.", "reasoning_content": "hmm",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": ""}}
                ]
            }}],
            "usage": {"prompt_tokens": 3000, "completion_tokens": 500, "total_tokens": 3500,
                      "prompt_tokens_details": {"cached_tokens": 2000}}
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(from_chat(&answer)).unwrap(),
            json!({
                "id": "msg_chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-up",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": ""},
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
                    {"type": "tool_use", "id": "call_2", "name": "g", "input": {}}
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 1000, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 2000, "output_tokens": 500}
            })
        );
    }

    #[test]
    fn finish_reasons_map_to_stop_reasons() {
        assert_eq!(stop_reason(Some(FinishReason::Stop)), StopReason::EndTurn);
        assert_eq!(
            stop_reason(Some(FinishReason::Length)),
            StopReason::MaxTokens
        );
        assert_eq!(
            stop_reason(Some(FinishReason::ToolCalls)),
            StopReason::ToolUse
        );
        assert_eq!(
            stop_reason(Some(FinishReason::ContentFilter)),
            StopReason::Refusal
        );
        assert_eq!(stop_reason(None), StopReason::EndTurn);
    }
}
