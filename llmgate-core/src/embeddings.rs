//! Embedding requests and answers in OpenAI's shape, provider-neutral.
//!
//! A vector travels as the upstream wrote it when the client asked for that encoding (a float
//! array's JSON text, or a base64 string, is passed on byte for byte); otherwise the gateway
//! converts it: base64 is the little-endian bytes of each `f32`, as OpenAI encodes it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::power::PowerLevel;
use crate::tokens::estimate_text_tokens;

/// An embeddings request (`POST /v1/embeddings`), plus llmgate's `power_level` extension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    /// The model to embed with: a configured model name or `provider/model`. The gateway
    /// replaces it with the upstream's model id before calling a provider.
    pub model: String,
    /// What to embed.
    pub input: EmbeddingInput,
    /// How the vectors come back; `None` means floats (OpenAI's default on the wire; its SDKs
    /// ask for base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<EncodingFormat>,
    /// The vectors' length, for models that can shorten them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// The client's own id for its end user, passed to the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// llmgate extension; never forwarded upstream.
    #[serde(default, skip_serializing)]
    pub power_level: Option<PowerLevel>,
    /// Any other fields, passed through unchanged to OpenAI-compatible upstreams.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl EmbeddingRequest {
    /// A request for `model` with the given input and nothing else set.
    pub fn new(model: impl Into<String>, input: impl Into<EmbeddingInput>) -> Self {
        Self {
            model: model.into(),
            input: input.into(),
            encoding_format: None,
            dimensions: None,
            user: None,
            power_level: None,
            extra: Map::new(),
        }
    }

    /// Ask for the vectors in this encoding.
    pub fn with_encoding(mut self, format: EncodingFormat) -> Self {
        self.encoding_format = Some(format);
        self
    }

    /// The encoding the client gets back.
    pub fn encoding(&self) -> EncodingFormat {
        self.encoding_format.unwrap_or_default()
    }

    /// Refuse what no upstream can answer: no model, no input, an empty input, no dimensions.
    pub fn validate(&self) -> Result<()> {
        if self.model.trim().is_empty() {
            return Err(Error::invalid_request("`model` must not be empty.").with_param("model"));
        }
        if self.input.is_empty() {
            return Err(Error::invalid_request(
                "`input` must hold at least one text or token array.",
            )
            .with_param("input"));
        }
        if self.input.has_empty_item() {
            return Err(Error::invalid_request(
                "`input` must not contain an empty string or an empty token array.",
            )
            .with_param("input"));
        }
        if self.dimensions == Some(0) {
            return Err(
                Error::invalid_request("`dimensions` must be at least 1.").with_param("dimensions")
            );
        }
        Ok(())
    }
}

/// What to embed: one text, several, or pre-tokenized input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    Text(String),
    /// Several texts, one vector each.
    Texts(Vec<String>),
    /// One input as token ids.
    Tokens(Vec<u32>),
    /// Several inputs as token ids.
    TokenLists(Vec<Vec<u32>>),
}

impl From<&str> for EmbeddingInput {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

impl From<String> for EmbeddingInput {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl From<Vec<String>> for EmbeddingInput {
    fn from(texts: Vec<String>) -> Self {
        Self::Texts(texts)
    }
}

impl From<Vec<&str>> for EmbeddingInput {
    fn from(texts: Vec<&str>) -> Self {
        Self::Texts(texts.into_iter().map(str::to_owned).collect())
    }
}

impl EmbeddingInput {
    /// How many vectors the input asks for.
    pub fn len(&self) -> usize {
        match self {
            Self::Text(_) | Self::Tokens(_) => 1,
            Self::Texts(texts) => texts.len(),
            Self::TokenLists(lists) => lists.len(),
        }
    }

    /// Whether there is nothing to embed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn has_empty_item(&self) -> bool {
        match self {
            Self::Text(text) => text.is_empty(),
            Self::Texts(texts) => texts.iter().any(String::is_empty),
            Self::Tokens(tokens) => tokens.is_empty(),
            Self::TokenLists(lists) => lists.iter().any(Vec::is_empty),
        }
    }

    /// The texts, or `None` for token arrays.
    pub fn texts(&self) -> Option<Vec<&str>> {
        match self {
            Self::Text(text) => Some(vec![text.as_str()]),
            Self::Texts(texts) => Some(texts.iter().map(String::as_str).collect()),
            Self::Tokens(_) | Self::TokenLists(_) => None,
        }
    }

    /// An upper bound on the input's tokens, for the hold: a text's UTF-8 length (a BPE
    /// tokenizer emits at most one token per byte), a token array's length.
    pub fn token_upper_bound(&self) -> u64 {
        match self {
            Self::Text(text) => text.len() as u64,
            Self::Texts(texts) => texts.iter().map(|t| t.len() as u64).sum(),
            Self::Tokens(tokens) => tokens.len() as u64,
            Self::TokenLists(lists) => lists.iter().map(|l| l.len() as u64).sum(),
        }
    }

    /// An estimate of the input's tokens when neither the upstream nor the provider counted
    /// them: the gateway's text estimate per text, a token array's length.
    pub fn estimate_tokens(&self) -> u64 {
        match self {
            Self::Text(text) => estimate_text_tokens(text.len()),
            Self::Texts(texts) => texts.iter().map(|t| estimate_text_tokens(t.len())).sum(),
            Self::Tokens(_) | Self::TokenLists(_) => self.token_upper_bound(),
        }
    }
}

/// How vectors are encoded in an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// A JSON array of numbers.
    #[default]
    Float,
    /// A base64 string of the little-endian bytes of each `f32`.
    Base64,
}

/// An embeddings answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    /// Always `"list"`.
    #[serde(default = "list_object")]
    pub object: String,
    /// One vector per input, in input order.
    pub data: Vec<Embedding>,
    /// The model id the upstream reports answering.
    #[serde(default)]
    pub model: String,
    /// Token counts; `None` only when neither the upstream nor the provider counted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<EmbeddingUsage>,
}

fn list_object() -> String {
    "list".to_owned()
}

fn embedding_object() -> String {
    "embedding".to_owned()
}

impl EmbeddingResponse {
    /// An answer of these vectors, in order, with no usage.
    pub fn new(model: impl Into<String>, vectors: impl IntoIterator<Item = Vector>) -> Self {
        Self {
            object: list_object(),
            data: vectors
                .into_iter()
                .enumerate()
                .map(|(index, embedding)| Embedding {
                    object: embedding_object(),
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    embedding,
                })
                .collect(),
            model: model.into(),
            usage: None,
        }
    }

    /// Bring every vector into `format` (those already in it are left as they came).
    pub fn encode_as(&mut self, format: EncodingFormat) -> Result<()> {
        for item in &mut self.data {
            item.embedding.encode_as(format)?;
        }
        Ok(())
    }
}

/// One vector of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// Always `"embedding"`.
    #[serde(default = "embedding_object")]
    pub object: String,
    /// The position of its input.
    pub index: u32,
    /// The vector.
    pub embedding: Vector,
}

/// Token counts of an embeddings answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EmbeddingUsage {
    /// The input's tokens; what the request is charged by.
    pub prompt_tokens: u64,
    /// The same number (embeddings have no output tokens).
    pub total_tokens: u64,
}

impl EmbeddingUsage {
    /// Usage of `prompt_tokens` input tokens.
    pub fn new(prompt_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            total_tokens: prompt_tokens,
        }
    }
}

/// A vector in one of the two encodings, kept as the upstream's JSON text.
#[derive(Debug, Clone)]
pub enum Vector {
    /// A JSON array of numbers, exactly as written.
    Float(Box<RawValue>),
    /// A base64 string of the little-endian bytes of each `f32`.
    Base64(String),
}

impl PartialEq for Vector {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Float(a), Self::Float(b)) => a.get() == b.get(),
            (Self::Base64(a), Self::Base64(b)) => a == b,
            _ => false,
        }
    }
}

impl Vector {
    /// A float vector.
    pub fn from_floats(values: &[f32]) -> Result<Self> {
        serde_json::value::to_raw_value(values)
            .map(Self::Float)
            .map_err(|_| Error::internal("An embedding could not be encoded."))
    }

    /// The encoding it is in.
    pub fn format(&self) -> EncodingFormat {
        match self {
            Self::Float(_) => EncodingFormat::Float,
            Self::Base64(_) => EncodingFormat::Base64,
        }
    }

    /// The numbers, decoded from either encoding.
    pub fn to_floats(&self) -> Result<Vec<f32>> {
        match self {
            Self::Float(raw) => serde_json::from_str(raw.get())
                .map_err(|_| malformed("an embedding that is not numbers")),
            Self::Base64(text) => {
                let bytes = STANDARD
                    .decode(text)
                    .map_err(|_| malformed("an embedding that is not base64"))?;
                if bytes.len() % 4 != 0 {
                    return Err(malformed("a base64 embedding that is not whole f32 values"));
                }
                Ok(bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect())
            }
        }
    }

    /// The base64 encoding of these numbers (little-endian `f32`).
    pub fn base64_of(values: &[f32]) -> String {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        STANDARD.encode(bytes)
    }

    /// Convert to `format`, unless it is already in it.
    pub fn encode_as(&mut self, format: EncodingFormat) -> Result<()> {
        if self.format() == format {
            return Ok(());
        }
        let values = self.to_floats()?;
        *self = match format {
            EncodingFormat::Float => Self::from_floats(&values)?,
            EncodingFormat::Base64 => Self::Base64(Self::base64_of(&values)),
        };
        Ok(())
    }
}

/// An upstream's vector the gateway cannot read: an upstream error (the next deployment may
/// answer better).
fn malformed(what: &str) -> Error {
    Error::new(ErrorKind::Upstream, format!("An upstream sent {what}."))
        .with_code("upstream_malformed_response")
}

/// The answer must hold one vector per input.
pub(crate) fn check_count(response: &EmbeddingResponse, inputs: usize) -> Result<()> {
    if response.data.len() == inputs {
        return Ok(());
    }
    Err(malformed(&format!(
        "{} embeddings for {inputs} inputs",
        response.data.len()
    )))
}

impl Serialize for Vector {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::Float(raw) => raw.serialize(serializer),
            Self::Base64(text) => serializer.serialize_str(text),
        }
    }
}

impl<'de> Deserialize<'de> for Vector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        match raw.get().trim_start().as_bytes().first() {
            Some(b'"') => serde_json::from_str(raw.get())
                .map(Self::Base64)
                .map_err(D::Error::custom),
            Some(b'[') => Ok(Self::Float(raw)),
            _ => Err(D::Error::custom(
                "an embedding must be an array of numbers or a base64 string",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_input_shape_parses() {
        let shapes = [
            (json!("a"), 1),
            (json!(["a", "b"]), 2),
            (json!([1, 2, 3]), 1),
            (json!([[1, 2], [3]]), 2),
        ];
        for (input, count) in shapes {
            let request: EmbeddingRequest =
                serde_json::from_value(json!({"model": "m", "input": input})).unwrap();
            assert_eq!(request.input.len(), count, "{input}");
            request.validate().unwrap();
        }
    }

    #[test]
    fn empty_inputs_are_refused() {
        for input in [json!(""), json!([]), json!(["a", ""]), json!([[1], []])] {
            let request: EmbeddingRequest =
                serde_json::from_value(json!({"model": "m", "input": input})).unwrap();
            let error = request.validate().unwrap_err();
            assert_eq!(error.status(), 400);
            assert_eq!(error.param(), Some("input"));
        }
    }

    #[test]
    fn bounds_count_bytes_and_token_ids() {
        assert_eq!(EmbeddingInput::from("héllo").token_upper_bound(), 6);
        assert_eq!(
            EmbeddingInput::TokenLists(vec![vec![1, 2], vec![3]]).token_upper_bound(),
            3
        );
        assert_eq!(EmbeddingInput::Tokens(vec![1, 2, 3]).estimate_tokens(), 3);
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let mut vector = Vector::from_floats(&[1.0, -0.5]).unwrap();
        vector.encode_as(EncodingFormat::Base64).unwrap();
        // 1.0 = 00 00 80 3f, -0.5 = 00 00 00 bf
        assert_eq!(vector, Vector::Base64("AACAPwAAAL8=".to_owned()));
        vector.encode_as(EncodingFormat::Float).unwrap();
        assert_eq!(vector.to_floats().unwrap(), [1.0, -0.5]);
    }

    #[test]
    fn vectors_in_the_asked_encoding_keep_their_bytes() {
        let text = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292]}],"model":"m"}"#;
        let mut response: EmbeddingResponse = serde_json::from_str(text).unwrap();
        response.encode_as(EncodingFormat::Float).unwrap();
        assert_eq!(serde_json::to_string(&response).unwrap(), text);
    }

    #[test]
    fn a_vector_missing_or_unreadable_is_an_upstream_error() {
        let one = EmbeddingResponse::new("m", [Vector::from_floats(&[1.0]).unwrap()]);
        check_count(&one, 1).unwrap();
        let error = check_count(&one, 2).unwrap_err();
        assert_eq!((error.status(), error.is_retryable()), (502, true));
        let error = Vector::Base64("AAA".to_owned()).to_floats().unwrap_err();
        assert_eq!(error.code(), Some("upstream_malformed_response"));
    }

    #[test]
    fn power_level_is_never_forwarded() {
        let request: EmbeddingRequest = serde_json::from_value(
            json!({"model": "m", "input": "a", "power_level": "eco", "input_type": "query"}),
        )
        .unwrap();
        assert_eq!(request.power_level, Some(PowerLevel::Eco));
        let sent = serde_json::to_value(&request).unwrap();
        assert_eq!(
            sent,
            json!({"model": "m", "input": "a", "input_type": "query"})
        );
    }
}
