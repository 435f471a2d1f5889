//! OpenAI Responses API types, as its SDKs, the Agents SDK and Codex CLI send and read them.
//!
//! The request's top level is read leniently (fields this module does not know are ignored);
//! `input` items and `tools` are read one by one in `request.rs`, so that an unknown item type
//! is a 400 naming the item and an unknown tool type is dropped by name.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /v1/responses`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct ResponsesRequest {
    pub model: String,
    #[serde(default)]
    pub input: Option<Input>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub text: Option<TextConfig>,
    #[serde(default)]
    pub reasoning: Option<ReasoningConfig>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub prompt_cache_key: Option<String>,
}

/// `input`: one user message as a string, or a list of items.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum Input {
    Text(String),
    Items(Vec<Value>),
}

/// `text`: the output's format.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct TextConfig {
    #[serde(default)]
    pub format: Option<TextFormat>,
}

/// `text.format`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum TextFormat {
    Text,
    JsonObject,
    /// `name`, `schema`, `description` and `strict`, as chat completions' `json_schema` holds them.
    JsonSchema(Map<String, Value>),
}

/// `reasoning`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct ReasoningConfig {
    #[serde(default)]
    pub effort: Option<String>,
}

/// The input items the gateway translates.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum InputItem {
    Message {
        role: MessageRole,
        content: MessageContent,
    },
    FunctionCall {
        call_id: String,
        name: String,
        #[serde(default)]
        arguments: String,
        /// The `namespace` tool the function belongs to.
        #[serde(default)]
        namespace: Option<String>,
    },
    FunctionCallOutput {
        call_id: String,
        output: MessageContent,
    },
    /// The model's earlier reasoning; only an OpenAI upstream can read it (see `request.rs`).
    Reasoning {},
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum MessageRole {
    User,
    Assistant,
    System,
    Developer,
}

/// A message's content (or a function call's output): a string or parts.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum MessageContent {
    Text(String),
    Parts(Vec<Value>),
}

/// A content part of an input message.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum InputPart {
    InputText {
        text: String,
    },
    OutputText {
        text: String,
    },
    Refusal {
        refusal: String,
    },
    InputImage {
        #[serde(default)]
        image_url: Option<String>,
        #[serde(default)]
        detail: Option<String>,
    },
    InputFile {
        #[serde(default)]
        file_data: Option<String>,
        #[serde(default)]
        filename: Option<String>,
        #[serde(default)]
        file_id: Option<String>,
    },
}

/// A tool of type `function` (flat: no nested `function` object, unlike chat completions).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct FunctionTool {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub strict: Option<bool>,
}

/// A tool of type `namespace`: a named group of functions (Codex sends its sub-agent tools so).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct NamespaceTool {
    pub name: String,
    #[serde(default)]
    pub tools: Vec<Value>,
}

/// The `response` object, whole or inside stream events.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ResponseObject {
    pub id: String,
    pub object: &'static str,
    pub created_at: u64,
    pub status: Status,
    pub error: Option<ResponseError>,
    pub incomplete_details: Option<IncompleteDetails>,
    pub model: String,
    pub output: Vec<OutputItem>,
    /// The text of every `output_text` part, joined (the SDKs' convenience, sent as a field).
    pub output_text: String,
    pub usage: Option<ResponseUsage>,
    /// The gateway's charge, on a finished response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llmgate: Option<Value>,
    /// The request's settings echoed back: `instructions`, `tools`, `tool_choice`, ...
    #[serde(flatten)]
    pub settings: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Status {
    InProgress,
    Completed,
    Incomplete,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct ResponseError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct IncompleteDetails {
    pub reason: &'static str,
}

/// An output item.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum OutputItem {
    Reasoning {
        id: String,
        summary: Vec<SummaryText>,
    },
    Message {
        id: String,
        status: Status,
        role: &'static str,
        content: Vec<OutputContent>,
    },
    FunctionCall {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        status: Status,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
}

/// A part of an output message.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum OutputContent {
    OutputText {
        text: String,
        annotations: [Value; 0],
    },
    Refusal {
        refusal: String,
    },
}

/// A reasoning item's summary part.
#[derive(Debug, Clone, Serialize)]
pub(super) struct SummaryText {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: String,
}

/// `usage`: input tokens include the cached ones; reasoning tokens are output tokens.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct ResponseUsage {
    pub input_tokens: u64,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u64,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct InputTokensDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct OutputTokensDetails {
    pub reasoning_tokens: u64,
}

/// A stream event; each goes out with its `sequence_number` ([`Sequenced`]).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub(super) enum StreamEvent {
    #[serde(rename = "response.created")]
    Created { response: ResponseObject },
    #[serde(rename = "response.in_progress")]
    InProgress { response: ResponseObject },
    #[serde(rename = "response.output_item.added")]
    ItemAdded { output_index: u32, item: OutputItem },
    #[serde(rename = "response.output_item.done")]
    ItemDone { output_index: u32, item: OutputItem },
    #[serde(rename = "response.content_part.added")]
    PartAdded {
        item_id: String,
        output_index: u32,
        content_index: u32,
        part: OutputContent,
    },
    #[serde(rename = "response.content_part.done")]
    PartDone {
        item_id: String,
        output_index: u32,
        content_index: u32,
        part: OutputContent,
    },
    #[serde(rename = "response.output_text.delta")]
    TextDelta {
        item_id: String,
        output_index: u32,
        content_index: u32,
        delta: String,
        logprobs: [Value; 0],
    },
    #[serde(rename = "response.output_text.done")]
    TextDone {
        item_id: String,
        output_index: u32,
        content_index: u32,
        text: String,
        logprobs: [Value; 0],
    },
    #[serde(rename = "response.function_call_arguments.delta")]
    ArgumentsDelta {
        item_id: String,
        output_index: u32,
        delta: String,
    },
    #[serde(rename = "response.function_call_arguments.done")]
    ArgumentsDone {
        item_id: String,
        output_index: u32,
        arguments: String,
    },
    #[serde(rename = "response.reasoning_summary_part.added")]
    SummaryPartAdded {
        item_id: String,
        output_index: u32,
        summary_index: u32,
        part: SummaryText,
    },
    #[serde(rename = "response.reasoning_summary_text.delta")]
    SummaryDelta {
        item_id: String,
        output_index: u32,
        summary_index: u32,
        delta: String,
    },
    #[serde(rename = "response.reasoning_summary_text.done")]
    SummaryDone {
        item_id: String,
        output_index: u32,
        summary_index: u32,
        text: String,
    },
    #[serde(rename = "response.reasoning_summary_part.done")]
    SummaryPartDone {
        item_id: String,
        output_index: u32,
        summary_index: u32,
        part: SummaryText,
    },
    #[serde(rename = "response.completed")]
    Completed { response: ResponseObject },
    #[serde(rename = "response.incomplete")]
    Incomplete { response: ResponseObject },
    #[serde(rename = "response.failed")]
    Failed { response: ResponseObject },
}

impl StreamEvent {
    /// The event's `type`, also its SSE `event:` name.
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::Created { .. } => "response.created",
            StreamEvent::InProgress { .. } => "response.in_progress",
            StreamEvent::ItemAdded { .. } => "response.output_item.added",
            StreamEvent::ItemDone { .. } => "response.output_item.done",
            StreamEvent::PartAdded { .. } => "response.content_part.added",
            StreamEvent::PartDone { .. } => "response.content_part.done",
            StreamEvent::TextDelta { .. } => "response.output_text.delta",
            StreamEvent::TextDone { .. } => "response.output_text.done",
            StreamEvent::ArgumentsDelta { .. } => "response.function_call_arguments.delta",
            StreamEvent::ArgumentsDone { .. } => "response.function_call_arguments.done",
            StreamEvent::SummaryPartAdded { .. } => "response.reasoning_summary_part.added",
            StreamEvent::SummaryDelta { .. } => "response.reasoning_summary_text.delta",
            StreamEvent::SummaryDone { .. } => "response.reasoning_summary_text.done",
            StreamEvent::SummaryPartDone { .. } => "response.reasoning_summary_part.done",
            StreamEvent::Completed { .. } => "response.completed",
            StreamEvent::Incomplete { .. } => "response.incomplete",
            StreamEvent::Failed { .. } => "response.failed",
        }
    }
}

/// An event with its place in the stream, counted from 0.
#[derive(Debug, Serialize)]
pub(super) struct Sequenced<'a> {
    #[serde(flatten)]
    pub event: &'a StreamEvent,
    pub sequence_number: u64,
}
