//! A Messages request as a core chat request (OpenAI's shape), for any upstream.
//!
//! The rules where the two protocols differ:
//! - `system` (a string or text blocks) becomes one leading system message; blocks keep their
//!   `cache_control`.
//! - A user turn's `tool_result` blocks become `tool` messages, in order, before the turn's
//!   other content; `is_error: true` is kept as an `Error: ` prefix on the result's text, and
//!   images inside a result are left out (a `tool` message carries text only).
//! - An assistant turn's `tool_use` blocks become `tool_calls` with the same ids, `input` as
//!   JSON text.
//! - `thinking` and `redacted_thinking` blocks of earlier turns, and the `thinking` setting,
//!   are dropped: their signatures only mean something to Anthropic, and chat completions has
//!   no field for them.
//! - Tools with a `type` of Anthropic's own (web search, bash, text editor) are dropped: only
//!   Anthropic runs them. `top_k` and unknown fields are ignored.

use llmgate_core::chat::{
    ChatRequest, Content, ContentPart, FunctionCall, FunctionDefinition, ImageUrl, Message,
    NamedFunction, NamedToolChoice, Role as ChatRole, Stop, Tool, ToolCall,
    ToolChoice as ChatToolChoice, ToolChoiceMode,
};
use serde_json::{Map, Value};

use super::wire::{
    InputBlock, InputMessage, MessagesRequest, Role, Source, Text, ToolChoice, ToolDefinition,
};

/// The request headers an Anthropic upstream gets as the client sent them.
const PASSED_ON: [&str; 2] = ["anthropic-version", "anthropic-beta"];

/// The client's [`PASSED_ON`] headers, for a same-protocol upstream.
pub(super) fn passed_on(headers: &http::HeaderMap) -> Vec<(String, String)> {
    PASSED_ON
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), value.to_owned()))
        })
        .collect()
}

/// The Messages request as a chat request.
pub(super) fn to_chat(request: MessagesRequest) -> ChatRequest {
    let messages = prompt_messages(request.system, request.messages);
    let mut chat = ChatRequest::new(request.model, messages);
    chat.max_tokens = Some(request.max_tokens);
    chat.temperature = request.temperature;
    chat.top_p = request.top_p;
    chat.stream = request.stream;
    chat.stop = request
        .stop_sequences
        .filter(|stops| !stops.is_empty())
        .map(Stop::Many);
    chat.user = request.metadata.and_then(|m| m.user_id);
    chat.tools = request.tools.and_then(custom_tools);
    if let Some(choice) = request.tool_choice {
        let (choice, disable_parallel) = tool_choice(choice);
        chat.tool_choice = Some(choice);
        if disable_parallel == Some(true) {
            chat.parallel_tool_calls = Some(false);
        }
    }
    chat
}

/// `system` and `messages` as chat messages.
pub(super) fn prompt_messages(system: Option<Text>, messages: Vec<InputMessage>) -> Vec<Message> {
    let mut out = Vec::new();
    if let Some(system) = system {
        out.push(Message {
            content: Some(content_of(system)),
            ..Message::system("")
        });
    }
    for message in messages {
        push_message(&mut out, message);
    }
    out
}

fn push_message(out: &mut Vec<Message>, message: InputMessage) {
    let blocks = match message.content {
        Text::Plain(text) => {
            out.push(Message::text(role(message.role), text));
            return;
        }
        Text::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block {
            InputBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => out.push(Message {
                tool_call_id: Some(tool_use_id),
                ..Message::text(
                    ChatRole::Tool,
                    tool_result_text(content, is_error.unwrap_or(false)),
                )
            }),
            InputBlock::ToolUse { id, name, input } => calls.push(ToolCall {
                id,
                kind: "function".to_owned(),
                function: FunctionCall {
                    name,
                    arguments: arguments(&input),
                },
            }),
            other => parts.extend(part(other)),
        }
    }
    if parts.is_empty() && calls.is_empty() {
        return;
    }
    let content = if parts.is_empty() {
        None
    } else {
        Some(Content::Parts(parts))
    };
    out.push(Message {
        content,
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..Message::text(role(message.role), "")
    });
}

fn role(role: Role) -> ChatRole {
    match role {
        Role::User => ChatRole::User,
        Role::Assistant => ChatRole::Assistant,
        Role::System => ChatRole::System,
    }
}

/// A string stays a string; blocks become parts.
fn content_of(text: Text) -> Content {
    match text {
        Text::Plain(text) => Content::Text(text),
        Text::Blocks(blocks) => Content::Parts(blocks.into_iter().filter_map(part).collect()),
    }
}

/// The chat part of a text, image or document block; `None` for blocks chat has no part for.
fn part(block: InputBlock) -> Option<ContentPart> {
    match block {
        InputBlock::Text {
            text,
            cache_control,
        } => Some(ContentPart::Text {
            text,
            cache_control,
        }),
        InputBlock::Image {
            source,
            cache_control,
        } => {
            let url = match source {
                Source::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
                Source::Url { url } => url,
                Source::Text { .. } | Source::Other => return None,
            };
            Some(ContentPart::ImageUrl {
                image_url: ImageUrl { url, detail: None },
                cache_control,
            })
        }
        InputBlock::Document {
            source,
            cache_control,
        } => match source {
            Source::Text { data } => Some(ContentPart::Text {
                text: data,
                cache_control,
            }),
            Source::Base64 { media_type, data } => {
                let mut file = Map::new();
                file.insert("filename".to_owned(), Value::from("document"));
                file.insert(
                    "file_data".to_owned(),
                    Value::from(format!("data:{media_type};base64,{data}")),
                );
                Some(ContentPart::File {
                    file: Value::Object(file),
                })
            }
            Source::Url { .. } | Source::Other => None,
        },
        InputBlock::ToolUse { .. }
        | InputBlock::ToolResult { .. }
        | InputBlock::Thinking {}
        | InputBlock::RedactedThinking {}
        | InputBlock::Other => None,
    }
}

fn tool_result_text(content: Option<Text>, is_error: bool) -> String {
    let text = match content {
        None => String::new(),
        Some(Text::Plain(text)) => text,
        Some(Text::Blocks(blocks)) => {
            let texts: Vec<String> = blocks
                .into_iter()
                .filter_map(|block| match block {
                    InputBlock::Text { text, .. } => Some(text),
                    _ => None,
                })
                .collect();
            texts.join("\n")
        }
    };
    if is_error {
        format!("Error: {text}")
    } else {
        text
    }
}

/// A tool call's input as the JSON text chat completions carries.
fn arguments(input: &Value) -> String {
    match input {
        Value::Null => "{}".to_owned(),
        input => input.to_string(),
    }
}

/// The tools the client runs itself, as chat functions; `None` when there are none.
pub(super) fn custom_tools(definitions: Vec<ToolDefinition>) -> Option<Vec<Tool>> {
    let tools: Vec<Tool> = definitions
        .into_iter()
        .filter(ToolDefinition::is_custom)
        .map(|definition| Tool {
            kind: "function".to_owned(),
            function: FunctionDefinition {
                name: definition.name,
                description: definition.description,
                parameters: definition.input_schema,
                strict: None,
            },
            cache_control: definition.cache_control,
        })
        .collect();
    (!tools.is_empty()).then_some(tools)
}

/// The chat tool choice, and whether parallel calls were turned off.
fn tool_choice(choice: ToolChoice) -> (ChatToolChoice, Option<bool>) {
    match choice {
        ToolChoice::Auto {
            disable_parallel_tool_use,
        } => (
            ChatToolChoice::Mode(ToolChoiceMode::Auto),
            disable_parallel_tool_use,
        ),
        ToolChoice::Any {
            disable_parallel_tool_use,
        } => (
            ChatToolChoice::Mode(ToolChoiceMode::Required),
            disable_parallel_tool_use,
        ),
        ToolChoice::Tool {
            name,
            disable_parallel_tool_use,
        } => (
            ChatToolChoice::Named(NamedToolChoice {
                kind: "function".to_owned(),
                function: NamedFunction { name },
            }),
            disable_parallel_tool_use,
        ),
        ToolChoice::None {} => (ChatToolChoice::Mode(ToolChoiceMode::None), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat(body: Value) -> Value {
        let request: MessagesRequest = serde_json::from_value(body).unwrap();
        serde_json::to_value(to_chat(request)).unwrap()
    }

    #[test]
    fn system_blocks_text_and_images_become_chat_parts() {
        let out = chat(json!({
            "model": "m", "max_tokens": 100, "temperature": 0.5, "top_p": 0.9, "top_k": 5,
            "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                {"type": "image", "source": {"type": "url", "url": "https://x/cat.png"}}
            ]}],
            "stop_sequences": ["END"], "metadata": {"user_id": "u-1"},
            "context_management": {"edits": []}, "thinking": {"type": "adaptive"}
        }));
        assert_eq!(
            out,
            json!({
                "model": "m", "max_tokens": 100, "temperature": 0.5, "top_p": 0.9,
                "stop": ["END"], "user": "u-1",
                "messages": [
                    {"role": "system", "content": [
                        {"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                        {"type": "image_url", "image_url": {"url": "https://x/cat.png"}}
                    ]}
                ]
            })
        );
    }

    #[test]
    fn tool_use_and_results_keep_their_ids_and_errors() {
        let out = chat(json!({
            "model": "m", "max_tokens": 10,
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "time", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
                     "content": [{"type": "text", "text": "no clock"}]},
                    {"type": "text", "text": "and?"}
                ]}
            ]
        }));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [{"type": "text", "text": "Checking."}],
                 "tool_calls": [
                    {"id": "toolu_1", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}},
                    {"id": "toolu_2", "type": "function",
                     "function": {"name": "time", "arguments": "{}"}}
                 ]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "rain"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no clock"},
                {"role": "user", "content": [{"type": "text", "text": "and?"}]}
            ])
        );
    }

    #[test]
    fn tools_and_tool_choice_map_to_functions() {
        let out = chat(json!({
            "model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
            "tools": [
                {"name": "weather", "description": "Weather now",
                 "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
            ],
            "tool_choice": {"type": "tool", "name": "weather", "disable_parallel_tool_use": true}
        }));
        assert_eq!(
            out["tools"],
            json!([{"type": "function", "cache_control": {"type": "ephemeral"},
                    "function": {"name": "weather", "description": "Weather now",
                                 "parameters": {"type": "object"}}}])
        );
        assert_eq!(
            out["tool_choice"],
            json!({"type": "function", "function": {"name": "weather"}})
        );
        assert_eq!(out["parallel_tool_calls"], json!(false));

        for (anthropic, openai) in [("auto", "auto"), ("any", "required"), ("none", "none")] {
            let out = chat(json!({
                "model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
                "tool_choice": {"type": anthropic}
            }));
            assert_eq!(out["tool_choice"], json!(openai));
            assert!(out.get("parallel_tool_calls").is_none());
        }
    }

    #[test]
    fn unknown_blocks_and_a_thinking_only_turn_are_dropped() {
        let out = chat(json!({
            "model": "m", "max_tokens": 10,
            "messages": [
                {"role": "user", "content": [{"type": "search_result", "x": 1}, {"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "xyz"}]},
                {"role": "system", "content": "mind the time"},
                {"role": "user", "content": "again"}
            ]
        }));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "system", "content": "mind the time"},
                {"role": "user", "content": "again"}
            ])
        );
    }
}
