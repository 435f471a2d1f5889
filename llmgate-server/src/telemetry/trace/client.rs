//! The OTLP exporter's HTTP client: the workspace's reqwest, so that exporting adds no second
//! HTTP stack. Each export is bounded by the queue's timeout, and by the client's own.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use opentelemetry_http::{HttpClient, HttpError};

#[derive(Debug, Clone)]
pub(super) struct ReqwestClient(reqwest::Client);

impl ReqwestClient {
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        // For an https collector; a no-op when the process installed one already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map(Self)
    }
}

#[async_trait::async_trait]
impl HttpClient for ReqwestClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let response = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(reqwest::Error::without_url)?;
        let mut answer = Response::builder().status(response.status());
        if let Some(headers) = answer.headers_mut() {
            headers.extend(response.headers().clone());
        }
        let body = response
            .bytes()
            .await
            .map_err(reqwest::Error::without_url)?;
        Ok(answer.body(body)?)
    }
}
