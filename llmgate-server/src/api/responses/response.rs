//! A core chat answer as a `response` object.
//!
//! Output items in order: a `reasoning` item when the upstream reported reasoning text
//! (`reasoning_content`, as DeepSeek, vLLM and the Anthropic adapter do) with the text as its
//! summary, a `message` with one `output_text` part (or a `refusal`), then one `function_call`
//! per tool call with its call id and arguments as sent; a flattened namespace function is
//! named back as its `namespace` and `name`. `finish_reason: length` makes the response
//! `incomplete` (`max_output_tokens`), `content_filter` likewise (`content_filter`). Usage:
//! `input_tokens` counts every prompt token, cached ones too, as OpenAI's does.

use llmgate_core::chat::{ChatResponse, FinishReason, Message, Usage};
use serde_json::Value;

use super::exchange::Exchange;
use super::wire::{
    IncompleteDetails, InputTokensDetails, OutputContent, OutputItem, OutputTokensDetails,
    ResponseObject, ResponseUsage, Status, SummaryText,
};

/// The answer's first choice as a finished `response`.
pub(super) fn from_chat(answer: &ChatResponse, exchange: &Exchange) -> ResponseObject {
    let choice = answer.choices.first();
    let output = choice
        .map(|choice| items(&choice.message, exchange))
        .unwrap_or_default();
    let mut response = shell(exchange, Status::Completed);
    response.output = output;
    finish(
        &mut response,
        choice.and_then(|c| c.finish_reason),
        answer.usage.as_ref(),
    );
    response.llmgate = answer.extra.get("llmgate").cloned();
    response
}

/// A response with no output yet, in `status`.
pub(super) fn shell(exchange: &Exchange, status: Status) -> ResponseObject {
    let mut settings = exchange.settings.clone();
    settings.insert("store".to_owned(), Value::from(exchange.store));
    settings.insert(
        "previous_response_id".to_owned(),
        exchange
            .previous_response_id
            .clone()
            .map_or(Value::Null, Value::from),
    );
    for (name, default) in [
        ("tool_choice", Value::from("auto")),
        ("tools", Value::Array(Vec::new())),
        ("parallel_tool_calls", Value::from(true)),
        ("metadata", Value::Object(serde_json::Map::new())),
    ] {
        match settings.get(name) {
            Some(Value::Null) | None => {
                settings.insert(name.to_owned(), default);
            }
            Some(_) => {}
        }
    }
    ResponseObject {
        id: exchange.id.clone(),
        object: "response",
        created_at: exchange.created_at,
        status,
        error: None,
        incomplete_details: None,
        model: exchange.model.clone(),
        output: Vec::new(),
        output_text: String::new(),
        usage: None,
        llmgate: None,
        settings,
    }
}

/// The status, `output_text` and usage of a response whose output is complete.
pub(super) fn finish(
    response: &mut ResponseObject,
    finish: Option<FinishReason>,
    usage: Option<&Usage>,
) {
    let reason = match finish {
        Some(FinishReason::Length) => Some("max_output_tokens"),
        Some(FinishReason::ContentFilter) => Some("content_filter"),
        _ => None,
    };
    response.status = if reason.is_some() {
        Status::Incomplete
    } else {
        Status::Completed
    };
    response.incomplete_details = reason.map(|reason| IncompleteDetails { reason });
    response.output_text = output_text(&response.output);
    response.usage = usage.map(response_usage);
}

fn items(message: &Message, exchange: &Exchange) -> Vec<OutputItem> {
    let mut items = Vec::new();
    if let Some(reasoning) = reasoning(&message.extra) {
        items.push(OutputItem::Reasoning {
            id: exchange.item_id("rs", 0),
            summary: vec![summary(reasoning.to_owned())],
        });
    }
    let text = message.text_content();
    let content = if !text.is_empty() {
        Some(OutputContent::OutputText {
            text,
            annotations: [],
        })
    } else {
        message
            .refusal
            .clone()
            .filter(|r| !r.is_empty())
            .map(|refusal| OutputContent::Refusal { refusal })
    };
    if let Some(content) = content {
        items.push(OutputItem::Message {
            id: exchange.item_id("msg", 0),
            status: Status::Completed,
            role: "assistant",
            content: vec![content],
        });
    }
    for (index, call) in message.tool_calls.iter().flatten().enumerate() {
        let (namespace, name) = named_back(exchange, &call.function.name);
        items.push(OutputItem::FunctionCall {
            id: exchange.item_id("fc", index as u32),
            call_id: call.id.clone(),
            name,
            arguments: call.function.arguments.clone(),
            status: Status::Completed,
            namespace,
        });
    }
    items
}

/// A function's name as the client declared it: a flattened namespace function's
/// `(namespace, name)`, else the name alone.
pub(super) fn named_back(exchange: &Exchange, flat: &str) -> (Option<String>, String) {
    match exchange.namespaced.get(flat) {
        Some((namespace, name)) => (Some(namespace.clone()), name.clone()),
        None => (None, flat.to_owned()),
    }
}

pub(super) fn summary(text: String) -> SummaryText {
    SummaryText {
        kind: "summary_text",
        text,
    }
}

/// The reasoning text a message or delta carries, when there is some.
pub(super) fn reasoning(extra: &serde_json::Map<String, Value>) -> Option<&str> {
    extra
        .get("reasoning_content")
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

/// Every `output_text` of the output's messages, joined.
fn output_text(output: &[OutputItem]) -> String {
    output
        .iter()
        .filter_map(|item| match item {
            OutputItem::Message { content, .. } => Some(content),
            _ => None,
        })
        .flatten()
        .filter_map(|part| match part {
            OutputContent::OutputText { text, .. } => Some(text.as_str()),
            OutputContent::Refusal { .. } => None,
        })
        .collect()
}

pub(super) fn response_usage(usage: &Usage) -> ResponseUsage {
    let classes = usage.classes();
    let reasoning = usage
        .completion_tokens_details
        .as_ref()
        .and_then(|d| d.reasoning_tokens)
        .unwrap_or(0);
    ResponseUsage {
        input_tokens: usage.prompt_tokens,
        input_tokens_details: InputTokensDetails {
            cached_tokens: classes.cache_read,
        },
        output_tokens: usage.completion_tokens,
        output_tokens_details: OutputTokensDetails {
            reasoning_tokens: reasoning,
        },
        total_tokens: usage.prompt_tokens + usage.completion_tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_reasoning_and_tool_calls_become_items() {
        let answer: ChatResponse = serde_json::from_value(json!({
            "id": "chatcmpl-1", "model": "gpt-up",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Let me look.", "reasoning_content": "hmm",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "ns__g", "arguments": "{}"}}
                ]
            }}],
            "usage": {"prompt_tokens": 3000, "completion_tokens": 500, "total_tokens": 3500,
                      "prompt_tokens_details": {"cached_tokens": 2000},
                      "completion_tokens_details": {"reasoning_tokens": 300}}
        }))
        .unwrap();
        let mut exchange = Exchange::new("asked");
        exchange.id = "resp_abc".to_owned();
        exchange.created_at = 7;
        exchange
            .namespaced
            .insert("ns__g".to_owned(), ("ns".to_owned(), "g".to_owned()));
        let value = serde_json::to_value(from_chat(&answer, &exchange)).unwrap();
        assert_eq!(
            value["output"],
            json!([
                {"type": "reasoning", "id": "rs_abc_0",
                 "summary": [{"type": "summary_text", "text": "hmm"}]},
                {"type": "message", "id": "msg_abc_0", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}]},
                {"type": "function_call", "id": "fc_abc_0", "call_id": "call_1", "name": "f",
                 "arguments": "{\"a\":1}", "status": "completed"},
                {"type": "function_call", "id": "fc_abc_1", "call_id": "call_2", "name": "g",
                 "namespace": "ns", "arguments": "{}", "status": "completed"}
            ])
        );
        assert_eq!(value["id"], "resp_abc");
        assert_eq!(value["object"], "response");
        assert_eq!(value["model"], "asked");
        assert_eq!(value["status"], "completed");
        assert_eq!(value["output_text"], "Let me look.");
        assert_eq!(value["tools"], json!([]));
        assert_eq!(value["store"], true);
        assert_eq!(
            value["usage"],
            json!({"input_tokens": 3000, "input_tokens_details": {"cached_tokens": 2000},
                   "output_tokens": 500, "output_tokens_details": {"reasoning_tokens": 300},
                   "total_tokens": 3500})
        );
    }

    #[test]
    fn a_cut_off_answer_is_incomplete() {
        let answer = ChatResponse::assistant("m", "partial")
            .with_finish_reason(FinishReason::Length)
            .with_usage(Usage::new(3, 4));
        let value = serde_json::to_value(from_chat(&answer, &Exchange::new("m"))).unwrap();
        assert_eq!(value["status"], "incomplete");
        assert_eq!(
            value["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
    }
}
