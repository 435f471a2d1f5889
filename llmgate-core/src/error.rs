//! The one error type of the core: it knows its kind, HTTP status and whether a retry may help.

use std::fmt;
use std::time::Duration;

/// What went wrong, at the granularity a client (and the router) needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request itself is wrong (400).
    InvalidRequest,
    /// No or bad credentials (401).
    Authentication,
    /// The balance cannot cover the request's hold (402).
    InsufficientCredits,
    /// The caller may not do this (403).
    PermissionDenied,
    /// Unknown model or resource (404).
    NotFound,
    /// The resource already exists (409), e.g. a user id taken.
    Conflict,
    /// The client did not send its request in time (408).
    RequestTimeout,
    /// Body over the limit (413).
    RequestTooLarge,
    /// The gateway's own rate limit (429).
    RateLimited,
    /// An upstream failed or answered with an error (502).
    Upstream,
    /// An upstream is overloaded or rate limited (503).
    UpstreamUnavailable,
    /// An upstream did not answer in time (504).
    UpstreamTimeout,
    /// A backend the gateway needs (database, cache) is unreachable (503).
    Unavailable,
    /// A bug or an unexpected state (500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status this kind is served with.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::InsufficientCredits => 402,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::RequestTimeout => 408,
            ErrorKind::RequestTooLarge => 413,
            ErrorKind::RateLimited => 429,
            ErrorKind::Upstream => 502,
            ErrorKind::UpstreamUnavailable | ErrorKind::Unavailable => 503,
            ErrorKind::UpstreamTimeout => 504,
            ErrorKind::Internal => 500,
        }
    }

    /// The OpenAI-style `type` field.
    pub fn type_name(self) -> &'static str {
        match self {
            // OpenAI has no conflict type; clients know this one, `code` says more.
            ErrorKind::InvalidRequest | ErrorKind::Conflict | ErrorKind::RequestTimeout => {
                "invalid_request_error"
            }
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::InsufficientCredits => "insufficient_credits",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::RequestTooLarge => "request_too_large",
            ErrorKind::RateLimited => "rate_limit_exceeded",
            ErrorKind::Upstream | ErrorKind::UpstreamUnavailable | ErrorKind::UpstreamTimeout => {
                "upstream_error"
            }
            ErrorKind::Unavailable => "service_unavailable",
            ErrorKind::Internal => "internal_error",
        }
    }
}

/// An error with everything needed to answer a client and decide on a retry.
///
/// Messages are written for the client: they never hold keys, SQL or upstream URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    param: Option<String>,
    code: Option<String>,
    retry_after: Option<Duration>,
    retryable: bool,
    upstream_status: Option<u16>,
}

/// The result of every fallible call in the core, with [`Error`] as its error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of this kind with a message for the client; upstream kinds start out retryable.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let retryable = matches!(
            kind,
            ErrorKind::Upstream | ErrorKind::UpstreamUnavailable | ErrorKind::UpstreamTimeout
        );
        Self {
            kind,
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
            retryable,
            upstream_status: None,
        }
    }

    /// The request is wrong (400); not retried.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// No or bad credentials (401).
    pub fn authentication(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Authentication, message)
    }

    /// The caller may not do this (403).
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, message)
    }

    /// The model is neither configured nor resolvable (404, code `model_not_found`, param `model`).
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            format!("The model `{model}` does not exist or is not configured on this gateway."),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    /// The balance cannot cover the request's hold (402); both amounts in micro-credits.
    pub fn insufficient_credits(needed_micros: i64, balance_micros: i64) -> Self {
        Self::new(
            ErrorKind::InsufficientCredits,
            format!(
                "Insufficient credits: this request may cost up to {needed_micros} micro-credits \
                 and the balance is {balance_micros}."
            ),
        )
        .with_code("insufficient_credits")
    }

    /// The resource already exists (409).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// A bug or an unexpected state (500); the message still must not leak internals.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// A backend the gateway needs (database, cache) is unreachable (503).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// An upstream's error answer. The status decides kind and retryability: 400-class answers
    /// are the request's fault and final; 401/403 are the key's; 408/409/429/5xx may succeed
    /// elsewhere.
    pub fn from_upstream_status(provider: &str, status: u16, detail: &str) -> Self {
        let detail = detail.trim();
        let message = if detail.is_empty() {
            format!("Upstream {provider} answered HTTP {status}.")
        } else {
            format!("Upstream {provider} answered HTTP {status}: {detail}")
        };
        let (kind, retryable) = match status {
            408 => (ErrorKind::UpstreamTimeout, true),
            401 | 403 => (ErrorKind::Upstream, true),
            409 | 425 => (ErrorKind::Upstream, true),
            429 | 503 | 529 => (ErrorKind::UpstreamUnavailable, true),
            400..=499 => (ErrorKind::InvalidRequest, false),
            _ => (ErrorKind::Upstream, true),
        };
        let mut error = Self::new(kind, message).with_code(upstream_code(status));
        error.retryable = retryable;
        error.upstream_status = Some(status);
        error
    }

    /// The upstream did not answer in time (504, retryable).
    pub fn upstream_timeout(provider: &str) -> Self {
        Self::new(
            ErrorKind::UpstreamTimeout,
            format!("Upstream {provider} did not answer in time."),
        )
        .with_code("upstream_timeout")
    }

    /// The upstream could not be reached at all (502, retryable).
    pub fn upstream_connect(provider: &str) -> Self {
        Self::new(
            ErrorKind::Upstream,
            format!("Could not reach upstream {provider}."),
        )
        .with_code("upstream_unreachable")
    }

    /// A stream that broke or sent garbage after it started.
    pub fn upstream_stream(provider: &str, what: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::Upstream,
            format!("The stream from upstream {provider} failed: {what}"),
        )
        .with_code("upstream_stream_error")
    }

    /// Name the request field at fault (OpenAI's `param`).
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Set a machine-readable code (OpenAI's `code`), e.g. `model_not_found`.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Tell the client (and the router) to wait this long before trying again.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Override whether another attempt may succeed.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Replace the message shown to the client.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The message for the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The request field at fault, if one is.
    pub fn param(&self) -> Option<&str> {
        self.param.as_deref()
    }

    /// The machine-readable code, if set.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// How long to wait before trying again, when known (e.g. from an upstream's `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Whether another attempt (here or on another deployment) may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The upstream's HTTP status, when this error is an upstream's answer.
    pub fn upstream_status(&self) -> Option<u16> {
        self.upstream_status
    }

    /// The error as OpenAI's JSON error body.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind.type_name(),
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

fn upstream_code(status: u16) -> &'static str {
    match status {
        401 | 403 => "upstream_auth_failed",
        429 => "upstream_rate_limited",
        503 | 529 => "upstream_overloaded",
        400..=499 => "upstream_rejected_request",
        _ => "upstream_failed",
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.type_name(), self.message)
    }
}

impl std::error::Error for Error {}

/// An error and its causes on one line (`outer: inner: innermost`), for a message or a log
/// line where the chain of `source`s would otherwise be lost.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_with_causes_is_one_line_outermost_first() {
        let outer = Wrapped(std::io::Error::other("connection refused"));
        assert_eq!(
            super::with_causes(&outer),
            "could not connect: connection refused"
        );
    }

    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("could not connect")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn upstream_statuses_map_to_kind_and_retryability() {
        let cases = [
            (400, ErrorKind::InvalidRequest, false, 400),
            (401, ErrorKind::Upstream, true, 502),
            (404, ErrorKind::InvalidRequest, false, 400),
            (429, ErrorKind::UpstreamUnavailable, true, 503),
            (500, ErrorKind::Upstream, true, 502),
            (503, ErrorKind::UpstreamUnavailable, true, 503),
            (529, ErrorKind::UpstreamUnavailable, true, 503),
        ];
        for (status, kind, retryable, served) in cases {
            let error = Error::from_upstream_status("p", status, "x");
            assert_eq!(error.kind(), kind, "status {status}");
            assert_eq!(error.is_retryable(), retryable, "status {status}");
            assert_eq!(error.status(), served, "status {status}");
        }
    }

    #[test]
    fn json_shape_is_openai_error() {
        let body = Error::model_not_found("nope").to_json();
        assert_eq!(body["error"]["type"], "not_found_error");
        assert_eq!(body["error"]["code"], "model_not_found");
        assert_eq!(body["error"]["param"], "model");
    }
}
