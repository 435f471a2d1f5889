//! Anthropic's Messages API (`POST {base}/v1/messages`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use llmgate_core::{Gateway, catalog::Deployment, keys::Secret};
//! use llmgate_providers::UpstreamConfig;
//! use llmgate_providers::anthropic::{Anthropic, DEFAULT_API_BASE};
//!
//! let claude = Anthropic::new(UpstreamConfig::new("anthropic", DEFAULT_API_BASE)).unwrap();
//! let gateway = Gateway::builder()
//!     .provider(Arc::new(claude))
//!     .platform_key("anthropic", Secret::new("sk-ant-..."))
//!     .model(Deployment::new("claude", "anthropic", "claude-3-5-haiku-latest"))
//!     .build();
//! # drop(gateway);
//! ```

mod convert;
mod passthrough;
mod stream;
mod wire;

use ::http::Uri;
use ::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use async_trait::async_trait;
use llmgate_core::{
    Error, Provider, Result,
    chat::ChatResponse,
    provider::{ChunkStream, ProviderCall},
};

use crate::chunks;
use crate::client::RequestBuilder;
use crate::error::BuildError;
use crate::http::{self, Connection};
use crate::upstream::UpstreamConfig;
use stream::EventDecoder;
use wire::{MessagesRequest, MessagesResponse};

/// Anthropic's key header, named once (a name given as text is parsed per request).
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Where Anthropic's API lives.
pub const DEFAULT_API_BASE: &str = crate::family::ANTHROPIC_API_BASE;
/// The API version this adapter speaks.
pub const API_VERSION: &str = "2023-06-01";

/// A provider speaking Anthropic's Messages API.
#[derive(Debug, Clone)]
pub struct Anthropic {
    connection: Connection,
    /// `{base}/v1/messages`, parsed once.
    url: Uri,
    /// `{base}/v1/messages/count_tokens`, parsed once.
    count_url: Uri,
}

impl Anthropic {
    /// A provider for this account; fails on a bad base URL or header. Makes no network call.
    pub fn new(config: UpstreamConfig) -> Result<Self, BuildError> {
        let messages = messages_url(&config.api_base);
        let url = http::parse_endpoint(&config.name, &messages)?;
        let count_url = http::parse_endpoint(&config.name, &format!("{messages}/count_tokens"))?;
        let mut connection = Connection::new(&config, convert::error_detail)?;
        let headers = &mut connection.headers;
        headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Self {
            connection,
            url,
            count_url,
        })
    }

    /// Whether calls need a key (false for a keyless Anthropic-compatible server on the
    /// operator's machines). Default: true.
    pub fn with_requires_key(mut self, requires_key: bool) -> Self {
        self.connection.requires_key = requires_key;
        self
    }

    fn request(
        &self,
        call: &ProviderCall<'_>,
        body: &MessagesRequest,
    ) -> Result<RequestBuilder<'_>> {
        let request = self
            .connection
            .client
            .post(self.url.clone())
            .headers(self.connection.request_headers())
            .json(body);
        Ok(match call.api_key {
            Some(key) => request.header(X_API_KEY, http::sensitive(key)?),
            None => request,
        })
    }
}

impl Anthropic {
    /// The client's own Messages body as the upstream request, with its protocol headers.
    fn native_request(
        &self,
        call: &ProviderCall<'_>,
        native: &llmgate_core::chat::NativeBody,
        body: Vec<u8>,
    ) -> Result<RequestBuilder<'_>> {
        self.native_request_to(self.url.clone(), call, native, body)
    }

    fn native_request_to(
        &self,
        url: Uri,
        call: &ProviderCall<'_>,
        native: &llmgate_core::chat::NativeBody,
        body: Vec<u8>,
    ) -> Result<RequestBuilder<'_>> {
        let mut headers = self.connection.request_headers();
        for (name, value) in passthrough::headers(native) {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        if let Some(key) = call.api_key {
            headers.insert(X_API_KEY, http::sensitive(key)?);
        }
        Ok(self.connection.client.post(url).headers(headers).body(body))
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
        &self.connection.name
    }

    fn requires_key(&self) -> bool {
        self.connection.requires_key
    }

    async fn chat(&self, call: ProviderCall<'_>) -> Result<ChatResponse> {
        if let Some(native) = passthrough::native(call.request) {
            let body = passthrough::body(native, call.request, false)?;
            let request = self.native_request(&call, native, body)?;
            let bytes = self.connection.send_for_body(call.api_key, request).await?;
            let answer: MessagesResponse = serde_json::from_slice(&bytes).map_err(|e| {
                Error::upstream_stream(
                    self.name(),
                    format!("the answer is not a Messages response: {e}"),
                )
            })?;
            return Ok(passthrough::whole(
                convert::from_wire(answer, http::unix_now()),
                bytes,
            ));
        }
        let request = self.request(&call, &convert::to_wire(call.request, false)?)?;
        let answer: MessagesResponse = self
            .connection
            .send_for_json(call.api_key, request, "a Messages response")
            .await?;
        Ok(convert::from_wire(answer, http::unix_now()))
    }

    async fn chat_stream(&self, call: ProviderCall<'_>) -> Result<ChunkStream> {
        if let Some(native) = passthrough::native(call.request) {
            let body = passthrough::body(native, call.request, true)?;
            let request = self.native_request(&call, native, body)?;
            let response = self.connection.send(call.api_key, request).await?;
            let inner = EventDecoder::new(self.name(), &call.request.model, http::unix_now());
            return Ok(chunks::chunk_stream(
                self.connection.sse_events(response),
                passthrough::Passthrough { inner },
            ));
        }
        let request = self.request(&call, &convert::to_wire(call.request, true)?)?;
        let response = self.connection.send(call.api_key, request).await?;
        let decoder = EventDecoder::new(self.name(), &call.request.model, http::unix_now());
        Ok(chunks::chunk_stream(
            self.connection.sse_events(response),
            decoder,
        ))
    }

    async fn count_tokens(&self, call: ProviderCall<'_>) -> Result<Option<u64>> {
        self.count_native(&call).await
    }
}

/// The upstream's own count, for a request that came in Anthropic's protocol (its body is what
/// the counting endpoint takes); other requests are left to the gateway's estimate.
impl Anthropic {
    async fn count_native(&self, call: &ProviderCall<'_>) -> Result<Option<u64>> {
        let Some(native) = passthrough::native(call.request) else {
            return Ok(None);
        };
        let body = passthrough::count_body(native, call.request)?;
        let request = self.native_request_to(self.count_url.clone(), call, native, body)?;
        let count: passthrough::TokenCount = self
            .connection
            .send_for_json(call.api_key, request, "a token count")
            .await?;
        Ok(Some(count.input_tokens))
    }
}

/// A request as the JSON body sent to the Messages API. For the criterion benches in
/// `benches/` only; not part of the API.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub fn request_json_for_bench(request: &llmgate_core::chat::ChatRequest) -> Result<Vec<u8>> {
    serde_json::to_vec(&convert::to_wire(request, false)?)
        .map_err(|error| llmgate_core::Error::internal(error.to_string()))
}

/// A Messages API answer as a core response, as a whole answer is read. For the criterion
/// benches in `benches/` only; not part of the API.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub fn response_from_json_for_bench(body: &[u8]) -> Result<ChatResponse> {
    let answer: MessagesResponse = serde_json::from_slice(body)
        .map_err(|error| llmgate_core::Error::upstream_stream("bench", error))?;
    Ok(convert::from_wire(answer, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_that_is_not_an_http_url_is_refused_when_built() {
        for base in ["not a url", "ftp://example.com"] {
            let built = Anthropic::new(UpstreamConfig::new("claude", base));
            assert!(built.is_err(), "{base}");
        }
        assert!(Anthropic::new(UpstreamConfig::new("claude", "http://127.0.0.1:9")).is_ok());
    }

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
