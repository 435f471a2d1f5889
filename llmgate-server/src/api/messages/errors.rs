//! Errors in Anthropic's shape, `{"type": "error", "error": {"type", "message"}}`, so its SDKs
//! raise their typed exceptions. The status and `retry-after` stay the gateway's own.

use http::Response;
use llmgate_core::Error;

use super::wire::{ErrorBody, StreamEvent};
use crate::api::response::{Body, error_response, json};

/// Anthropic's error type for an HTTP status.
fn kind(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

fn body(error: &Error) -> ErrorBody {
    ErrorBody {
        kind: kind(error.status()),
        message: error.message().to_owned(),
    }
}

/// The in-stream `error` event of a failure after the first byte.
pub(super) fn event(error: &Error) -> StreamEvent {
    StreamEvent::Error { error: body(error) }
}

/// The whole error response: the gateway's status and headers (`retry-after`), Anthropic's body.
pub(super) fn response(error: &Error) -> Response<Body> {
    let (parts, _) = error_response(error).into_parts();
    let (_, body) = json(parts.status, &event(error)).into_parts();
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use llmgate_core::ErrorKind;
    use std::time::Duration;

    #[test]
    fn statuses_map_to_anthropic_error_types() {
        for (status, expected) in [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (402, "billing_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (408, "invalid_request_error"),
            (413, "request_too_large"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "api_error"),
            (503, "overloaded_error"),
            (504, "timeout_error"),
            (529, "overloaded_error"),
        ] {
            assert_eq!(kind(status), expected, "{status}");
        }
    }

    #[tokio::test]
    async fn the_response_keeps_status_and_retry_after() {
        let error = Error::new(ErrorKind::RateLimited, "slow down")
            .with_retry_after(Duration::from_secs(3));
        let response = response(&error);
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "3");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"type": "error",
                               "error": {"type": "rate_limit_error", "message": "slow down"}})
        );
    }
}
