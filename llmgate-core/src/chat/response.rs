//! The chat completion response, whole and streamed.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::message::{Message, Role};

/// Why a choice stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    FunctionCall,
}

/// Token counts of one request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
    /// True when the gateway counted the tokens itself because the upstream sent none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            ..Self::default()
        }
    }

    /// The tokens by how they are priced. A count an upstream reports inconsistently (more
    /// cached tokens than prompt tokens, more reasoning than output) is capped at its whole, so
    /// the classes always add up to `prompt_tokens` and `completion_tokens`.
    pub fn classes(&self) -> TokenClasses {
        let details = self.prompt_tokens_details.as_ref();
        let cache_read = details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(self.prompt_tokens);
        let cache_write = details
            .and_then(|d| d.cache_creation_tokens)
            .unwrap_or(0)
            .min(self.prompt_tokens - cache_read);
        let reasoning = self
            .completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0)
            .min(self.completion_tokens);
        TokenClasses {
            uncached_prompt: self.prompt_tokens - cache_read - cache_write,
            cache_read,
            cache_write,
            output: self.completion_tokens,
            reasoning,
        }
    }

    /// Make sure the details carry the cached and reasoning counts, zero when none: clients
    /// read them without checking whether the upstream reported them.
    pub fn with_class_details(mut self) -> Self {
        let classes = self.classes();
        let prompt = self
            .prompt_tokens_details
            .get_or_insert_with(Default::default);
        prompt.cached_tokens = Some(classes.cache_read);
        if classes.cache_write > 0 {
            prompt.cache_creation_tokens = Some(classes.cache_write);
        }
        let completion = self
            .completion_tokens_details
            .get_or_insert_with(Default::default);
        completion.reasoning_tokens = Some(classes.reasoning);
        self
    }
}

/// One request's tokens by how they are priced: every prompt token is in exactly one of the
/// three prompt classes; reasoning tokens are output tokens, also counted apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClasses {
    /// Prompt tokens read neither from nor into a prompt cache.
    pub uncached_prompt: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// Every generated token, reasoning included.
    pub output: u64,
    /// The part of `output` the model spent thinking.
    pub reasoning: u64,
}

impl TokenClasses {
    /// All prompt tokens, whatever their class.
    pub fn prompt(&self) -> u64 {
        self.uncached_prompt
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
    }
}

/// Prompt tokens read from (`cached_tokens`) or written to (`cache_creation_tokens`) a prompt
/// cache; both are part of `prompt_tokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_tokens: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Output tokens spent on reasoning; part of `completion_tokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A whole (non-streamed) completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub id: String,
    #[serde(default = "completion_object")]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub index: u32,
    pub message: Message,
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
}

/// One event of a streamed completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    pub id: String,
    #[serde(default = "chunk_object")]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The upstream's own JSON for this chunk, when it was OpenAI's format and nothing has
    /// been changed since: sent on as it came instead of encoded again.
    #[serde(skip)]
    pub wire: WireJson,
}

impl ChatChunk {
    /// A chunk with no choices, to be filled in by the caller.
    pub fn empty(id: impl Into<String>, model: impl Into<String>, created: u64) -> Self {
        Self {
            id: id.into(),
            object: chunk_object(),
            created,
            model: model.into(),
            choices: Vec::new(),
            usage: None,
            system_fingerprint: None,
            extra: Map::new(),
            wire: WireJson::default(),
        }
    }
}

/// A chunk's JSON exactly as the upstream sent it (see [`ChatChunk::wire`]). Whoever changes a
/// chunk must [`clear`](WireJson::clear) it, or the change is not sent. It takes no part in
/// comparing chunks: two chunks with the same content are equal however they arrived.
#[derive(Clone, Default)]
pub struct WireJson(Option<bytes::Bytes>);

impl WireJson {
    /// The upstream's JSON text of the chunk (one SSE event's data).
    pub fn new(json: impl Into<bytes::Bytes>) -> Self {
        Self(Some(json.into()))
    }

    pub fn get(&self) -> Option<&bytes::Bytes> {
        self.0.as_ref()
    }

    pub fn clear(&mut self) {
        self.0 = None;
    }
}

impl PartialEq for WireJson {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for WireJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(json) => write!(f, "WireJson({} bytes)", json.len()),
            None => f.write_str("WireJson(none)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
}

/// What one chunk adds to a choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Vendor additions such as `reasoning_content`, passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A fragment of a tool call: the first carries id, type and name; later ones more arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

fn completion_object() -> String {
    "chat.completion".to_owned()
}

fn chunk_object() -> String {
    "chat.completion.chunk".to_owned()
}
