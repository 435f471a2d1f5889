//! Pure translation between core chat types and the Messages API.

use llmgate_core::chat::{
    ContentPart, FunctionCall, PromptTokensDetails, ResponseFormat, ToolCall, ToolChoiceMode,
};
use llmgate_core::{
    Error, Result,
    chat::{ChatRequest, ChatResponse, Choice, Content, FinishReason, Message, Role, Usage},
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
        wire: Default::default(),
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
mod tests;
