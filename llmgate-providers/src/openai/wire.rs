//! OpenAI's error bodies as vendors actually send them. Requests, responses and chunks need no
//! wire types of their own: the core chat types already are OpenAI's shape.

use serde::Deserialize;
use serde_json::Value;

/// Any JSON error body seen from OpenAI-compatible servers: OpenAI's
/// `{"error":{"message",...}}`, `{"error":"text"}`, vLLM's `{"message":...}` and FastAPI's
/// `{"detail":...}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub error: Option<ErrorField>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub detail: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum ErrorField {
    Object(ErrorObject),
    Text(String),
    Other(Value),
}

/// `{"message","type","param","code"}`; every field optional because vendors drop some.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorObject {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<Value>,
}

impl ErrorBody {
    /// The human-readable part, if the body has one.
    pub fn text(&self) -> Option<String> {
        let from_error = match &self.error {
            Some(ErrorField::Object(object)) => object
                .message
                .clone()
                .or_else(|| object.kind.clone())
                .or_else(|| object.code.as_ref().map(value_text)),
            Some(ErrorField::Text(text)) => Some(text.clone()),
            Some(ErrorField::Other(value)) => Some(value_text(value)),
            None => None,
        };
        from_error
            .or_else(|| self.message.clone())
            .or_else(|| self.detail.as_ref().map(value_text))
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
