//! Ollama's native API (`POST {base}/api/chat`, `GET {base}/api/tags`).
//!
//! For Ollama's OpenAI-compatible layer (`{base}/v1`) use the OpenAI adapter instead; the
//! native API is used here because it reports token counts in streams without being asked and
//! accepts JSON schemas as `format`.
//!
//! ```no_run
//! use llmgate_providers::UpstreamConfig;
//! use llmgate_providers::ollama::{DEFAULT_API_BASE, Ollama};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let local = Ollama::new(UpstreamConfig::new("ollama", DEFAULT_API_BASE))?;
//! for model in local.list_models().await? {
//!     println!("{} ({} bytes)", model.name, model.size.unwrap_or(0));
//! }
//! # Ok(())
//! # }
//! ```

mod convert;
mod embed;
mod stream;
mod wire;

use async_trait::async_trait;
use llmgate_core::{
    Error, Provider, Result,
    chat::ChatResponse,
    embeddings::EmbeddingResponse,
    keys::Secret,
    provider::{ChunkStream, EmbedCall, ProviderCall},
};

use crate::chunks;
use crate::client::RequestBuilder;
use crate::embedding::with_usage;
use crate::error::BuildError;
use crate::http::{self, Connection};
use crate::upstream::UpstreamConfig;
use stream::LineDecoder;
use wire::{ChatBody, ChatLine, Tags};

/// Where a local Ollama listens by default.
pub const DEFAULT_API_BASE: &str = crate::family::OLLAMA_API_BASE;

/// A model installed on an Ollama server, from `GET /api/tags`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalModel {
    /// The name to send as `model`, e.g. `llama3.2:latest`.
    pub name: String,
    /// The model's size on disk, in bytes.
    pub size: Option<u64>,
    /// When it was last pulled or changed, as Ollama reports it (RFC 3339).
    pub modified_at: Option<String>,
    /// The content digest of the model (`sha256:...`).
    pub digest: Option<String>,
    /// The model family, e.g. `llama`.
    pub family: Option<String>,
    /// Its parameter count as Ollama writes it, e.g. `8.0B`.
    pub parameter_size: Option<String>,
    /// Its quantization, e.g. `Q4_K_M`.
    pub quantization_level: Option<String>,
}

/// A provider speaking Ollama's native chat API. Needs no key; when one is given it is sent
/// as a bearer token (for Ollama behind an authenticating proxy).
#[derive(Debug, Clone)]
pub struct Ollama {
    connection: Connection,
    base: String,
}

impl Ollama {
    /// A provider for this server; fails on a bad base URL or header. Makes no network call.
    pub fn new(config: UpstreamConfig) -> Result<Self, BuildError> {
        let mut connection = Connection::new(&config, convert::error_detail)?;
        connection.requires_key = false;
        Ok(Self {
            connection,
            base: config.api_base.trim_end_matches('/').to_owned(),
        })
    }

    /// Whether calls need a key (true for an Ollama behind an authenticating proxy that must
    /// never be called without one). Default: false.
    pub fn with_requires_key(mut self, requires_key: bool) -> Self {
        self.connection.requires_key = requires_key;
        self
    }

    /// The models installed on the server.
    pub async fn list_models(&self) -> Result<Vec<LocalModel>> {
        self.list_models_with_key(None).await
    }

    /// The models installed on a server behind an authenticating proxy.
    pub async fn list_models_with_key(&self, key: Option<&Secret>) -> Result<Vec<LocalModel>> {
        let url = http::endpoint(&self.base, "api/tags");
        let request = self.authorized(self.connection.client.get(url), key)?;
        let tags: Tags = self
            .connection
            .send_for_json(key, request, "a model list")
            .await?;
        Ok(tags
            .models
            .into_iter()
            .map(|m| {
                let details = m.details.unwrap_or_default();
                LocalModel {
                    name: m.name,
                    size: m.size,
                    modified_at: m.modified_at,
                    digest: m.digest,
                    family: details.family,
                    parameter_size: details.parameter_size,
                    quantization_level: details.quantization_level,
                }
            })
            .collect())
    }

    /// An `{"error": ...}` answer: an upstream failure, its text scrubbed of the key.
    fn in_band_error(&self, message: &str, key: Option<&Secret>) -> Error {
        Error::from_upstream_status(self.name(), 500, &http::safe_detail(message, key))
    }

    /// With the configured headers, and the key as a bearer token when there is one. Called
    /// on a new request, before its body: the headers then go in as one map, not merged.
    fn authorized<'a>(
        &self,
        request: RequestBuilder<'a>,
        key: Option<&Secret>,
    ) -> Result<RequestBuilder<'a>> {
        let request = request.headers(self.connection.request_headers());
        Ok(match key.filter(|k| !k.expose().is_empty()) {
            Some(key) => request.header(::http::header::AUTHORIZATION, http::bearer(key)?),
            None => request,
        })
    }

    fn chat_request(&self, call: &ProviderCall<'_>, body: &ChatBody) -> Result<RequestBuilder<'_>> {
        let url = http::endpoint(&self.base, "api/chat");
        Ok(self
            .authorized(self.connection.client.post(url), call.api_key)?
            .json(body))
    }
}

#[async_trait]
impl Provider for Ollama {
    fn name(&self) -> &str {
        &self.connection.name
    }

    fn requires_key(&self) -> bool {
        self.connection.requires_key
    }

    async fn chat(&self, call: ProviderCall<'_>) -> Result<ChatResponse> {
        let request = self.chat_request(&call, &convert::to_wire(call.request, false)?)?;
        let line: ChatLine = self
            .connection
            .send_for_json(call.api_key, request, "a chat response")
            .await?;
        if let Some(message) = line.error {
            return Err(self.in_band_error(&message, call.api_key));
        }
        Ok(convert::from_wire(line, http::unix_now()))
    }

    async fn chat_stream(&self, call: ProviderCall<'_>) -> Result<ChunkStream> {
        let request = self.chat_request(&call, &convert::to_wire(call.request, true)?)?;
        let response = self.connection.send(call.api_key, request).await?;
        let decoder = LineDecoder::new(self.name(), &call.request.model, http::unix_now());
        let lines = stream::lines(self.name(), response, self.connection.timeout);
        Ok(chunks::chunk_stream(lines, decoder))
    }

    async fn embed(&self, call: EmbedCall<'_>) -> Result<EmbeddingResponse> {
        let name = &self.connection.name;
        let body = embed::to_wire(name, call.request)?;
        let url = http::endpoint(&self.base, "api/embed");
        let post = self
            .authorized(self.connection.client.post(url), call.api_key)?
            .json(&body);
        let mut answer: embed::EmbedAnswer = self
            .connection
            .send_for_json(call.api_key, post, "an embeddings response")
            .await?;
        if let Some(message) = answer.error.take() {
            return Err(self.in_band_error(&message, call.api_key));
        }
        let response = embed::from_answer(name, answer, &call.request.model)?;
        Ok(with_usage(response, &call.request.input))
    }
}
