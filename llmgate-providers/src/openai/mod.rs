//! The OpenAI chat completions wire family: OpenAI itself and every compatible vendor.

mod convert;
mod embed;
mod responses;
mod stream;
mod wire;

use ::http::Uri;
use ::http::header::{self, HeaderValue};
use async_trait::async_trait;
use llmgate_core::{
    Provider, Result,
    chat::ChatResponse,
    embeddings::EmbeddingResponse,
    keys::Secret,
    provider::{ChunkStream, EmbedCall, ProviderCall},
};

use crate::chunks;
use crate::client::{RequestBuilder, Response};
use crate::embedding::with_usage;
use crate::error::BuildError;
use crate::http::{self, Connection};
use crate::presets::Quirks;
use crate::upstream::UpstreamConfig;
pub use embed::EmbeddingsApi;
use stream::EventDecoder;

/// A provider speaking OpenAI's chat completions protocol.
#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    connection: Connection,
    endpoint: Uri,
    quirks: Quirks,
    /// The configured base URL, for the embeddings endpoint.
    api_base: String,
    embeddings_api: EmbeddingsApi,
    /// Whether the upstream speaks the Responses API (`{api_base}/responses`) too.
    responses_api: bool,
}

impl OpenAiCompatible {
    /// Validate the configuration and build the provider's pooled HTTP client.
    pub fn new(config: UpstreamConfig) -> std::result::Result<Self, BuildError> {
        let url = http::endpoint(&config.api_base, "chat/completions");
        let endpoint = http::parse_endpoint(&config.name, &url)?;
        let mut connection = Connection::new(&config, convert::error_detail)?;
        connection.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(Self {
            connection,
            endpoint,
            quirks: Quirks::default(),
            api_base: config.api_base,
            embeddings_api: EmbeddingsApi::default(),
            responses_api: false,
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

    /// Which embeddings API the upstream speaks. Default: OpenAI's `/embeddings`.
    pub fn with_embeddings_api(mut self, api: EmbeddingsApi) -> Self {
        self.embeddings_api = api;
        self
    }

    /// Whether the upstream also speaks OpenAI's Responses API at `{api_base}/responses`
    /// (OpenAI itself does): a Responses request a client sent then goes there as it came, and
    /// its answer comes back as written. Default: false (such requests are translated to chat
    /// completions like any other).
    pub fn with_responses_api(mut self, responses_api: bool) -> Self {
        self.responses_api = responses_api;
        self
    }

    /// The client's Responses body, when this upstream should get it as it came.
    fn native<'a>(&self, call: &ProviderCall<'a>) -> Option<&'a llmgate_core::chat::NativeBody> {
        responses::native(call.request).filter(|_| self.responses_api)
    }

    /// A POST of the client's Responses body to `{api_base}/responses`.
    fn responses_request(
        &self,
        call: &ProviderCall<'_>,
        native: &llmgate_core::chat::NativeBody,
        stream: bool,
    ) -> Result<RequestBuilder<'_>> {
        let body = responses::body(native, call.request, stream)?;
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let url = http::endpoint(&self.api_base, "responses");
        self.post(url, accept, call.api_key, body)
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> String {
        self.endpoint.to_string()
    }

    fn request(&self, call: &ProviderCall<'_>, accept: &'static str) -> Result<RequestBuilder<'_>> {
        let body = convert::request_body(call.request, self.quirks)?;
        self.post(self.endpoint.clone(), accept, call.api_key, body)
    }

    /// A POST of `body` with the configured headers, `accept`, and the key as a bearer token.
    fn post(
        &self,
        url: impl TryInto<Uri, Error: std::fmt::Display>,
        accept: &'static str,
        key: Option<&Secret>,
        body: impl Into<bytes::Bytes>,
    ) -> Result<RequestBuilder<'_>> {
        let mut headers = self.connection.request_headers();
        headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
        if let Some(key) = key {
            headers.insert(header::AUTHORIZATION, http::bearer(key)?);
        }
        Ok(self.connection.client.post(url).headers(headers).body(body))
    }
}

fn is_json(response: &Response) -> bool {
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
        if let Some(native) = self.native(&call) {
            let request = self.responses_request(&call, native, false)?;
            let body = self.connection.send_for_body(call.api_key, request).await?;
            return responses::whole(self.name(), body);
        }
        let request = self.request(&call, "application/json")?;
        let body = self.connection.send_for_body(call.api_key, request).await?;
        convert::response_from_wire(self.name(), &body, call.api_key)
    }

    async fn chat_stream(&self, call: ProviderCall<'_>) -> Result<ChunkStream> {
        if let Some(native) = self.native(&call) {
            let request = self.responses_request(&call, native, true)?;
            let response = self.connection.send(call.api_key, request).await?;
            let decoder =
                responses::EventDecoder::new(self.name().to_owned(), call.request.model.clone());
            return Ok(chunks::chunk_stream(
                self.connection.sse_events(response),
                decoder,
            ));
        }
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

    async fn embed(&self, call: EmbedCall<'_>) -> Result<EmbeddingResponse> {
        let api = self.embeddings_api;
        let (path, body) = embed::request_body(call.request, api)?;
        let url = http::endpoint(&self.api_base, path);
        let request = self.post(url, "application/json", call.api_key, body)?;
        let answer = self.connection.send_for_body(call.api_key, request).await?;
        let name = &self.connection.name;
        let response = embed::from_wire(name, api, &answer, &call.request.model)?;
        Ok(with_usage(response, &call.request.input))
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
