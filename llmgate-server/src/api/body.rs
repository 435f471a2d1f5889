//! Reading a request body under the configured size limit.

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use llmgate_core::{Error, ErrorKind};

fn too_large(limit: u64) -> Error {
    Error::new(
        ErrorKind::RequestTooLarge,
        format!("The request body is larger than the limit of {limit} bytes."),
    )
    .with_code("request_too_large")
}

/// The whole body, or 413 when it is (or announces to be) larger than `limit`.
pub(crate) async fn read_limited(request: Request<Incoming>, limit: u64) -> Result<Bytes, Error> {
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
