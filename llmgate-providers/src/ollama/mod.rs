//! Ollama's native API (`POST {base}/api/chat`, `GET {base}/api/tags`).
//!
//! For Ollama's OpenAI-compatible layer (`{base}/v1`) use the OpenAI adapter instead; the
//! native API is used here because it reports token counts in streams without being asked and
//! accepts JSON schemas as `format`.
//!
//! ```no_run
//! use llmgate_providers::ollama::{Ollama, OllamaConfig};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let local = Ollama::new(OllamaConfig::new("ollama"))?;
//! for model in local.list_models().await? {
//!     println!("{} ({} bytes)", model.name, model.size.unwrap_or(0));
//! }
//! # Ok(())
//! # }
//! ```

mod convert;
mod stream;
mod wire;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use llmgate_core::{ChatResponse, ChunkStream, Error, Provider, ProviderCall, Result, Secret};
use reqwest::header::HeaderMap;

use crate::http;
use crate::spec::BuildError;
use stream::LineDecoder;
use wire::{ChatBody, ChatLine, Tags};

/// Where a local Ollama listens by default.
pub const DEFAULT_API_BASE: &str = "http://127.0.0.1:11434";

/// Configuration of one Ollama server.
#[derive(Debug, Clone)]
pub struct OllamaConfig {
    /// The configured provider name.
    pub name: String,
    /// Base URL without any path, e.g. `http://127.0.0.1:11434`.
    pub api_base: String,
    /// For whole answers the limit on the whole exchange; for streams the limit until the
    /// response head, then on the silence between two network reads. Local models may take a
    /// while to load, so keep it generous.
    pub timeout: Duration,
    /// Extra headers for every request (e.g. for a proxy in front of Ollama).
    pub headers: BTreeMap<String, String>,
}

impl OllamaConfig {
    /// A local Ollama on the default port with a ten-minute timeout.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            api_base: DEFAULT_API_BASE.to_owned(),
            timeout: Duration::from_secs(600),
            headers: BTreeMap::new(),
        }
    }
}

/// A model installed on an Ollama server, from `GET /api/tags`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalModel {
    /// The name to send as `model`, e.g. `llama3.2:latest`.
    pub name: String,
    pub size: Option<u64>,
    pub modified_at: Option<String>,
    pub digest: Option<String>,
    pub family: Option<String>,
    pub parameter_size: Option<String>,
    pub quantization_level: Option<String>,
}

/// A provider speaking Ollama's native chat API. Needs no key; when one is given it is sent
/// as a bearer token (for Ollama behind an authenticating proxy).
#[derive(Debug, Clone)]
pub struct Ollama {
    name: String,
    base: String,
    timeout: Duration,
    headers: HeaderMap,
    client: reqwest::Client,
}

impl Ollama {
    pub fn new(config: OllamaConfig) -> Result<Self, BuildError> {
        let invalid = |reason: String| BuildError::Invalid {
            name: config.name.clone(),
            reason,
        };
        Ok(Self {
            headers: http::header_map(&config.headers).map_err(invalid)?,
            client: http::client(config.timeout).map_err(invalid)?,
            base: config.api_base.trim_end_matches('/').to_owned(),
            timeout: config.timeout,
            name: config.name,
        })
    }

    /// The models installed on the server.
    pub async fn list_models(&self) -> Result<Vec<LocalModel>> {
        self.list_models_with_key(None).await
    }

    /// The models installed on a server behind an authenticating proxy.
    pub async fn list_models_with_key(&self, key: Option<&Secret>) -> Result<Vec<LocalModel>> {
        let request = self.authorized(
            self.client
                .get(http::endpoint(&self.base, "api/tags"))
                .headers(self.headers.clone()),
            key,
        )?;
        let response = http::send(&self.name, request, self.timeout).await?;
        if !response.status().is_success() {
            return Err(http::error_from_response(
                &self.name,
                response,
                key,
                self.timeout,
                convert::error_detail,
            )
            .await);
        }
        let body = http::read_body(&self.name, response, self.timeout).await?;
        let tags: Tags = serde_json::from_slice(&body).map_err(|e| {
            Error::upstream_stream(&self.name, format!("the model list is not valid: {e}"))
        })?;
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

    fn authorized(
        &self,
        request: reqwest::RequestBuilder,
        key: Option<&Secret>,
    ) -> Result<reqwest::RequestBuilder> {
        Ok(match key.filter(|k| !k.expose().is_empty()) {
            Some(key) => request.header(reqwest::header::AUTHORIZATION, http::bearer(key)?),
            None => request,
        })
    }

    async fn post(&self, call: &ProviderCall<'_>, body: &ChatBody) -> Result<reqwest::Response> {
        let request = self.authorized(
            self.client
                .post(http::endpoint(&self.base, "api/chat"))
                .headers(self.headers.clone())
                .json(body),
            call.api_key,
        )?;
        let response = http::send(&self.name, request, self.timeout).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(http::error_from_response(
                &self.name,
                response,
                call.api_key,
                self.timeout,
                convert::error_detail,
            )
            .await)
        }
    }
}

#[async_trait]
impl Provider for Ollama {
    fn name(&self) -> &str {
        &self.name
    }

    fn requires_key(&self) -> bool {
        false
    }

    async fn chat(&self, call: ProviderCall<'_>) -> Result<ChatResponse> {
        let body = convert::to_wire(call.request, false)?;
        let exchange = async {
            let response = self.post(&call, &body).await?;
            http::read_body(&self.name, response, self.timeout).await
        };
        let bytes = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Error::upstream_timeout(&self.name))??;
        let line: ChatLine = serde_json::from_slice(&bytes).map_err(|e| {
            Error::upstream_stream(
                &self.name,
                format!("the answer is not a chat response: {e}"),
            )
        })?;
        if let Some(message) = line.error {
            return Err(Error::from_upstream_status(
                &self.name,
                500,
                &http::scrub(&message, call.api_key),
            ));
        }
        Ok(convert::from_wire(line, http::unix_now()))
    }

    async fn chat_stream(&self, call: ProviderCall<'_>) -> Result<ChunkStream> {
        let body = convert::to_wire(call.request, true)?;
        let response = self.post(&call, &body).await?;
        let decoder = LineDecoder::new(&self.name, &call.request.model, http::unix_now());
        Ok(http::chunk_stream(
            stream::lines(&self.name, response, self.timeout),
            decoder,
        ))
    }
}
