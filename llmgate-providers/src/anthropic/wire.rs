//! Anthropic Messages API types, as the API documents them. Crate-private: nothing here leaks
//! into core types.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/messages` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct MessagesRequest {
    pub model: String,
    pub max_tokens: u32,
    pub messages: Vec<Turn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<System>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolSpec>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Metadata {
    pub user_id: String,
}

/// One turn: `user` or `assistant`, always with a list of blocks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Turn {
    pub role: TurnRole,
    pub content: Vec<Block>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TurnRole {
    User,
    Assistant,
}

/// The system prompt: plain text, or text blocks when some carry a cache breakpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum System {
    Text(String),
    Blocks(Vec<Block>),
}

/// A request content block.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Block {
    Text {
        text: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    Image {
        source: ImageSource,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        content: ToolResultContent,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

/// A tool result: plain text, or blocks when it carries images.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum ToolResultContent {
    Text(String),
    Blocks(Vec<Block>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ToolSpec {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ToolChoice {
    #[serde(rename = "type")]
    pub kind: ToolChoiceKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ToolChoiceKind {
    Auto,
    Any,
    Tool,
    None,
}

/// A whole `message` answer.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct MessagesResponse {
    pub id: String,
    pub model: String,
    #[serde(default)]
    pub content: Vec<ResponseBlock>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
}

/// A response content block; kinds this adapter does not translate are skipped.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ResponseBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
    },
    #[serde(other)]
    Other,
}

/// Token counts; in `message_delta` events every field is cumulative and any may be missing.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

/// One streamed event, told apart by the `type` inside its data (which repeats the SSE
/// `event:` name).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum StreamEvent {
    MessageStart {
        message: StartedMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: ResponseBlock,
    },
    ContentBlockDelta {
        index: u64,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u64,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorObject,
    },
    /// Event kinds added after this adapter was written; the API asks clients to ignore them.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct StartedMessage {
    pub id: String,
    pub model: String,
    #[serde(default)]
    pub usage: Option<WireUsage>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct MessageDeltaBody {
    #[serde(default)]
    pub stop_reason: Option<String>,
}

/// `{"type":"error","error":{"type","message"}}`, as a body or inside a stream event.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ErrorObject {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

impl StreamEvent {
    /// An event from its SSE `event:` name and its data. The two kinds of nearly every event
    /// (`content_block_delta`) and of the first (`message_start`) are read straight into their
    /// fields: the tagged enum buffers the whole data into generic values before picking a
    /// variant, which cost more than the rest of decoding an event. Anything the direct read
    /// does not take (another kind, a `type` that disagrees with the name, an unexpected shape)
    /// goes through the enum as before, with its errors.
    pub(crate) fn parse(name: Option<&str>, data: &str) -> serde_json::Result<Self> {
        let direct = match name {
            Some("content_block_delta") => serde_json::from_str::<DeltaEvent<'_>>(data)
                .ok()
                .filter(|event| event.kind == "content_block_delta")
                .and_then(|event| {
                    Some(StreamEvent::ContentBlockDelta {
                        index: event.index,
                        delta: event.delta.into_delta()?,
                    })
                }),
            Some("message_start") => serde_json::from_str::<StartEvent<'_>>(data)
                .ok()
                .filter(|event| event.kind == "message_start")
                .map(|event| StreamEvent::MessageStart {
                    message: event.message,
                }),
            _ => None,
        };
        match direct {
            Some(event) => Ok(event),
            None => serde_json::from_str(data),
        }
    }
}

/// `content_block_delta`, read without the enum's buffering.
#[derive(Deserialize)]
struct DeltaEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    index: u64,
    delta: FlatDelta<'a>,
}

/// A delta's fields, whichever its type.
#[derive(Deserialize)]
struct FlatDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
}

impl FlatDelta<'_> {
    /// The delta as the enum reads it; `None` when a field its type needs is missing.
    fn into_delta(self) -> Option<BlockDelta> {
        Some(match self.kind {
            "text_delta" => BlockDelta::TextDelta { text: self.text? },
            "input_json_delta" => BlockDelta::InputJsonDelta {
                partial_json: self.partial_json?,
            },
            "thinking_delta" => BlockDelta::ThinkingDelta {
                thinking: self.thinking?,
            },
            _ => BlockDelta::Other,
        })
    }
}

/// `message_start`, read without the enum's buffering.
#[derive(Deserialize)]
struct StartEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    message: StartedMessage,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct read and the enum agree, on what the direct read takes and on what it
    /// leaves to the enum.
    #[test]
    fn parsing_by_the_event_name_reads_what_the_enum_reads() {
        let cases = [
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi \"there\""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"signature_delta","signature":"x"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta"}}"#,
            ),
            ("content_block_delta", r#"{"type":"ping"}"#),
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1","type":"message","model":"m","usage":{"input_tokens":5}}}"#,
            ),
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1"}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ];
        for (name, data) in cases {
            let direct = StreamEvent::parse(Some(name), data).map(|e| format!("{e:?}"));
            let tagged = serde_json::from_str::<StreamEvent>(data).map(|e| format!("{e:?}"));
            match (direct, tagged) {
                (Ok(direct), Ok(tagged)) => assert_eq!(direct, tagged, "{data}"),
                (Err(_), Err(_)) => {}
                (direct, tagged) => panic!("{data}: {direct:?} against {tagged:?}"),
            }
        }
    }
}
