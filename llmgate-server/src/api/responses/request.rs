//! A Responses request as a core chat request (OpenAI chat completions' shape), for any upstream.
//!
//! The rules where the two protocols differ:
//! - `input` as a string is one user message; `instructions` is a leading system message
//!   (earlier turns loaded for `previous_response_id` go after it, as OpenAI does: the
//!   earlier request's instructions are not carried over).
//! - `message` items keep their role (`developer` stays `developer`); `input_text`,
//!   `output_text` and `refusal` parts become text, `input_image` an image part, `input_file`
//!   with inline data a file part.
//! - `function_call` items become `tool_calls` on an assistant message (consecutive calls, and
//!   a call right after an assistant message, share one message); `function_call_output` a
//!   `tool` message with the same call id.
//! - `reasoning` items are dropped: their encrypted content only means something to OpenAI
//!   itself, and chat completions has no field for them (a Responses upstream gets them in the
//!   body passed through).
//! - Any other item type is a 400 naming the item (`input[3]`): the gateway does not guess.
//! - Tools of type `function` become chat functions (with `strict`); a `namespace` tool's
//!   functions become functions named `{namespace}__{name}` and their calls are mapped back.
//!   Every other tool type is hosted (run by OpenAI: `web_search`, `file_search`, ...) and is
//!   dropped and named, unless `tool_choice` forces it (400).
//! - `text.format` becomes `response_format`, `max_output_tokens` `max_tokens`,
//!   `reasoning.effort` `reasoning_effort`; `prompt_cache_key` is passed on.

use llmgate_core::Error;
use llmgate_core::chat::{
    ChatRequest, Content, ContentPart, FunctionCall, FunctionDefinition, ImageUrl, Message,
    NamedFunction, NamedToolChoice, ResponseFormat, Role, Tool, ToolCall, ToolChoice,
    ToolChoiceMode,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::exchange::{Exchange, Namespaced};
use super::wire::{
    FunctionTool, Input, InputItem, InputPart, MessageContent, MessageRole, NamespaceTool,
    ResponsesRequest, TextFormat,
};

/// The settings a response echoes back, as the client sent them.
const ECHOED: [&str; 11] = [
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "temperature",
    "top_p",
    "text",
    "reasoning",
    "metadata",
    "user",
];

/// The request as a chat request, and what its answer needs.
/// `body` is the same request as JSON, for the settings echoed back as sent.
pub(super) fn to_chat(
    request: ResponsesRequest,
    body: &Value,
    exchange: &mut Exchange,
) -> Result<ChatRequest, Error> {
    exchange.model.clone_from(&request.model);
    for name in ECHOED {
        exchange.settings.insert(
            name.to_owned(),
            body.get(name).cloned().unwrap_or(Value::Null),
        );
    }
    exchange.store = request.store.unwrap_or(true);
    exchange.previous_response_id = request.previous_response_id.clone();
    exchange.input_items = input_items(request.input);

    let mut chat = ChatRequest::new(request.model, Vec::new());
    if let Some(instructions) = request.instructions.filter(|i| !i.is_empty()) {
        chat.messages.push(Message::system(instructions));
    }
    exchange.leading_messages = chat.messages.len();
    let tools = tools(
        request.tools.unwrap_or_default(),
        &mut exchange.namespaced,
        &mut exchange.dropped,
    )?;
    chat.messages
        .extend(messages(&exchange.input_items, "input")?);
    chat.tool_choice = match request.tool_choice {
        Some(choice) => tool_choice(choice, &exchange.dropped)?,
        None => None,
    };
    if tools.is_empty() {
        chat.tool_choice = None;
    } else {
        chat.tools = Some(tools);
        chat.parallel_tool_calls = request.parallel_tool_calls;
    }
    chat.max_tokens = request.max_output_tokens;
    chat.temperature = request.temperature;
    chat.top_p = request.top_p;
    chat.stream = request.stream;
    chat.user = request.user;
    chat.response_format = match request.text.and_then(|t| t.format) {
        None | Some(TextFormat::Text) => None,
        Some(TextFormat::JsonObject) => Some(ResponseFormat::JsonObject),
        Some(TextFormat::JsonSchema(mut schema)) => {
            schema.remove("type");
            Some(ResponseFormat::JsonSchema {
                json_schema: Value::Object(schema),
            })
        }
    };
    if let Some(effort) = request.reasoning.and_then(|r| r.effort) {
        chat.extra
            .insert("reasoning_effort".to_owned(), Value::from(effort));
    }
    if let Some(key) = request.prompt_cache_key {
        chat.extra
            .insert("prompt_cache_key".to_owned(), Value::from(key));
    }
    Ok(chat)
}

/// Earlier turns (for `previous_response_id`) put before this request's own items.
pub(super) fn prepend_history(
    chat: &mut ChatRequest,
    exchange: &Exchange,
    history: &[Value],
) -> Result<(), Error> {
    let earlier = messages(history, "previous_response_id")?;
    let at = exchange.leading_messages.min(chat.messages.len());
    chat.messages.splice(at..at, earlier);
    Ok(())
}

/// `input` as items: a string is one user message.
fn input_items(input: Option<Input>) -> Vec<Value> {
    match input {
        None => Vec::new(),
        Some(Input::Text(text)) => vec![json!({
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": text}]
        })],
        Some(Input::Items(items)) => items,
    }
}

/// A JSON value as `T`, a failure being a 400 naming where (`input[2]`).
fn typed<T: DeserializeOwned>(value: Value, at: &str) -> Result<T, Error> {
    serde_json::from_value(value)
        .map_err(|error| Error::invalid_request(format!("{at}: {error}")).with_param(at))
}

/// Input items as chat messages; `at` names the list in errors.
fn messages(items: &[Value], at: &str) -> Result<Vec<Message>, Error> {
    let mut out: Vec<Message> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let at = format!("{at}[{index}]");
        let mut item = item.clone();
        // An item with a role and no type is a message (the SDKs' "easy" input message).
        if let Some(object) = item.as_object_mut()
            && !object.contains_key("type")
            && object.contains_key("role")
        {
            object.insert("type".to_owned(), Value::from("message"));
        }
        let kind = item.get("type").and_then(Value::as_str).unwrap_or_default();
        if !matches!(
            kind,
            "message" | "function_call" | "function_call_output" | "reasoning"
        ) {
            return Err(Error::invalid_request(format!(
                "{at}: input items of type `{kind}` are not supported by this gateway \
                 (supported: message, function_call, function_call_output, reasoning)."
            ))
            .with_param(at)
            .with_code("unsupported_item_type"));
        }
        match typed::<InputItem>(item, &at)? {
            InputItem::Message { role, content } => {
                out.push(Message {
                    content: Some(content_of(content, &at)?),
                    ..Message::text(chat_role(role), "")
                });
            }
            InputItem::FunctionCall {
                call_id,
                name,
                arguments,
                namespace,
            } => {
                let name = match namespace {
                    Some(namespace) => flat_name(&namespace, &name),
                    None => name,
                };
                push_call(&mut out, call_id, name, arguments);
            }
            InputItem::FunctionCallOutput { call_id, output } => out.push(Message {
                tool_call_id: Some(call_id),
                ..Message::text(Role::Tool, text_of(content_of(output, &at)?))
            }),
            InputItem::Reasoning {} => {}
        }
    }
    Ok(out)
}

/// A function call on the assistant message just before, or on a new one.
fn push_call(out: &mut Vec<Message>, id: String, name: String, arguments: String) {
    let call = ToolCall {
        id,
        kind: "function".to_owned(),
        function: FunctionCall {
            name,
            arguments: if arguments.is_empty() {
                "{}".to_owned()
            } else {
                arguments
            },
        },
    };
    match out.last_mut() {
        Some(last) if last.role == Role::Assistant => {
            last.tool_calls.get_or_insert_with(Vec::new).push(call);
        }
        _ => out.push(Message {
            content: None,
            tool_calls: Some(vec![call]),
            ..Message::assistant("")
        }),
    }
}

fn chat_role(role: MessageRole) -> Role {
    match role {
        MessageRole::User => Role::User,
        MessageRole::Assistant => Role::Assistant,
        MessageRole::System => Role::System,
        MessageRole::Developer => Role::Developer,
    }
}

/// A string stays a string; parts become chat parts.
fn content_of(content: MessageContent, at: &str) -> Result<Content, Error> {
    let parts = match content {
        MessageContent::Text(text) => return Ok(Content::Text(text)),
        MessageContent::Parts(parts) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (index, part) in parts.into_iter().enumerate() {
        let at = format!("{at}.content[{index}]");
        let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
        if !matches!(
            kind,
            "input_text" | "output_text" | "refusal" | "input_image" | "input_file"
        ) {
            return Err(Error::invalid_request(format!(
                "{at}: content parts of type `{kind}` are not supported by this gateway."
            ))
            .with_param(at)
            .with_code("unsupported_content_type"));
        }
        out.extend(chat_part(typed(part, &at)?));
    }
    Ok(Content::Parts(out))
}

fn chat_part(part: InputPart) -> Option<ContentPart> {
    match part {
        InputPart::InputText { text } | InputPart::OutputText { text } => Some(ContentPart::Text {
            text,
            cache_control: None,
        }),
        InputPart::Refusal { refusal } => Some(ContentPart::Text {
            text: refusal,
            cache_control: None,
        }),
        InputPart::InputImage { image_url, detail } => Some(ContentPart::ImageUrl {
            image_url: ImageUrl {
                url: image_url?,
                detail,
            },
            cache_control: None,
        }),
        InputPart::InputFile {
            file_data,
            filename,
            file_id,
        } => {
            let mut file = Map::new();
            if let Some(data) = file_data {
                file.insert("file_data".to_owned(), Value::from(data));
            }
            if let Some(name) = filename {
                file.insert("filename".to_owned(), Value::from(name));
            }
            if let Some(id) = file_id {
                file.insert("file_id".to_owned(), Value::from(id));
            }
            Some(ContentPart::File {
                file: Value::Object(file),
            })
        }
    }
}

/// A tool message's text: the text parts joined.
fn text_of(content: Content) -> String {
    content.joined_text()
}

/// The flat name a namespace's function gets upstream.
pub(super) fn flat_name(namespace: &str, name: &str) -> String {
    format!("{namespace}__{name}")
}

/// The client's tools as chat functions; namespaces flattened, hosted tools dropped by name.
fn tools(
    tools: Vec<Value>,
    namespaced: &mut Namespaced,
    dropped: &mut Vec<String>,
) -> Result<Vec<Tool>, Error> {
    let mut out = Vec::new();
    for (index, tool) in tools.into_iter().enumerate() {
        let at = format!("tools[{index}]");
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => out.push(function(typed(tool, &at)?, None)),
            Some("namespace") => {
                let group: NamespaceTool = typed(tool, &at)?;
                for (inner, tool) in group.tools.into_iter().enumerate() {
                    if tool.get("type").and_then(Value::as_str) != Some("function") {
                        dropped.push(format!("{}.{}", group.name, tool_name(&tool)));
                        continue;
                    }
                    let function_tool: FunctionTool = typed(tool, &format!("{at}.tools[{inner}]"))?;
                    let flat = flat_name(&group.name, &function_tool.name);
                    namespaced.insert(
                        flat.clone(),
                        (group.name.clone(), function_tool.name.clone()),
                    );
                    out.push(function(function_tool, Some(flat)));
                }
            }
            _ => dropped.push(tool_name(&tool)),
        }
    }
    Ok(out)
}

/// A tool's name for `x-llmgate-dropped-tools`: its `name`, else its `type`.
fn tool_name(tool: &Value) -> String {
    tool.get("name")
        .or_else(|| tool.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned()
}

fn function(tool: FunctionTool, flat: Option<String>) -> Tool {
    Tool {
        kind: "function".to_owned(),
        function: FunctionDefinition {
            name: flat.unwrap_or(tool.name),
            description: tool.description,
            parameters: tool.parameters,
            strict: tool.strict,
        },
        cache_control: None,
    }
}

/// `tool_choice` in chat's terms; forcing a dropped (hosted) tool is a 400.
fn tool_choice(choice: Value, dropped: &[String]) -> Result<Option<ToolChoice>, Error> {
    let mode = |text: &str| match text {
        "none" => Some(ToolChoiceMode::None),
        "required" => Some(ToolChoiceMode::Required),
        "auto" => Some(ToolChoiceMode::Auto),
        _ => None,
    };
    let bad = |message: String| {
        Error::invalid_request(message)
            .with_param("tool_choice")
            .with_code("unsupported_tool_choice")
    };
    if let Some(text) = choice.as_str() {
        return mode(text)
            .map(|m| Some(ToolChoice::Mode(m)))
            .ok_or_else(|| {
                bad(format!(
                    "tool_choice `{text}` is not auto, none or required."
                ))
            });
    }
    let kind = choice
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match kind {
        "function" => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let name = match choice.get("namespace").and_then(Value::as_str) {
                Some(namespace) => flat_name(namespace, name),
                None => name.to_owned(),
            };
            Ok(Some(ToolChoice::Named(NamedToolChoice {
                kind: "function".to_owned(),
                function: NamedFunction { name },
            })))
        }
        "allowed_tools" => Ok(choice
            .get("mode")
            .and_then(Value::as_str)
            .and_then(mode)
            .map(ToolChoice::Mode)),
        _ => {
            let name = choice.get("name").and_then(Value::as_str).unwrap_or(kind);
            let why = if dropped.iter().any(|d| d == name || d == kind) {
                "a hosted tool the upstream cannot run"
            } else {
                "not a tool of this request"
            };
            Err(bad(format!("tool_choice forces `{name}`, {why}.")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &Value, exchange: &mut Exchange) -> Result<ChatRequest, Error> {
        let request = serde_json::from_value(body.clone()).unwrap();
        to_chat(request, body, exchange)
    }

    fn chat(body: Value) -> (Value, Exchange) {
        let mut exchange = Exchange::new("m");
        let chat = decode(&body, &mut exchange).unwrap();
        (serde_json::to_value(chat).unwrap(), exchange)
    }

    fn refused(body: Value) -> Error {
        decode(&body, &mut Exchange::new("m")).unwrap_err()
    }

    #[test]
    fn string_input_and_instructions_become_system_and_user_messages() {
        let (out, exchange) = chat(json!({
            "model": "m", "input": "hi", "instructions": "be brief", "max_output_tokens": 50,
            "temperature": 0.2, "store": false, "reasoning": {"effort": "low", "summary": "auto"},
            "prompt_cache_key": "k1", "client_metadata": {"x": 1}
        }));
        assert_eq!(
            out,
            json!({
                "model": "m", "max_tokens": 50, "temperature": 0.2,
                "reasoning_effort": "low", "prompt_cache_key": "k1",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": [{"type": "text", "text": "hi"}]}
                ]
            })
        );
        assert!(!exchange.store);
        assert_eq!(exchange.leading_messages, 1);
        assert_eq!(exchange.input_items[0]["content"][0]["text"], "hi");
    }

    #[test]
    fn function_calls_and_outputs_keep_their_ids() {
        let (out, _) = chat(json!({
            "model": "m",
            "input": [
                {"role": "developer", "content": "rules"},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather?"},
                    {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
                {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Oslo\"}"},
                {"type": "function_call", "call_id": "call_2", "name": "close_agent", "namespace": "multi_agent_v1", "arguments": ""},
                {"type": "function_call_output", "call_id": "call_1", "output": "rain"},
                {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "closed"}]}
            ]
        }));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "developer", "content": "rules"},
                {"role": "user", "content": [
                    {"type": "text", "text": "weather?"},
                    {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}}
                ]},
                {"role": "assistant", "content": [{"type": "text", "text": "Checking."}],
                 "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}},
                    {"id": "call_2", "type": "function",
                     "function": {"name": "multi_agent_v1__close_agent", "arguments": "{}"}}
                 ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
                {"role": "tool", "tool_call_id": "call_2", "content": "closed"}
            ])
        );
    }

    #[test]
    fn hosted_tools_are_dropped_and_namespaces_flattened() {
        let (out, exchange) = chat(json!({
            "model": "m", "input": "hi", "tool_choice": "auto", "parallel_tool_calls": true,
            "tools": [
                {"type": "function", "name": "exec_command", "description": "Run",
                 "parameters": {"type": "object"}, "strict": false},
                {"type": "namespace", "name": "multi_agent_v1", "description": "Agents",
                 "tools": [{"type": "function", "name": "close_agent", "parameters": {"type": "object"}}]},
                {"type": "web_search", "external_web_access": false}
            ]
        }));
        assert_eq!(
            out["tools"],
            json!([
                {"type": "function", "function": {"name": "exec_command", "description": "Run",
                                                  "parameters": {"type": "object"}, "strict": false}},
                {"type": "function", "function": {"name": "multi_agent_v1__close_agent",
                                                  "parameters": {"type": "object"}}}
            ])
        );
        assert_eq!(out["tool_choice"], "auto");
        assert_eq!(out["parallel_tool_calls"], true);
        assert_eq!(exchange.dropped, ["web_search"]);
        assert_eq!(
            exchange.namespaced["multi_agent_v1__close_agent"],
            ("multi_agent_v1".to_owned(), "close_agent".to_owned())
        );
    }

    #[test]
    fn only_hosted_tools_leave_no_tools_and_no_tool_choice() {
        let (out, exchange) = chat(json!({
            "model": "m", "input": "hi", "tool_choice": "auto",
            "tools": [{"type": "web_search_preview"}, {"type": "custom", "name": "apply_patch"}]
        }));
        assert!(out.get("tools").is_none() && out.get("tool_choice").is_none());
        assert_eq!(exchange.dropped, ["web_search_preview", "apply_patch"]);
    }

    #[test]
    fn forcing_a_hosted_tool_is_a_400() {
        let error = refused(json!({
            "model": "m", "input": "hi", "tools": [{"type": "web_search"}],
            "tool_choice": {"type": "web_search"}
        }));
        assert_eq!((error.status(), error.param()), (400, Some("tool_choice")));
        assert!(error.message().contains("hosted"), "{}", error.message());
    }

    #[test]
    fn text_formats_map_to_response_format() {
        let (out, _) = chat(json!({
            "model": "m", "input": "hi",
            "text": {"format": {"type": "json_schema", "name": "w", "strict": true,
                                "schema": {"type": "object"}}}
        }));
        assert_eq!(
            out["response_format"],
            json!({"type": "json_schema",
                   "json_schema": {"name": "w", "strict": true, "schema": {"type": "object"}}})
        );
        let (out, _) =
            chat(json!({"model": "m", "input": "hi", "text": {"format": {"type": "json_object"}}}));
        assert_eq!(out["response_format"], json!({"type": "json_object"}));
        let (out, _) =
            chat(json!({"model": "m", "input": "hi", "text": {"format": {"type": "text"}}}));
        assert!(out.get("response_format").is_none());
    }

    #[test]
    fn unknown_items_and_parts_are_400s_naming_them() {
        let error = refused(json!({
            "model": "m", "input": [{"role": "user", "content": "hi"},
                                    {"type": "computer_call", "call_id": "c"}]
        }));
        assert_eq!(error.status(), 400);
        assert_eq!(error.param(), Some("input[1]"));
        assert!(
            error.message().contains("computer_call"),
            "{}",
            error.message()
        );

        let error = refused(json!({
            "model": "m", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]
        }));
        assert_eq!(error.param(), Some("input[0].content[0]"));

        let error = refused(json!({
            "model": "m", "input": [{"type": "function_call", "name": "f"}]
        }));
        assert_eq!(error.param(), Some("input[0]"));
        assert!(error.message().contains("call_id"), "{}", error.message());
    }

    #[test]
    fn history_goes_after_the_instructions() {
        let mut exchange = Exchange::new("m");
        let body = json!({"model": "m", "input": "and now?", "instructions": "sys"});
        let mut chat = decode(&body, &mut exchange).unwrap();
        let history = vec![
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}),
            json!({"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                   "content": [{"type": "output_text", "text": "hello", "annotations": []}]}),
        ];
        prepend_history(&mut chat, &exchange, &history).unwrap();
        let texts: Vec<String> = chat.messages.iter().map(Message::text_content).collect();
        assert_eq!(texts, ["sys", "hi", "hello", "and now?"]);
    }
}
