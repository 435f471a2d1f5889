//! The OpenAI chat completions wire family: OpenAI itself and every compatible vendor.

mod convert;
mod stream;
mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::TryStreamExt;
use llmgate_core::{
    ChatResponse, ChunkStream, Error, ErrorKind, Provider, ProviderCall, Result, Secret,
};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::spec::BuildError;
use stream::BodyFailure;

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
    name: Arc<str>,
    endpoint: reqwest::Url,
    timeout: Duration,
    headers: HeaderMap,
    requires_key: bool,
    client: reqwest::Client,
}

/// Error bodies beyond this size are cut before being read for a message.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// Connecting never waits longer than this, whatever the request timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl OpenAiCompatible {
    /// Validate the configuration and build the provider's pooled HTTP client.
    pub fn new(config: OpenAiConfig) -> std::result::Result<Self, BuildError> {
        let invalid = |reason: String| BuildError::Invalid {
            name: config.name.clone(),
            reason,
        };
        let base = config.api_base.trim_end_matches('/');
        let endpoint = reqwest::Url::parse(&format!("{base}/chat/completions"))
            .map_err(|e| invalid(format!("api_base is not a valid URL: {e}")))?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(invalid(
                "api_base must be an http:// or https:// URL".to_owned(),
            ));
        }
        if config.timeout.is_zero() {
            return Err(invalid("timeout must be greater than zero".to_owned()));
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("header name `{name}` is not valid")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("the value of header `{name}` is not valid")))?;
            headers.insert(name, value);
        }

        // reqwest is built without a default crypto provider; an earlier install wins.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("llmgate/", env!("CARGO_PKG_VERSION")))
            .tcp_nodelay(true)
            .connect_timeout(config.timeout.min(MAX_CONNECT_TIMEOUT))
            .pool_idle_timeout(Duration::from_secs(90))
            // A redirected POST is either dropped to a GET or re-sent: neither is wanted.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| invalid(format!("cannot build the HTTP client: {}", e.without_url())))?;

        Ok(Self {
            name: config.name.into(),
            endpoint,
            timeout: config.timeout,
            headers,
            requires_key: true,
            client,
        })
    }

    /// Whether calls need a key (false for local servers such as vLLM). Default: true.
    pub fn with_requires_key(mut self, requires_key: bool) -> Self {
        self.requires_key = requires_key;
        self
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    fn post(
        &self,
        call: &ProviderCall<'_>,
        accept: &'static str,
    ) -> Result<reqwest::RequestBuilder> {
        let body = convert::request_body(call.request)?;
        let mut headers = self.headers.clone();
        headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
        if let Some(key) = call.api_key {
            headers.insert(header::AUTHORIZATION, bearer(&self.name, key)?);
        }
        Ok(self
            .client
            .post(self.endpoint.clone())
            .headers(headers)
            .body(body))
    }

    fn transport_error(&self, error: reqwest::Error, key: Option<&Secret>) -> Error {
        convert::transport_error(&self.name, error, key)
    }

    /// The error for a non-2xx answer, reading at most [`MAX_ERROR_BODY_BYTES`] of its body.
    async fn status_error(&self, mut response: reqwest::Response, key: Option<&Secret>) -> Error {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        // A body that fails or stalls only costs us the detail, not the error.
        let read = async {
            while body.len() < MAX_ERROR_BODY_BYTES {
                match response.chunk().await {
                    Ok(Some(bytes)) => body.extend_from_slice(&bytes),
                    _ => break,
                }
            }
        };
        let _ = tokio::time::timeout(self.timeout, read).await;
        body.truncate(MAX_ERROR_BODY_BYTES);
        convert::status_error(&self.name, status, &headers, &body, key, SystemTime::now())
    }
}

/// `Authorization: Bearer KEY`, marked sensitive so it never shows in debug output.
fn bearer(provider: &str, key: &Secret) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
        Error::new(
            ErrorKind::Upstream,
            format!("The API key for {provider} contains characters not allowed in a header."),
        )
        .with_code("invalid_api_key")
    })?;
    value.set_sensitive(true);
    Ok(value)
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
        &self.name
    }

    fn requires_key(&self) -> bool {
        self.requires_key
    }

    async fn chat(&self, call: ProviderCall<'_>) -> Result<ChatResponse> {
        let request = self.post(&call, "application/json")?.timeout(self.timeout);
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_error(e, call.api_key))?;
        if !response.status().is_success() {
            return Err(self.status_error(response, call.api_key).await);
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e, call.api_key))?;
        convert::response_from_wire(&self.name, &body, call.api_key)
    }

    async fn chat_stream(&self, call: ProviderCall<'_>) -> Result<ChunkStream> {
        let request = self.post(&call, "text/event-stream")?;
        let response = tokio::time::timeout(self.timeout, request.send())
            .await
            .map_err(|_| Error::upstream_timeout(&self.name))?
            .map_err(|e| self.transport_error(e, call.api_key))?;
        if !response.status().is_success() {
            return Err(self.status_error(response, call.api_key).await);
        }
        if is_json(&response) {
            // The upstream ignored `stream: true` and answered whole: replay it as chunks.
            let body = tokio::time::timeout(self.timeout, response.bytes())
                .await
                .map_err(|_| Error::upstream_timeout(&self.name))?
                .map_err(|e| self.transport_error(e, call.api_key))?;
            let whole = convert::response_from_wire(&self.name, &body, call.api_key)?;
            return Ok(stream::from_chunks(convert::response_to_chunks(whole)));
        }
        let key = call.api_key.cloned();
        let bytes = response
            .bytes_stream()
            .map_err(|e| BodyFailure::Transport(convert::describe(&e.without_url())));
        Ok(stream::decode_sse(
            self.name.clone(),
            key,
            bytes,
            self.timeout,
        ))
    }
}
