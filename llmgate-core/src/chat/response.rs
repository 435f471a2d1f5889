//! The chat completion response, whole and streamed.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::message::{Message, Role};
use super::native::WireFormat;
use crate::pricing::{CostBreakdown, TokenClasses};

/// Why a choice stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model finished on its own or hit a stop sequence.
    Stop,
    /// The output reached `max_tokens` (or the gateway's output cap).
    Length,
    /// The model asked for one or more tool calls.
    ToolCalls,
    /// The upstream withheld content by its moderation.
    ContentFilter,
    /// The legacy single function call of older OpenAI models.
    FunctionCall,
}

/// Token counts of one request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Every prompt token, cached or not.
    pub prompt_tokens: u64,
    /// Every generated token, reasoning included.
    pub completion_tokens: u64,
    /// `prompt_tokens + completion_tokens`, as the upstream reported it.
    pub total_tokens: u64,
    /// The cached parts of `prompt_tokens`, when the upstream reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// The reasoning part of `completion_tokens`, when the upstream reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
    /// True when the gateway counted the tokens itself because the upstream sent none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
}

impl Usage {
    /// Usage of `prompt_tokens` in and `completion_tokens` out, with `total_tokens` their sum.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            ..Self::default()
        }
    }

    /// The same usage with `tokens` of the prompt read from a prompt cache.
    pub fn with_cached_tokens(mut self, tokens: u64) -> Self {
        self.prompt_tokens_details
            .get_or_insert_with(Default::default)
            .cached_tokens = Some(tokens);
        self
    }

    /// The same usage with `tokens` of the prompt written to a prompt cache.
    pub fn with_cache_creation_tokens(mut self, tokens: u64) -> Self {
        self.prompt_tokens_details
            .get_or_insert_with(Default::default)
            .cache_creation_tokens = Some(tokens);
        self
    }

    /// The same usage with `tokens` of the completion spent reasoning.
    pub fn with_reasoning_tokens(mut self, tokens: u64) -> Self {
        self.completion_tokens_details
            .get_or_insert_with(Default::default)
            .reasoning_tokens = Some(tokens);
        self
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

/// Prompt tokens read from (`cached_tokens`) or written to (`cache_creation_tokens`) a prompt
/// cache; both are part of `prompt_tokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens read from a prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// Prompt tokens written to a prompt cache (Anthropic's `cache_creation_input_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_tokens: Option<u64>,
    /// Any other fields the upstream sent, passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Output tokens spent on reasoning; part of `completion_tokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    /// Output tokens spent reasoning before the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    /// Any other fields the upstream sent, passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A whole (non-streamed) completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The upstream's completion id (e.g. `chatcmpl-...`).
    pub id: String,
    /// Always `"chat.completion"`.
    #[serde(default = "completion_object")]
    pub object: String,
    /// When the completion was made, in Unix seconds (0 when the upstream did not say).
    #[serde(default)]
    pub created: u64,
    /// The model id the upstream reports answering.
    pub model: String,
    /// The answers; one unless the request asked for `n > 1`.
    pub choices: Vec<Choice>,
    /// Token counts; `None` only when neither the upstream nor the gateway counted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The upstream's backend configuration id, passed through (OpenAI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// Any other top-level fields, passed through (the gateway adds `llmgate` cost details here).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The upstream's whole answer as it came, tagged with its protocol, when the upstream
    /// speaks the client's protocol: sent on as it is instead of encoded from these fields.
    #[serde(skip)]
    pub wire: WireJson,
}

impl ChatResponse {
    /// A completion of one answer: the assistant's `text`, finished on its own
    /// ([`FinishReason::Stop`]). Its id is `chatcmpl-llmgate`, `created` is 0 and it has no
    /// usage until the `with_*` methods say otherwise.
    ///
    /// ```
    /// use llmgate_core::chat::{ChatResponse, Usage};
    ///
    /// let response = ChatResponse::assistant("gpt-4o-mini", "hi").with_usage(Usage::new(3, 1));
    /// assert_eq!(response.choices[0].message.text_content(), "hi");
    /// ```
    pub fn assistant(model: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            id: "chatcmpl-llmgate".to_owned(),
            object: completion_object(),
            created: 0,
            model: model.into(),
            choices: vec![Choice {
                index: 0,
                message: Message::assistant(text),
                finish_reason: Some(FinishReason::Stop),
                logprobs: None,
            }],
            usage: None,
            system_fingerprint: None,
            extra: Map::new(),
            wire: WireJson::default(),
        }
    }

    /// The same completion with this id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// The same completion made at `created` (Unix seconds).
    pub fn with_created(mut self, created: u64) -> Self {
        self.created = created;
        self
    }

    /// The same completion with these token counts.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = Some(usage);
        self
    }

    /// The same completion with every answer stopped for `reason`.
    pub fn with_finish_reason(mut self, reason: FinishReason) -> Self {
        for choice in &mut self.choices {
            choice.finish_reason = Some(reason);
        }
        self
    }
}

/// One answer of a whole completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Which answer this is, from 0 (matters when `n > 1`).
    pub index: u32,
    /// The assistant's message: text, tool calls or a refusal.
    pub message: Message,
    /// Why generation stopped; `None` when the upstream did not say.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    /// Token log probabilities, passed through as the upstream sent them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
}

/// One event of a streamed completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    /// The upstream's completion id, the same on every chunk of one stream.
    pub id: String,
    /// Always `"chat.completion.chunk"`.
    #[serde(default = "chunk_object")]
    pub object: String,
    /// When the completion was started, in Unix seconds (0 when the upstream did not say).
    #[serde(default)]
    pub created: u64,
    /// The model id the upstream reports answering.
    pub model: String,
    /// What this chunk adds to each answer; empty on the final usage-only chunk.
    pub choices: Vec<ChunkChoice>,
    /// Token counts of the whole stream; set only on the final usage chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The upstream's backend configuration id, passed through (OpenAI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// Any other top-level fields, passed through (the gateway adds `llmgate` cost details to the usage chunk).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The upstream's own bytes for this chunk, tagged with their protocol, while nothing has
    /// been changed since: sent on as they came to a client of the same protocol instead of
    /// encoded again.
    #[serde(skip)]
    pub wire: WireJson,
    /// What the stream cost; set by the gateway on the last chunk (see [`ChatChunk::cost`]).
    #[serde(skip)]
    cost: Option<CostBreakdown>,
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
            cost: None,
        }
    }

    /// The first chunk of an answer: the assistant's role and empty text, as OpenAI sends it.
    pub fn start(id: impl Into<String>, model: impl Into<String>, created: u64) -> Self {
        Self::empty(id, model, created).with_delta(Delta::start(), None)
    }

    /// A chunk adding `text` to the answer.
    ///
    /// ```
    /// use llmgate_core::chat::{ChatChunk, FinishReason, Usage};
    ///
    /// let stream = [
    ///     ChatChunk::start("chatcmpl-1", "m", 0),
    ///     ChatChunk::text("chatcmpl-1", "m", 0, "Hello"),
    ///     ChatChunk::finish("chatcmpl-1", "m", 0, FinishReason::Stop),
    ///     ChatChunk::empty("chatcmpl-1", "m", 0).with_usage(Usage::new(3, 1)),
    /// ];
    /// assert_eq!(stream[1].choices[0].delta.content.as_deref(), Some("Hello"));
    /// ```
    pub fn text(
        id: impl Into<String>,
        model: impl Into<String>,
        created: u64,
        text: impl Into<String>,
    ) -> Self {
        Self::empty(id, model, created).with_delta(Delta::text(text), None)
    }

    /// The chunk that ends the answer, for `reason`, adding nothing to it.
    pub fn finish(
        id: impl Into<String>,
        model: impl Into<String>,
        created: u64,
        reason: FinishReason,
    ) -> Self {
        Self::empty(id, model, created).with_delta(Delta::default(), Some(reason))
    }

    /// The same chunk with one more choice, the next answer's index, adding `delta` to its
    /// answer and ending it when `finish_reason` is set.
    pub fn with_delta(mut self, delta: Delta, finish_reason: Option<FinishReason>) -> Self {
        let index = u32::try_from(self.choices.len()).unwrap_or(u32::MAX);
        self.choices.push(ChunkChoice {
            index,
            delta,
            finish_reason,
            logprobs: None,
        });
        self
    }

    /// The same chunk carrying the whole stream's token counts (the usage chunk).
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = Some(usage);
        self
    }

    /// What the stream cost, on the last chunk of a stream from
    /// [`Gateway::chat_stream`](crate::Gateway::chat_stream); `None` on every other chunk.
    /// Its JSON travels in the chunk's `llmgate` field (`cost_micros` and `cost_breakdown`).
    pub fn cost(&self) -> Option<&CostBreakdown> {
        self.cost.as_ref()
    }

    /// Attach the stream's cost: the typed value [`cost`](Self::cost) returns and its JSON
    /// under `llmgate`, which is what clients of the server read.
    pub(crate) fn set_cost(&mut self, cost: CostBreakdown) {
        self.extra.insert(
            "llmgate".to_owned(),
            serde_json::json!({ "cost_micros": cost.cost_micros, "cost_breakdown": cost }),
        );
        self.wire.clear();
        self.cost = Some(cost);
    }
}

/// A chunk's bytes exactly as the upstream sent them (see [`ChatChunk::wire`]), tagged with
/// their protocol. Whoever changes a chunk must [`clear`](WireJson::clear) it, or the change is
/// not sent. It takes no part in comparing chunks: two chunks with the same content are equal
/// however they arrived.
#[derive(Clone, Default)]
pub struct WireJson(Option<(WireFormat, bytes::Bytes)>);

impl WireJson {
    /// The upstream's JSON text of an OpenAI chat completions chunk (one SSE event's data).
    pub fn new(json: impl Into<bytes::Bytes>) -> Self {
        Self::of(WireFormat::ChatCompletions, json)
    }

    /// The upstream's bytes of one event in `format` (for Anthropic Messages, the whole SSE
    /// event). A chunk that carries them may have no content of its own.
    pub fn of(format: WireFormat, bytes: impl Into<bytes::Bytes>) -> Self {
        Self(Some((format, bytes.into())))
    }

    /// The upstream's chat completions JSON, if the chunk is still unchanged since it arrived.
    pub fn get(&self) -> Option<&bytes::Bytes> {
        self.get_as(WireFormat::ChatCompletions)
    }

    /// The upstream's bytes if they are in `format` and the chunk is unchanged.
    pub fn get_as(&self, format: WireFormat) -> Option<&bytes::Bytes> {
        match &self.0 {
            Some((carried, bytes)) if *carried == format => Some(bytes),
            _ => None,
        }
    }

    /// Forget the upstream's bytes, so the chunk is encoded from its fields; call after changing it.
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
            Some((format, bytes)) => write!(f, "WireJson({format:?}, {} bytes)", bytes.len()),
            None => f.write_str("WireJson(none)"),
        }
    }
}

/// What one chunk adds to one answer of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Which answer this adds to, from 0 (matters when `n > 1`).
    pub index: u32,
    /// The text, role or tool-call fragment added.
    pub delta: Delta,
    /// Set on the chunk that ends this answer.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    /// Token log probabilities of this fragment, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
}

/// What one chunk adds to a choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// The speaker; sent on the first chunk of an answer only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The next piece of text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Fragments of tool calls, to be joined by their `index`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    /// The next piece of a refusal, when the model declines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Vendor additions such as `reasoning_content`, passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Delta {
    /// The first delta of an answer: the assistant's role and empty text.
    pub fn start() -> Self {
        Self {
            role: Some(Role::Assistant),
            content: Some(String::new()),
            ..Self::default()
        }
    }

    /// A delta adding `text` to the answer.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            content: Some(text.into()),
            ..Self::default()
        }
    }
}

/// A fragment of a tool call: the first carries id, type and name; later ones more arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which tool call of the message this fragment belongs to.
    pub index: u32,
    /// The call's id; on its first fragment only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The call's type (`"function"`); on its first fragment only.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The function name and the next piece of its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
}

/// A fragment of a function call within a [`ToolCallDelta`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    /// The function's name; on the first fragment only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The next piece of the JSON arguments, to be appended to the earlier ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

fn completion_object() -> String {
    "chat.completion".to_owned()
}

fn chunk_object() -> String {
    "chat.completion.chunk".to_owned()
}
