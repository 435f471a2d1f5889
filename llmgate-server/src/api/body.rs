//! Reading a request body under the configured size and time limits.
//!
//! Contract: docs/http-api.md#limits

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use llmgate_core::{Error, ErrorKind};

use crate::config::ServerConfig;

fn too_large(limit: u64) -> Error {
    Error::new(
        ErrorKind::RequestTooLarge,
        format!("The request body is larger than the limit of {limit} bytes."),
    )
    .with_code("request_too_large")
}

fn too_slow(timeout: Duration) -> Error {
    Error::new(
        ErrorKind::RequestTimeout,
        format!(
            "The request body did not arrive within {} ms.",
            timeout.as_millis()
        ),
    )
    .with_code("request_timeout")
}

/// The whole body within `server.max_body_bytes` and `server.body_read_timeout_ms`: 413 when
/// it is (or announces to be) larger, 408 when it comes too slowly (a client trickling a body
/// would otherwise hold its connection and a task forever).
pub(crate) async fn read_limited(
    request: Request<Incoming>,
    settings: &ServerConfig,
) -> Result<Bytes, Error> {
    let timeout = Duration::from_millis(settings.body_read_timeout_ms);
    tokio::time::timeout(timeout, read_within(request, settings.max_body_bytes))
        .await
        .map_err(|_| too_slow(timeout))?
}

async fn read_within(request: Request<Incoming>, limit: u64) -> Result<Bytes, Error> {
    let announced = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|length| length > limit) {
        return Err(too_large(limit));
    }
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(request.into_body(), cap).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limit)),
        Err(error) => {
            tracing::debug!(%error, "reading a request body failed");
            Err(Error::invalid_request(
                "The request body could not be read.",
            ))
        }
    }
}
