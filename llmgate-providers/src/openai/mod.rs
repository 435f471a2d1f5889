//! The OpenAI chat completions wire family: OpenAI itself and every compatible vendor.

mod convert;
mod stream;
mod wire;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use llmgate_core::{
    Provider, Result,
    chat::ChatResponse,
    provider::{ChunkStream, ProviderCall},
};
use reqwest::header::{self, HeaderValue};

use crate::chunks;
use crate::error::BuildError;
use crate::http::{self, Connection};
use crate::presets::Quirks;
use stream::EventDecoder;

/// Configuration of one OpenAI-compatible upstream.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The configured provider name.
    pub name: String,
    /// Base URL up to and including the version, e.g. `https://api.openai.com/v1`.
    pub api_base: String,
    /// Whole-request timeout (for streams: until the response head, then between reads).
    pub timeout: Duration,
    /// Extra headers for every request.
    pub headers: BTreeMap<String, String>,
}

/// A provider speaking OpenAI's chat completions protocol.
#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    connection: Connection,
    endpoint: reqwest::Url,
    quirks: Quirks,
}

impl OpenAiCompatible {
    /// Validate the configuration and build the provider's pooled HTTP client.
    pub fn new(config: OpenAiConfig) -> std::result::Result<Self, BuildError> {
        let invalid = |reason: &str| BuildError::Invalid {
            name: config.name.clone(),
            reason: reason.to_owned(),
        };
        let url = http::endpoint(&config.api_base, "chat/completions");
        let endpoint = reqwest::Url::parse(&url)
            .map_err(|e| invalid(&format!("api_base is not a valid URL: {e}")))?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(invalid("api_base must be an http:// or https:// URL"));
        }
        let mut connection = Connection::new(
            &config.name,
            config.timeout,
            &config.headers,
            convert::error_detail,
        )?;
        connection.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(Self {
            connection,
            endpoint,
            quirks: Quirks::default(),
        })
    }

    /// Whether calls need a key (false for local servers such as vLLM). Default: true.
    pub fn with_requires_key(mut self, requires_key: bool) -> Self {
        self.connection.requires_key = requires_key;
        self
    }

    /// How this upstream differs from OpenAI's protocol as written (see [`crate::Preset`]).
    /// Default: no quirks.
    pub fn with_quirks(mut self, quirks: Quirks) -> Self {
        self.quirks = quirks;
        self
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    fn request(
        &self,
        call: &ProviderCall<'_>,
        accept: &'static str,
    ) -> Result<reqwest::RequestBuilder> {
        let body = convert::request_body(call.request, self.quirks)?;
        let mut headers = self.connection.headers.clone();
        headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
        if let Some(key) = call.api_key {
            headers.insert(header::AUTHORIZATION, http::bearer(key)?);
        }
        Ok(self
            .connection
            .client
            .post(self.endpoint.clone())
            .headers(headers)
            .body(body))
    }
}

fn is_json(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"))
}

#[async_trait]
impl Provider for OpenAiCompatible {
    fn name(&self) -> &str {
        &self.connection.name
    }

    fn requires_key(&self) -> bool {
        self.connection.requires_key
    }

    async fn chat(&self, call: ProviderCall<'_>) -> Result<ChatResponse> {
        let request = self.request(&call, "application/json")?;
        let body = self.connection.send_for_body(call.api_key, request).await?;
        convert::response_from_wire(self.name(), &body, call.api_key)
    }

    async fn chat_stream(&self, call: ProviderCall<'_>) -> Result<ChunkStream> {
        let request = self.request(&call, "text/event-stream")?;
        let response = self.connection.send(call.api_key, request).await?;
        if is_json(&response) {
            // The upstream ignored `stream: true` and answered whole: replay it as chunks.
            let body = self.connection.read_body(response).await?;
            let whole = convert::response_from_wire(self.name(), &body, call.api_key)?;
            return Ok(chunks::replay(convert::response_to_chunks(whole)));
        }
        let decoder = EventDecoder::new(self.connection.name.clone(), call.api_key.cloned());
        Ok(chunks::chunk_stream(
            self.connection.sse_events(response),
            decoder,
        ))
    }
}

/// An OpenAI SSE body as chunks, decoded exactly as a streamed upstream body is (less the
/// idle timer). For the criterion benches in `benches/` only; not part of the API.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub fn decode_sse_for_bench<S>(bytes: S) -> ChunkStream
where
    S: futures::Stream<Item = std::result::Result<bytes::Bytes, std::io::Error>> + Send + 'static,
{
    use futures::StreamExt;
    let events = sse_stream::SseByteStream::new(bytes)
        .map(|event| event.map_err(|error| llmgate_core::Error::upstream_stream("bench", error)));
    chunks::chunk_stream(events, EventDecoder::new("bench".into(), None))
}
