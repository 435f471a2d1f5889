//! Messages and their content, as OpenAI's chat API carries them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions from the application, before the conversation.
    System,
    /// Instructions from the application (the newer name OpenAI's reasoning models use for `system`).
    Developer,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call, answering the assistant's `tool_calls`.
    Tool,
}

/// One turn of a conversation.
///
/// A flat struct rather than an enum per role: adapters read the same few fields whatever the role,
/// and unknown fields (vendor extensions such as `reasoning_content`) survive in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote the message.
    pub role: Role,
    /// The text or parts; `None` on an assistant turn that only calls tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// An optional name to tell participants of the same role apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls an assistant turn asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The model's refusal text, when it declined to answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Any other fields (vendor extensions such as `reasoning_content`), passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Message {
    /// A message with plain text content.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(Content::Text(text.into())),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            refusal: None,
            extra: Map::new(),
        }
    }

    /// A system message with plain text.
    pub fn system(text: impl Into<String>) -> Self {
        Self::text(Role::System, text)
    }

    /// A user message with plain text.
    pub fn user(text: impl Into<String>) -> Self {
        Self::text(Role::User, text)
    }

    /// An assistant message with plain text.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::text(Role::Assistant, text)
    }

    /// The concatenated text parts of the content, if any.
    pub fn text_content(&self) -> String {
        self.content
            .as_ref()
            .map(Content::joined_text)
            .unwrap_or_default()
    }
}

/// A message body: a plain string or a list of typed parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// A plain string.
    Text(String),
    /// A list of typed parts (text, images, audio, files).
    Parts(Vec<ContentPart>),
}

impl Content {
    /// All text parts joined with newlines; images and other parts are skipped.
    pub fn joined_text(&self) -> String {
        match self {
            Content::Text(text) => text.clone(),
            Content::Parts(parts) => {
                let texts: Vec<&str> = parts
                    .iter()
                    .filter_map(|part| match part {
                        ContentPart::Text { text, .. } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect();
                texts.join("\n")
            }
        }
    }
}

/// One part of a multi-part message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text.
    Text {
        /// The text itself.
        text: String,
        /// A prompt-cache breakpoint (`{"type": "ephemeral"}`), for upstreams that take one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    /// An image.
    ImageUrl {
        /// Where the image is and how closely to look at it.
        image_url: ImageUrl,
        /// A prompt-cache breakpoint, as on a text part.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    /// Audio input, passed through as sent (`{"data": ..., "format": ...}`).
    InputAudio {
        /// OpenAI's `input_audio` object.
        input_audio: Value,
    },
    /// A file, passed through as sent.
    File {
        /// OpenAI's `file` object.
        file: Value,
    },
}

/// An image given by URL; `data:` URLs carry the bytes inline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// An `https:` URL, or a `data:image/...;base64,` URL with the bytes.
    pub url: String,
    /// `"low"`, `"high"` or `"auto"`: how closely the model looks (OpenAI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A complete tool call made by the assistant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id; the `tool` message answering it names it in `tool_call_id`.
    pub id: String,
    /// Always `"function"`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// Which function, with which arguments.
    pub function: FunctionCall,
}

/// A function name and its arguments as JSON text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The name of the function to call.
    pub name: String,
    /// JSON text, exactly as the model produced it (it may not parse).
    #[serde(default)]
    pub arguments: String,
}

pub(crate) fn function_type() -> String {
    "function".to_owned()
}
