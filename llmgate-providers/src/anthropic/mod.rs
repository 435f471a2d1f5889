//! Anthropic's Messages API (`POST {base}/v1/messages`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use llmgate_core::{Deployment, Gateway, Secret};
//! use llmgate_providers::anthropic::{Anthropic, AnthropicConfig};
//!
//! let claude = Anthropic::new(AnthropicConfig::new("anthropic")).unwrap();
//! let gateway = Gateway::builder()
//!     .provider(Arc::new(claude))
//!     .platform_key("anthropic", Secret::new("sk-ant-..."))
//!     .model(Deployment::new("claude", "anthropic", "claude-3-5-haiku-latest"))
//!     .build();
//! # drop(gateway);
//! ```

mod convert;
mod stream;
mod wire;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use llmgate_core::{ChatResponse, ChunkStream, Error, Provider, ProviderCall, Result};
use reqwest::header::{HeaderMap, HeaderValue};

use crate::http;
use crate::spec::BuildError;
use stream::EventDecoder;
use wire::{MessagesRequest, MessagesResponse};

/// Where Anthropic's API lives.
pub const DEFAULT_API_BASE: &str = "https://api.anthropic.com";
/// The API version this adapter speaks.
pub const API_VERSION: &str = "2023-06-01";

/// Configuration of one Anthropic upstream.
#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    /// The configured provider name.
    pub name: String,
    /// Base URL, e.g. `https://api.anthropic.com` (a trailing `/v1` is accepted too).
    pub api_base: String,
    /// For whole answers the limit on the whole exchange; for streams the limit until the
    /// response head, then on the silence between two network reads.
    pub timeout: Duration,
    /// Extra headers for every request (e.g. `anthropic-beta`).
    pub headers: BTreeMap<String, String>,
}

impl AnthropicConfig {
    /// The public API with a ten-minute timeout and no extra headers.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            api_base: DEFAULT_API_BASE.to_owned(),
            timeout: Duration::from_secs(600),
            headers: BTreeMap::new(),
        }
    }
}

/// A provider speaking Anthropic's Messages API.
#[derive(Debug, Clone)]
pub struct Anthropic {
    name: String,
    url: String,
    timeout: Duration,
    headers: HeaderMap,
    client: reqwest::Client,
}

impl Anthropic {
    pub fn new(config: AnthropicConfig) -> Result<Self, BuildError> {
        let invalid = |reason: String| BuildError::Invalid {
            name: config.name.clone(),
            reason,
        };
        let mut headers = http::header_map(&config.headers).map_err(invalid)?;
        headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        Ok(Self {
            url: messages_url(&config.api_base),
            timeout: config.timeout,
            headers,
            client: http::client(config.timeout).map_err(invalid)?,
            name: config.name,
        })
    }

    async fn post(
        &self,
        call: &ProviderCall<'_>,
        body: &MessagesRequest,
    ) -> Result<reqwest::Response> {
        let mut request = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .json(body);
        if let Some(key) = call.api_key {
            request = request.header("x-api-key", http::sensitive(key)?);
        }
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

/// `{base}/v1/messages`; a base that already ends in `/v1` is accepted too.
fn messages_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1") {
        http::endpoint(base, "messages")
    } else {
        http::endpoint(base, "v1/messages")
    }
}

#[async_trait]
impl Provider for Anthropic {
    fn name(&self) -> &str {
        &self.name
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
        let answer: MessagesResponse = serde_json::from_slice(&bytes).map_err(|e| {
            Error::upstream_stream(
                &self.name,
                format!("the answer is not a Messages response: {e}"),
            )
        })?;
        Ok(convert::from_wire(answer, http::unix_now()))
    }

    async fn chat_stream(&self, call: ProviderCall<'_>) -> Result<ChunkStream> {
        let body = convert::to_wire(call.request, true)?;
        let response = self.post(&call, &body).await?;
        let decoder = EventDecoder::new(&self.name, &call.request.model, http::unix_now());
        Ok(http::chunk_stream(
            http::sse_events(&self.name, response, self.timeout),
            decoder,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_url_accepts_a_base_with_or_without_v1() {
        for base in [
            "https://api.anthropic.com",
            "https://api.anthropic.com/",
            "https://api.anthropic.com/v1",
            "https://api.anthropic.com/v1/",
        ] {
            assert_eq!(
                messages_url(base),
                "https://api.anthropic.com/v1/messages",
                "{base}"
            );
        }
    }
}
