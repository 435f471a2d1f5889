//! Pure translation between core chat types and the Messages API.

use llmgate_core::chat::{
    ContentPart, FunctionCall, PromptTokensDetails, ResponseFormat, ToolCall, ToolChoiceMode,
};
use llmgate_core::{
    ChatRequest, ChatResponse, Choice, Content, Error, FinishReason, Message, Result, Role, Usage,
};
use serde_json::{Map, Value};

use super::wire::{
    Block, ErrorBody, ErrorObject, ImageSource, MessagesRequest, MessagesResponse, Metadata,
    ResponseBlock, System, ToolChoice, ToolChoiceKind, ToolResultContent, ToolSpec, Turn, TurnRole,
    WireUsage,
};

/// The output cap sent when a request has none. The Messages API requires one and the gateway
/// normally sets it, so this only matters for callers that use the adapter directly.
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The request body for `POST /v1/messages`.
pub(crate) fn to_wire(request: &ChatRequest, stream: bool) -> Result<MessagesRequest> {
    if request.n.is_some_and(|n| n > 1) {
        return Err(
            Error::invalid_request("Anthropic models return one choice; `n` must be 1.")
                .with_param("n"),
        );
    }
    if matches!(
        request.response_format,
        Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema { .. })
    ) {
        return Err(Error::invalid_request(
            "`response_format` JSON modes are not supported by Anthropic models; describe the \
             format in the prompt or use a tool.",
        )
        .with_param("response_format"));
    }

    let mut system = Vec::new();
    let mut system_blocks = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, message) in request.messages.iter().enumerate() {
        match message.role {
            Role::System | Role::Developer => {
                let text = message.text_content();
                if !text.is_empty() {
                    system.push(text);
                }
                system_blocks.extend(text_blocks(message, &format!("messages[{i}].content"))?);
            }
            Role::User => push_turn(&mut turns, TurnRole::User, user_blocks(message, i)?),
            Role::Assistant => {
                push_turn(
                    &mut turns,
                    TurnRole::Assistant,
                    assistant_blocks(message, i)?,
                );
            }
            Role::Tool => push_turn(&mut turns, TurnRole::User, vec![tool_result(message, i)?]),
        }
    }

    let has_tools = request.tools.as_ref().is_some_and(|t| !t.is_empty());
    Ok(MessagesRequest {
        model: request.model.clone(),
        max_tokens: request.requested_max_tokens().unwrap_or(DEFAULT_MAX_TOKENS),
        messages: turns,
        system: system_prompt(system, system_blocks),
        temperature: request.temperature,
        top_p: request.top_p,
        top_k: request.extra.get("top_k").and_then(Value::as_u64),
        stop_sequences: request.stop.as_ref().map(|s| s.to_vec()),
        stream,
        metadata: request.user.clone().map(|user_id| Metadata { user_id }),
        tools: has_tools.then(|| tools(request)),
        tool_choice: if has_tools {
            tool_choice(request)
        } else {
            None
        },
    })
}

/// A system or developer message as text blocks (images are not allowed there).
fn text_blocks(message: &Message, param: &str) -> Result<Vec<Block>> {
    let blocks = match &message.content {
        None => Vec::new(),
        Some(content) => with_message_cache_control(message, content_blocks(content, param)?),
    };
    if blocks.iter().any(|b| matches!(b, Block::Image { .. })) {
        return Err(
            Error::invalid_request("A system message to an Anthropic model must be text.")
                .with_param(param),
        );
    }
    Ok(blocks)
}

/// The system prompt: the messages' texts joined, unless a block sets a cache breakpoint,
/// which only the block form can carry.
fn system_prompt(texts: Vec<String>, blocks: Vec<Block>) -> Option<System> {
    let cached = blocks.iter().any(|b| {
        matches!(
            b,
            Block::Text {
                cache_control: Some(_),
                ..
            }
        )
    });
    if cached {
        return Some(System::Blocks(blocks));
    }
    (!texts.is_empty()).then(|| System::Text(texts.join("\n\n")))
}

/// A `cache_control` on the message itself marks its last block, as Anthropic marks a prefix.
fn with_message_cache_control(message: &Message, mut blocks: Vec<Block>) -> Vec<Block> {
    if let Some(marker) = message.extra.get("cache_control")
        && let Some(Block::Text { cache_control, .. } | Block::Image { cache_control, .. }) =
            blocks.last_mut()
        && cache_control.is_none()
    {
        *cache_control = Some(marker.clone());
    }
    blocks
}

/// Append blocks as a turn, merging into the previous turn when it has the same role (the API
/// requires alternating roles).
fn push_turn(turns: &mut Vec<Turn>, role: TurnRole, blocks: Vec<Block>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => last.content.extend(blocks),
        _ => turns.push(Turn {
            role,
            content: blocks,
        }),
    }
}

fn user_blocks(message: &Message, i: usize) -> Result<Vec<Block>> {
    match &message.content {
        None => Ok(Vec::new()),
        Some(content) => Ok(with_message_cache_control(
            message,
            content_blocks(content, &format!("messages[{i}].content"))?,
        )),
    }
}

/// Text and images, each with its cache breakpoint; the API rejects empty text blocks, so those
/// are dropped.
fn content_blocks(content: &Content, param: &str) -> Result<Vec<Block>> {
    match content {
        Content::Text(text) if text.is_empty() => Ok(Vec::new()),
        Content::Text(text) => Ok(vec![Block::Text {
            text: text.clone(),
            cache_control: None,
        }]),
        Content::Parts(parts) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for part in parts {
                match part {
                    ContentPart::Text { text, .. } if text.is_empty() => {}
                    ContentPart::Text {
                        text,
                        cache_control,
                    } => blocks.push(Block::Text {
                        text: text.clone(),
                        cache_control: cache_control.clone(),
                    }),
                    ContentPart::ImageUrl {
                        image_url,
                        cache_control,
                    } => blocks.push(Block::Image {
                        source: image_source(&image_url.url, param)?,
                        cache_control: cache_control.clone(),
                    }),
                    ContentPart::InputAudio { .. } | ContentPart::File { .. } => {
                        return Err(Error::invalid_request(
                            "Anthropic models accept text and image parts only.",
                        )
                        .with_param(param));
                    }
                }
            }
            Ok(blocks)
        }
    }
}

/// `data:` URLs become inline base64 images; http(s) URLs are fetched by Anthropic.
fn image_source(url: &str, param: &str) -> Result<ImageSource> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (media_type, data) = rest
            .split_once(";base64,")
            .filter(|(media_type, data)| !media_type.is_empty() && !data.is_empty())
            .ok_or_else(|| {
                Error::invalid_request(
                    "An image data URL must look like `data:image/png;base64,...`.",
                )
                .with_param(param)
            })?;
        return Ok(ImageSource::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(ImageSource::Url {
            url: url.to_owned(),
        });
    }
    Err(
        Error::invalid_request("An image URL must be an http(s) URL or a base64 data URL.")
            .with_param(param),
    )
}

fn assistant_blocks(message: &Message, i: usize) -> Result<Vec<Block>> {
    let mut blocks = user_blocks(message, i)?;
    for (j, call) in message.tool_calls.iter().flatten().enumerate() {
        blocks.push(Block::ToolUse {
            id: call.id.clone(),
            name: call.function.name.clone(),
            input: tool_input(
                &call.function.arguments,
                &format!("messages[{i}].tool_calls[{j}].function.arguments"),
            )?,
        });
    }
    Ok(blocks)
}

/// The arguments text as the object Anthropic wants; empty text means no arguments.
fn tool_input(arguments: &str, param: &str) -> Result<Value> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(object @ Value::Object(_)) => Ok(object),
        _ => Err(Error::invalid_request(
            "Tool call arguments must be a JSON object to be sent to an Anthropic model.",
        )
        .with_param(param)),
    }
}

fn tool_result(message: &Message, i: usize) -> Result<Block> {
    let tool_use_id = message.tool_call_id.clone().ok_or_else(|| {
        Error::invalid_request("A tool message needs the `tool_call_id` it answers.")
            .with_param(format!("messages[{i}].tool_call_id"))
    })?;
    let has_images = matches!(
        &message.content,
        Some(Content::Parts(parts)) if parts.iter().any(|p| matches!(p, ContentPart::ImageUrl { .. }))
    );
    let content = match &message.content {
        Some(content) if has_images => {
            ToolResultContent::Blocks(content_blocks(content, &format!("messages[{i}].content"))?)
        }
        _ => ToolResultContent::Text(message.text_content()),
    };
    Ok(Block::ToolResult {
        tool_use_id,
        content,
    })
}

fn tools(request: &ChatRequest) -> Vec<ToolSpec> {
    request
        .tools
        .iter()
        .flatten()
        .map(|tool| ToolSpec {
            name: tool.function.name.clone(),
            description: tool.function.description.clone(),
            input_schema: tool
                .function
                .parameters
                .clone()
                .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            cache_control: tool.cache_control.clone(),
        })
        .collect()
}

/// OpenAI's `tool_choice` and `parallel_tool_calls` in Anthropic's one object.
fn tool_choice(request: &ChatRequest) -> Option<ToolChoice> {
    use llmgate_core::chat::ToolChoice as Core;
    let (kind, name) = match &request.tool_choice {
        None => (ToolChoiceKind::Auto, None),
        Some(Core::Mode(ToolChoiceMode::Auto)) => (ToolChoiceKind::Auto, None),
        Some(Core::Mode(ToolChoiceMode::None)) => (ToolChoiceKind::None, None),
        Some(Core::Mode(ToolChoiceMode::Required)) => (ToolChoiceKind::Any, None),
        Some(Core::Named(named)) => (ToolChoiceKind::Tool, Some(named.function.name.clone())),
    };
    let serial = request.parallel_tool_calls == Some(false) && kind != ToolChoiceKind::None;
    if request.tool_choice.is_none() && !serial {
        // Nothing to say: Anthropic's default is `auto` with parallel calls allowed.
        return None;
    }
    Some(ToolChoice {
        kind,
        name,
        disable_parallel_tool_use: serial.then_some(true),
    })
}

/// A whole answer as a core response.
pub(crate) fn from_wire(response: MessagesResponse, created: u64) -> ChatResponse {
    let mut texts = Vec::new();
    let mut thinking = Vec::new();
    let mut calls = Vec::new();
    for block in response.content {
        match block {
            ResponseBlock::Text { text } => texts.push(text),
            ResponseBlock::Thinking { thinking: text } => thinking.push(text),
            ResponseBlock::ToolUse { id, name, input } => calls.push(ToolCall {
                id,
                kind: "function".to_owned(),
                function: FunctionCall {
                    name,
                    arguments: arguments_text(&input),
                },
            }),
            ResponseBlock::Other => {}
        }
    }
    let text = texts.concat();
    let mut message = Message::assistant(text.clone());
    if text.is_empty() && !calls.is_empty() {
        message.content = None;
    }
    if !calls.is_empty() {
        message.tool_calls = Some(calls);
    }
    if !thinking.is_empty() {
        message.extra.insert(
            "reasoning_content".to_owned(),
            Value::String(thinking.concat()),
        );
    }
    ChatResponse {
        id: response.id,
        object: "chat.completion".to_owned(),
        created,
        model: response.model,
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: response.stop_reason.as_deref().map(finish_reason),
            logprobs: None,
        }],
        usage: response.usage.as_ref().and_then(usage),
        system_fingerprint: None,
        extra: Map::new(),
    }
}

/// Tool input as OpenAI's arguments text; a missing input is an empty object.
pub(crate) fn arguments_text(input: &Value) -> String {
    match input {
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    }
}

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`.
pub(crate) fn finish_reason(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        // end_turn, stop_sequence, pause_turn and anything newer.
        _ => FinishReason::Stop,
    }
}

/// Anthropic's usage in OpenAI's terms: cached and cache-writing input tokens are part of the
/// prompt, and kept apart in the details because they are priced differently.
pub(crate) fn usage(wire: &WireUsage) -> Option<Usage> {
    let input = wire.input_tokens?;
    let read = wire.cache_read_input_tokens;
    let created = wire.cache_creation_input_tokens;
    let mut usage = Usage::new(
        input + read.unwrap_or(0) + created.unwrap_or(0),
        wire.output_tokens.unwrap_or(0),
    );
    if read.is_some() || created.is_some() {
        usage.prompt_tokens_details = Some(PromptTokensDetails {
            cached_tokens: read,
            cache_creation_tokens: created,
            extra: Map::new(),
        });
    }
    Some(usage)
}

/// The readable part of an error body: `message (type)`.
pub(crate) fn error_detail(body: &[u8]) -> Option<String> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    Some(describe(&parsed.error))
}

fn describe(error: &ErrorObject) -> String {
    match (&error.message, &error.kind) {
        (Some(message), Some(kind)) => format!("{message} ({kind})"),
        (Some(message), None) => message.clone(),
        (None, Some(kind)) => kind.clone(),
        (None, None) => String::new(),
    }
}

/// An `error` event inside a stream, classified by its type as the same error would be as an
/// HTTP answer.
pub(crate) fn stream_error(provider: &str, error: &ErrorObject) -> Error {
    let status = match error.kind.as_deref() {
        Some("invalid_request_error") => 400,
        Some("authentication_error") => 401,
        Some("permission_error") => 403,
        Some("not_found_error") => 404,
        Some("request_too_large") => 413,
        Some("rate_limit_error") => 429,
        Some("overloaded_error") => 529,
        Some("timeout_error") => 504,
        _ => 500,
    };
    Error::from_upstream_status(provider, status, &describe(error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: Value) -> ChatRequest {
        serde_json::from_value(body).unwrap()
    }

    fn wire(body: Value) -> Value {
        serde_json::to_value(to_wire(&request(body), false).unwrap()).unwrap()
    }

    #[test]
    fn system_and_developer_messages_are_lifted_and_joined() {
        let out = wire(json!({
            "model": "claude-3-5-haiku-latest", "max_tokens": 100,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                {"role": "user", "content": "Hi"}
            ]
        }));
        assert_eq!(
            out,
            json!({
                "model": "claude-3-5-haiku-latest", "max_tokens": 100,
                "system": "Be brief.\n\nUse French.",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
            })
        );
    }

    #[test]
    fn consecutive_same_role_turns_are_merged() {
        let out = wire(json!({
            "model": "m", "max_tokens": 5,
            "messages": [
                {"role": "user", "content": "one"},
                {"role": "user", "content": "two"},
                {"role": "assistant", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": ""}
            ]
        }));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
            ])
        );
    }

    #[test]
    fn tool_calls_and_results_become_tool_use_and_one_user_turn_of_results() {
        let out = wire(json!({
            "model": "m", "max_tokens": 5,
            "messages": [
                {"role": "user", "content": "weather in Paris and Rome?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "toolu_2", "type": "function", "function": {"name": "weather", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "rain"}]},
                {"role": "user", "content": "thanks"}
            ]
        }));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "weather in Paris and Rome?"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "rain"},
                    {"type": "text", "text": "thanks"}
                ]}
            ])
        );
    }

    #[test]
    fn unparseable_tool_arguments_are_a_400_naming_the_field() {
        for arguments in ["{\"city\":", "[1,2]"] {
            let error = to_wire(
                &request(json!({
                    "model": "m",
                    "messages": [
                        {"role": "user", "content": "x"},
                        {"role": "assistant", "tool_calls": [
                            {"id": "t", "type": "function", "function": {"name": "f", "arguments": arguments}}
                        ]}
                    ]
                })),
                false,
            )
            .unwrap_err();
            assert_eq!(error.status(), 400);
            assert_eq!(
                error.param(),
                Some("messages[1].tool_calls[0].function.arguments")
            );
        }
    }

    #[test]
    fn images_become_base64_or_url_sources() {
        let out = wire(json!({
            "model": "m", "max_tokens": 5,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "compare"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}}
            ]}]
        }));
        assert_eq!(
            out["messages"][0]["content"],
            json!([
                {"type": "text", "text": "compare"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
            ])
        );
        let bad = to_wire(
            &request(
                json!({"model": "m", "messages": [{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "ftp://example.com/cat.jpg"}}
                ]}]}),
            ),
            false,
        )
        .unwrap_err();
        assert_eq!(bad.status(), 400);
    }

    #[test]
    fn cache_breakpoints_on_parts_messages_and_tools_reach_anthropic() {
        let ephemeral = json!({"type": "ephemeral"});
        let body = wire(json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": [
                    {"type": "text", "text": "long rules", "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": "today"}
                ]},
                {"role": "user", "content": "the document", "cache_control": {"type": "ephemeral"}},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": "q"}]}
            ],
            "tools": [{"type": "function", "function": {"name": "f"},
                       "cache_control": {"type": "ephemeral"}}]
        }));
        assert_eq!(
            body["system"],
            json!([
                {"type": "text", "text": "long rules", "cache_control": ephemeral},
                {"type": "text", "text": "today"}
            ])
        );
        assert_eq!(
            body["messages"][0]["content"],
            json!([{"type": "text", "text": "the document", "cache_control": ephemeral}])
        );
        assert_eq!(
            body["messages"][2]["content"],
            json!([{"type": "text", "text": "q"}])
        );
        assert_eq!(body["tools"][0]["cache_control"], ephemeral);
        // No breakpoint anywhere: the system prompt stays plain text.
        let plain = wire(json!({"model": "m", "messages": [
            {"role": "system", "content": [{"type": "text", "text": "a"}]},
            {"role": "user", "content": "q"}
        ]}));
        assert_eq!(plain["system"], "a");
        assert!(
            plain["messages"][0]["content"][0]
                .get("cache_control")
                .is_none()
        );
    }

    #[test]
    fn tools_choice_and_sampling_fields_map_to_anthropic_names() {
        let out = wire(json!({
            "model": "m", "max_completion_tokens": 64,
            "messages": [{"role": "user", "content": "x"}],
            "tools": [
                {"type": "function", "function": {"name": "weather", "description": "Get weather",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "now"}}
            ],
            "tool_choice": "required", "parallel_tool_calls": false,
            "stop": "END", "temperature": 0.5, "top_p": 0.9, "user": "user-42", "top_k": 5,
            "seed": 7
        }));
        assert_eq!(
            out,
            json!({
                "model": "m", "max_tokens": 64,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
                "tools": [
                    {"name": "weather", "description": "Get weather",
                     "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                    {"name": "now", "input_schema": {"type": "object", "properties": {}}}
                ],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
                "stop_sequences": ["END"], "temperature": 0.5, "top_p": 0.9, "top_k": 5,
                "metadata": {"user_id": "user-42"}
            })
        );
    }

    #[test]
    fn tool_choice_modes_map_one_to_one() {
        let choice = |tool_choice: Value| {
            wire(json!({
                "model": "m", "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": tool_choice
            }))["tool_choice"]
                .clone()
        };
        assert_eq!(choice(json!("auto")), json!({"type": "auto"}));
        assert_eq!(choice(json!("none")), json!({"type": "none"}));
        assert_eq!(
            choice(json!({"type": "function", "function": {"name": "f"}})),
            json!({"type": "tool", "name": "f"})
        );
        let no_tools = wire(json!({
            "model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"
        }));
        assert!(no_tools.get("tool_choice").is_none());
        assert_eq!(no_tools["max_tokens"], DEFAULT_MAX_TOKENS);
    }

    #[test]
    fn several_choices_and_json_modes_are_refused() {
        let n = to_wire(
            &request(json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]})),
            false,
        )
        .unwrap_err();
        assert_eq!(n.param(), Some("n"));
        let json_mode = to_wire(
            &request(
                json!({"model": "m", "response_format": {"type": "json_object"},
                            "messages": [{"role": "user", "content": "x"}]}),
            ),
            false,
        )
        .unwrap_err();
        assert_eq!(json_mode.param(), Some("response_format"));
    }

    #[test]
    fn response_joins_text_and_turns_tool_use_into_calls() {
        let response: MessagesResponse = serde_json::from_value(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Let me "},
                {"type": "text", "text": "check."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "server_tool_use", "id": "x", "name": "web_search", "input": {}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 20,
                      "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5}
        }))
        .unwrap();
        let out = serde_json::to_value(from_wire(response, 7)).unwrap();
        assert_eq!(
            out,
            json!({
                "id": "msg_1", "object": "chat.completion", "created": 7, "model": "claude-x",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": "Let me check.", "reasoning_content": "hmm",
                    "tool_calls": [{"id": "toolu_1", "type": "function",
                                    "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]
                }}],
                "usage": {"prompt_tokens": 115, "completion_tokens": 20, "total_tokens": 135,
                          "prompt_tokens_details": {"cached_tokens": 100, "cache_creation_tokens": 5}}
            })
        );
    }

    #[test]
    fn stop_reasons_map_to_finish_reasons() {
        assert_eq!(finish_reason("end_turn"), FinishReason::Stop);
        assert_eq!(finish_reason("stop_sequence"), FinishReason::Stop);
        assert_eq!(finish_reason("max_tokens"), FinishReason::Length);
        assert_eq!(finish_reason("tool_use"), FinishReason::ToolCalls);
        assert_eq!(finish_reason("refusal"), FinishReason::ContentFilter);
    }

    #[test]
    fn error_bodies_and_stream_errors_are_classified() {
        let body =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            error_detail(body).as_deref(),
            Some("Overloaded (overloaded_error)")
        );
        assert_eq!(error_detail(b"<html>"), None);
        let overloaded = stream_error(
            "anthropic",
            &ErrorObject {
                kind: Some("overloaded_error".into()),
                message: Some("Overloaded".into()),
            },
        );
        assert!(overloaded.is_retryable());
        assert_eq!(overloaded.upstream_status(), Some(529));
        let invalid = stream_error(
            "anthropic",
            &ErrorObject {
                kind: Some("invalid_request_error".into()),
                message: None,
            },
        );
        assert!(!invalid.is_retryable());
    }
}
