//! Building responses: JSON bodies and OpenAI-shaped errors.
//!
//! Contract: docs/http-api.md#errors

use http::header::{HeaderMap, IntoHeaderName};
use http::{HeaderValue, Response, StatusCode, header};
use llmgate_core::Error;
use serde::Serialize;

pub(crate) use crate::response_body::Body;
use crate::response_body::full;

/// A JSON response; a value that cannot be serialized becomes a 500.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut response = Response::new(full(bytes));
            // Room for a chat answer's headers (route, cost, request id) without a regrowth.
            *response.headers_mut() = HeaderMap::with_capacity(16);
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(error) => {
            tracing::error!(%error, "serializing a response failed");
            error_response(&Error::internal("The response could not be encoded."))
        }
    }
}

/// The error as OpenAI's JSON error body, with its status and `Retry-After`.
pub(crate) fn error_response(error: &Error) -> Response<Body> {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error_with_status(error, status)
}

/// The error's body under another status (405 has no kind of its own).
pub(crate) fn error_with_status(error: &Error, status: StatusCode) -> Response<Body> {
    let mut response = json(status, &error.to_json());
    if status == StatusCode::REQUEST_TIMEOUT {
        // The rest of a slow body may still be on its way: the connection cannot be reused.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(after) = error.retry_after() {
        // Round up: `Retry-After: 0` would invite an immediate retry.
        let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    response
}

/// Set a header when the value is a valid header value; skip it otherwise. A [`http::HeaderName`]
/// constant costs less than a `&'static str` (no parsing, no copy of the name per response).
pub(crate) fn set_header(response: &mut Response<Body>, name: impl IntoHeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let error = Error::new(llmgate_core::ErrorKind::RateLimited, "slow down")
            .with_retry_after(Duration::from_millis(1500));
        let response = error_response(&error);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
