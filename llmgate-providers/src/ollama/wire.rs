//! Ollama's native API types (`/api/chat`, `/api/tags`). Crate-private.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /api/chat` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ChatBody {
    pub model: String,
    pub messages: Vec<WireMessage>,
    /// Always sent: Ollama streams unless told otherwise.
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Options>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<WireTool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct WireMessage {
    pub role: &'static str,
    pub content: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<WireToolCall>,
    /// For `tool` messages: the function whose result this is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
}

/// A whole tool call; arguments are an object, never text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WireToolCall {
    pub function: WireFunction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WireFunction {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

/// Model options; only the ones a chat request can set.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Options {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_predict: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
}

impl Options {
    pub fn is_empty(&self) -> bool {
        *self == Options::default()
    }
}

/// Tools in OpenAI's function shape, which Ollama accepts as is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct WireTool {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: WireToolFunction,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct WireToolFunction {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub parameters: Value,
}

/// One answer object: the whole answer, or one NDJSON line of a stream.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ChatLine {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub message: Option<LineMessage>,
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub done_reason: Option<String>,
    #[serde(default)]
    pub prompt_eval_count: Option<u64>,
    #[serde(default)]
    pub eval_count: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct LineMessage {
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub thinking: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<WireToolCall>>,
}

/// `{"error": "..."}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ErrorBody {
    pub error: String,
}

/// `GET /api/tags`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Tags {
    #[serde(default)]
    pub models: Vec<TagModel>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TagModel {
    pub name: String,
    #[serde(default)]
    pub modified_at: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub details: Option<TagDetails>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct TagDetails {
    #[serde(default)]
    pub family: Option<String>,
    #[serde(default)]
    pub parameter_size: Option<String>,
    #[serde(default)]
    pub quantization_level: Option<String>,
}
