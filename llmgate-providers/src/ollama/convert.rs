//! Pure translation between core chat types and Ollama's `/api/chat`.

use std::collections::HashMap;

use llmgate_core::chat::{FunctionCall, ResponseFormat, ToolCall, ToolChoice, ToolChoiceMode};
use llmgate_core::{
    Error, Result,
    chat::{
        ChatRequest, ChatResponse, Choice, Content, ContentPart, FinishReason, Message, Role, Usage,
    },
};
use serde_json::{Map, Value};

use super::wire::{
    ChatBody, ChatLine, ErrorBody, Options, WireFunction, WireMessage, WireTool, WireToolCall,
    WireToolFunction,
};

/// The request body for `POST /api/chat`.
pub(crate) fn to_wire(request: &ChatRequest, stream: bool) -> Result<ChatBody> {
    if request.n.is_some_and(|n| n > 1) {
        return Err(
            Error::invalid_request("Ollama returns one choice; `n` must be 1.").with_param("n"),
        );
    }
    // Tool messages name their call by id; Ollama wants the function's name instead.
    let call_names: HashMap<&str, &str> = request
        .messages
        .iter()
        .flat_map(|m| m.tool_calls.iter().flatten())
        .map(|call| (call.id.as_str(), call.function.name.as_str()))
        .collect();
    let messages = request
        .messages
        .iter()
        .enumerate()
        .map(|(i, message)| message_to_wire(message, i, &call_names))
        .collect::<Result<Vec<_>>>()?;
    let options = Options {
        temperature: request.temperature,
        top_p: request.top_p,
        num_predict: request.requested_max_tokens(),
        stop: request.stop.as_ref().map(|s| s.to_vec()),
        seed: request.seed,
    };
    Ok(ChatBody {
        model: request.model.clone(),
        messages,
        stream,
        options: (!options.is_empty()).then_some(options),
        format: format(request)?,
        tools: tools(request),
        keep_alive: request.extra.get("keep_alive").cloned(),
    })
}

fn message_to_wire(
    message: &Message,
    i: usize,
    call_names: &HashMap<&str, &str>,
) -> Result<WireMessage> {
    let role = match message.role {
        Role::System | Role::Developer => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let param = format!("messages[{i}].content");
    let mut texts = Vec::new();
    let mut images = Vec::new();
    match &message.content {
        None => {}
        Some(Content::Text(text)) => texts.push(text.as_str()),
        Some(Content::Parts(parts)) => {
            for part in parts {
                match part {
                    ContentPart::Text { text, .. } => texts.push(text.as_str()),
                    ContentPart::ImageUrl { image_url, .. } => {
                        images.push(inline_image(&image_url.url, &param)?);
                    }
                    ContentPart::InputAudio { .. } | ContentPart::File { .. } => {
                        return Err(Error::invalid_request(
                            "Ollama accepts text and image parts only.",
                        )
                        .with_param(param));
                    }
                }
            }
        }
    }
    let tool_calls = message
        .tool_calls
        .iter()
        .flatten()
        .enumerate()
        .map(|(j, call)| {
            Ok(WireToolCall {
                function: WireFunction {
                    name: call.function.name.clone(),
                    arguments: arguments_object(
                        &call.function.arguments,
                        &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                    )?,
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let tool_name = match message.role {
        Role::Tool => message
            .tool_call_id
            .as_deref()
            .and_then(|id| call_names.get(id))
            .map(|name| (*name).to_owned()),
        _ => None,
    };
    Ok(WireMessage {
        role,
        content: texts.join("\n"),
        images,
        tool_calls,
        tool_name,
    })
}

/// Ollama takes images as bare base64; it cannot fetch a URL itself.
fn inline_image(url: &str, param: &str) -> Result<String> {
    let data = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
        .map(|(_, data)| data)
        .filter(|data| !data.is_empty());
    match data {
        Some(data) => Ok(data.to_owned()),
        None => Err(Error::invalid_request(
            "Ollama needs images inline as base64 data URLs (`data:image/png;base64,...`); \
             it cannot fetch image URLs.",
        )
        .with_param(param)),
    }
}

fn arguments_object(arguments: &str, param: &str) -> Result<Value> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(object @ Value::Object(_)) => Ok(object),
        _ => Err(Error::invalid_request(
            "Tool call arguments must be a JSON object to be sent to Ollama.",
        )
        .with_param(param)),
    }
}

/// `json_object` is Ollama's `"json"`; a JSON schema is passed as the format itself.
fn format(request: &ChatRequest) -> Result<Option<Value>> {
    match &request.response_format {
        None | Some(ResponseFormat::Text) => Ok(None),
        Some(ResponseFormat::JsonObject) => Ok(Some(Value::String("json".to_owned()))),
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            json_schema.get("schema").cloned().map(Some).ok_or_else(|| {
                Error::invalid_request("`response_format.json_schema.schema` is required.")
                    .with_param("response_format")
            })
        }
    }
}

/// Ollama has no `tool_choice`: `none` sends no tools and a named choice sends only that
/// tool; `auto` and `required` send them all.
fn tools(request: &ChatRequest) -> Option<Vec<WireTool>> {
    let only = match &request.tool_choice {
        Some(ToolChoice::Mode(ToolChoiceMode::None)) => return None,
        Some(ToolChoice::Named(named)) => Some(named.function.name.as_str()),
        _ => None,
    };
    let tools: Vec<WireTool> = request
        .tools
        .iter()
        .flatten()
        .filter(|tool| only.is_none_or(|name| tool.function.name == name))
        .map(|tool| WireTool {
            kind: "function",
            function: WireToolFunction {
                name: tool.function.name.clone(),
                description: tool.function.description.clone(),
                parameters: tool
                    .function
                    .parameters
                    .clone()
                    .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            },
        })
        .collect();
    (!tools.is_empty()).then_some(tools)
}

/// Core tool calls from Ollama's whole calls, with ids made up (Ollama sends none). The ids
/// are derived from the answer's timestamp so that replaying the same bytes gives the same ids.
pub(crate) fn tool_calls(line: &ChatLine, calls: &[WireToolCall], first: usize) -> Vec<ToolCall> {
    calls
        .iter()
        .enumerate()
        .map(|(k, call)| ToolCall {
            id: call_id(&line.created_at, &line.model, first + k),
            kind: "function".to_owned(),
            function: FunctionCall {
                name: call.function.name.clone(),
                arguments: match &call.function.arguments {
                    Value::Null => "{}".to_owned(),
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                },
            },
        })
        .collect()
}

fn call_id(created_at: &str, model: &str, index: usize) -> String {
    // FNV-1a: short, stable, and unlikely to repeat across answers with distinct timestamps.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in created_at
        .bytes()
        .chain([0])
        .chain(model.bytes())
        .chain(index.to_le_bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("call_{hash:016x}")
}

/// The finish reason of the `done` line.
pub(crate) fn finish_reason(line: &ChatLine, made_tool_calls: bool) -> FinishReason {
    if made_tool_calls {
        return FinishReason::ToolCalls;
    }
    match line.done_reason.as_deref() {
        Some("length") => FinishReason::Length,
        _ => FinishReason::Stop,
    }
}

/// Token counts of the `done` line. Ollama leaves `prompt_eval_count` out when the whole prompt
/// came from its cache; then both counts are left to the gateway's estimate rather than
/// billing a zero-token prompt.
pub(crate) fn usage(line: &ChatLine) -> Option<Usage> {
    Some(Usage::new(line.prompt_eval_count?, line.eval_count?))
}

/// A whole (non-streamed) answer.
pub(crate) fn from_wire(line: ChatLine, created: u64) -> ChatResponse {
    let message = line.message.clone().unwrap_or_default();
    let calls = tool_calls(&line, message.tool_calls.as_deref().unwrap_or(&[]), 0);
    let mut out = Message::assistant(message.content.clone());
    if message.content.is_empty() && !calls.is_empty() {
        out.content = None;
    }
    if let Some(thinking) = message.thinking.filter(|t| !t.is_empty()) {
        out.extra
            .insert("reasoning_content".to_owned(), Value::String(thinking));
    }
    let finish = finish_reason(&line, !calls.is_empty());
    if !calls.is_empty() {
        out.tool_calls = Some(calls);
    }
    ChatResponse {
        id: format!("chatcmpl-ollama-{created}"),
        object: "chat.completion".to_owned(),
        created,
        model: line.model.clone(),
        choices: vec![Choice {
            index: 0,
            message: out,
            finish_reason: Some(finish),
            logprobs: None,
        }],
        usage: usage(&line),
        system_fingerprint: None,
        extra: Map::new(),
        wire: Default::default(),
    }
}

/// The message of an error body.
pub(crate) fn error_detail(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wire(body: Value, stream: bool) -> Result<Value> {
        let request: ChatRequest = serde_json::from_value(body).unwrap();
        to_wire(&request, stream).map(|b| serde_json::to_value(b).unwrap())
    }

    #[test]
    fn stream_flag_is_always_sent_and_options_collect_sampling_fields() {
        let out = wire(
            json!({
                "model": "llama3.2", "messages": [{"role": "developer", "content": "be brief"},
                                                  {"role": "user", "content": "hi"}],
                "temperature": 0.1, "top_p": 0.5, "max_tokens": 20, "stop": ["\n\n"], "seed": 3,
                "keep_alive": "5m"
            }),
            false,
        )
        .unwrap();
        assert_eq!(
            out,
            json!({
                "model": "llama3.2", "stream": false, "keep_alive": "5m",
                "messages": [{"role": "system", "content": "be brief"},
                             {"role": "user", "content": "hi"}],
                "options": {"temperature": 0.1, "top_p": 0.5, "num_predict": 20,
                            "stop": ["\n\n"], "seed": 3}
            })
        );
        let minimal = wire(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
            true,
        )
        .unwrap();
        assert_eq!(minimal["stream"], true);
        assert!(minimal.get("options").is_none());
    }

    #[test]
    fn images_must_be_inline_base64() {
        let out = wire(
            json!({"model": "llava", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is it?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}
            ]}]}),
            false,
        )
        .unwrap();
        assert_eq!(
            out["messages"][0],
            json!({"role": "user", "content": "what is it?", "images": ["/9j/4AAQ"]})
        );
        let remote = wire(
            json!({"model": "llava", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
            ]}]}),
            false,
        )
        .unwrap_err();
        assert_eq!(remote.status(), 400);
        assert_eq!(remote.param(), Some("messages[0].content"));
        assert!(remote.message().contains("base64"));
    }

    #[test]
    fn formats_tools_and_tool_turns_translate() {
        let out = wire(
            json!({
                "model": "m",
                "messages": [
                    {"role": "user", "content": "weather?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_9", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_9", "content": "-3C"}
                ],
                "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}},
                          {"type": "function", "function": {"name": "other"}}],
                "tool_choice": {"type": "function", "function": {"name": "weather"}},
                "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}}
            }),
            false,
        )
        .unwrap();
        assert_eq!(
            out["messages"][1],
            json!({"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "weather", "arguments": {"city": "Oslo"}}}
            ]})
        );
        assert_eq!(
            out["messages"][2],
            json!({"role": "tool", "content": "-3C", "tool_name": "weather"})
        );
        assert_eq!(
            out["tools"],
            json!([{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}])
        );
        assert_eq!(out["format"], json!({"type": "object"}));

        let json_mode = wire(
            json!({"model": "m", "messages": [], "response_format": {"type": "json_object"},
                   "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none"}),
            false,
        )
        .unwrap();
        assert_eq!(json_mode["format"], "json");
        assert!(json_mode.get("tools").is_none());
    }

    #[test]
    fn whole_answer_with_tool_calls_gets_ids_and_tool_calls_finish() {
        let line: ChatLine = serde_json::from_value(json!({
            "model": "llama3.2", "created_at": "2024-07-22T20:33:28.123648Z",
            "message": {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "weather", "arguments": {"city": "Oslo"}}}
            ]},
            "done": true, "done_reason": "stop", "prompt_eval_count": 26, "eval_count": 12
        }))
        .unwrap();
        let response = from_wire(line.clone(), 5);
        let message = &response.choices[0].message;
        assert_eq!(message.content, None);
        let calls = message.tool_calls.as_ref().unwrap();
        assert!(calls[0].id.starts_with("call_"));
        assert_eq!(calls[0].function.arguments, "{\"city\":\"Oslo\"}");
        assert_eq!(
            response.choices[0].finish_reason,
            Some(FinishReason::ToolCalls)
        );
        assert_eq!(response.usage, Some(Usage::new(26, 12)));
        // The same bytes give the same ids; another position gives another id.
        assert_eq!(
            from_wire(line.clone(), 5).choices[0].message.tool_calls,
            Some(calls.clone())
        );
        assert_ne!(call_id(&line.created_at, "llama3.2", 1), calls[0].id);
    }

    #[test]
    fn missing_prompt_count_leaves_usage_to_the_estimate() {
        let line: ChatLine = serde_json::from_value(json!({
            "model": "m", "message": {"role": "assistant", "content": "hi"},
            "done": true, "done_reason": "length", "eval_count": 3
        }))
        .unwrap();
        let response = from_wire(line, 1);
        assert_eq!(response.usage, None);
        assert_eq!(
            response.choices[0].finish_reason,
            Some(FinishReason::Length)
        );
    }
}
