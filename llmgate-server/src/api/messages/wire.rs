//! Anthropic Messages API types, as its SDKs and Claude Code send and read them. Requests are
//! read leniently: fields and block types this module does not know are ignored, never refused.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/messages`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct MessagesRequest {
    pub model: String,
    pub max_tokens: u32,
    #[serde(default)]
    pub system: Option<Text>,
    pub messages: Vec<InputMessage>,
    #[serde(default)]
    pub tools: Option<Vec<ToolDefinition>>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub stream: Option<bool>,
}

/// `POST /v1/messages/count_tokens`: the prompt of a Messages request, without `max_tokens`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct CountTokensRequest {
    pub model: String,
    #[serde(default)]
    pub system: Option<Text>,
    pub messages: Vec<InputMessage>,
    #[serde(default)]
    pub tools: Option<Vec<ToolDefinition>>,
}

/// A string, or a list of blocks (`system`, a message's `content`, a tool result's `content`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum Text {
    Plain(String),
    Blocks(Vec<InputBlock>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Role {
    User,
    Assistant,
    /// Not in Anthropic's documentation, but Claude Code sends system turns among the messages.
    System,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct InputMessage {
    pub role: Role,
    pub content: Text,
}

/// A content block of a request.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum InputBlock {
    Text {
        text: String,
        #[serde(default)]
        cache_control: Option<Value>,
    },
    Image {
        source: Source,
        #[serde(default)]
        cache_control: Option<Value>,
    },
    Document {
        source: Source,
        #[serde(default)]
        cache_control: Option<Value>,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<Text>,
        #[serde(default)]
        is_error: Option<bool>,
    },
    Thinking {},
    RedactedThinking {},
    /// Block types this gateway does not know (server tool results, search results...).
    #[serde(other)]
    Other,
}

/// Where an image's or a document's bytes are.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Source {
    Base64 {
        media_type: String,
        data: String,
    },
    Url {
        url: String,
    },
    /// A plain-text document.
    Text {
        data: String,
    },
    /// File ids and other sources an OpenAI-compatible upstream cannot read.
    #[serde(other)]
    Other,
}

/// A tool: a custom one (`name`, `description`, `input_schema`), or one of Anthropic's own
/// (`type: web_search_...`, `bash_...`) that only Anthropic can run.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct ToolDefinition {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub input_schema: Option<Value>,
    #[serde(default)]
    pub cache_control: Option<Value>,
}

impl ToolDefinition {
    /// Whether the client runs the tool itself (no type, or `custom`).
    pub fn is_custom(&self) -> bool {
        matches!(self.kind.as_deref(), None | Some("custom"))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ToolChoice {
    Auto {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Tool {
        name: String,
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    None {},
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct Metadata {
    #[serde(default)]
    pub user_id: Option<String>,
}

/// A whole answer (`type: message`), also the `message` of a stream's `message_start`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct MessageResponse {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    pub content: Vec<OutputBlock>,
    pub model: String,
    pub stop_reason: Option<StopReason>,
    pub stop_sequence: Option<String>,
    pub usage: OutputUsage,
}

/// A content block of an answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum OutputBlock {
    Text {
        text: String,
    },
    Thinking {
        thinking: String,
        signature: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum StopReason {
    EndTurn,
    MaxTokens,
    ToolUse,
    Refusal,
}

/// Tokens in Anthropic's classes: `input_tokens` are the uncached prompt tokens only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(super) struct OutputUsage {
    pub input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub output_tokens: u64,
}

/// One event of a streamed answer; its `type` is also the SSE `event:` name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum StreamEvent {
    MessageStart {
        message: MessageResponse,
    },
    ContentBlockStart {
        index: u32,
        content_block: OutputBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: MessageDelta,
        usage: OutputUsage,
        /// The gateway's charge for the stream, as on a chat completions stream's last chunk.
        #[serde(skip_serializing_if = "Option::is_none")]
        llmgate: Option<Value>,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorBody,
    },
}

impl StreamEvent {
    /// The SSE `event:` name.
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Ping => "ping",
            StreamEvent::Error { .. } => "error",
        }
    }
}

/// A content block's next piece; the variant names are the wire's `type`s.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::enum_variant_names)]
pub(super) enum BlockDelta {
    TextDelta { text: String },
    InputJsonDelta { partial_json: String },
    ThinkingDelta { thinking: String },
    SignatureDelta { signature: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct MessageDelta {
    pub stop_reason: Option<StopReason>,
    pub stop_sequence: Option<String>,
}

/// `{"type": ..., "message": ...}` inside `{"type": "error", "error": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct ErrorBody {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: String,
}

/// `{"input_tokens": N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(super) struct TokenCount {
    pub input_tokens: u64,
}
