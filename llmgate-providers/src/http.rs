//! The HTTP plumbing every adapter shares: one client per provider, timeouts that know a stream
//! from a whole answer, upstream failures turned into core errors (the key scrubbed, the detail
//! clipped, `Retry-After` kept), and body streams whose failures say what happened.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ::http::Uri;
use ::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use llmgate_core::{Error, ErrorKind, Result, keys::Secret, with_causes};
use serde::de::DeserializeOwned;

use crate::client::{Client, ClientError, RequestBuilder, Response};
use crate::error::BuildError;
use crate::upstream::UpstreamConfig;

/// Longest upstream detail copied into an error message, in characters.
const MAX_DETAIL_CHARS: usize = 300;
/// Read at most this much of an error answer: a broken upstream may send megabytes of HTML.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Connecting never waits longer than this, whatever the request timeout.
const MAX_CONNECT_WAIT: Duration = Duration::from_secs(10);
/// Longest wait a `Retry-After` is believed for (a day); also keeps absurd values from
/// overflowing a `Duration`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// A client for one provider. Timeouts are applied per call (see [`Connection::send`] and
/// [`timed_body`])
/// rather than on the client, because a whole-request limit would cut long streams.
fn client(timeout: Duration) -> Result<Client, String> {
    if timeout.is_zero() {
        return Err("timeout must be greater than zero".to_owned());
    }
    // rustls is built without a default crypto provider; an earlier install wins.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::new(timeout.min(MAX_CONNECT_WAIT))
}

/// Configured extra headers, checked once when the provider is built.
fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a valid header name"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header `{name}` is not valid in a header"))?;
        map.insert(name, value);
    }
    Ok(map)
}

/// A key as a header value marked sensitive, so HTTP/2 never indexes it and debug output
/// hides it.
pub(crate) fn sensitive(key: &Secret) -> Result<HeaderValue> {
    header_secret(key.expose())
}

/// `Bearer KEY`, marked sensitive.
pub(crate) fn bearer(key: &Secret) -> Result<HeaderValue> {
    header_secret(&format!("Bearer {}", key.expose()))
}

fn header_secret(text: &str) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(text).map_err(|_| {
        Error::invalid_request("The API key contains characters that cannot be sent in a header.")
            .with_code("invalid_api_key")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// What every adapter holds for its upstream: the provider's name, one pooled client, the
/// configured headers, the timeout, whether calls need a key, and how to read the family's
/// error bodies.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub name: Arc<str>,
    pub client: Client,
    /// Sent on every request (the configured extras plus the family's own).
    pub headers: HeaderMap,
    /// For a whole answer the limit on the whole exchange; for a stream the limit until the
    /// response head, then on the silence between two network reads.
    pub timeout: Duration,
    pub requires_key: bool,
    /// Pulls the human-readable message out of the family's error body.
    error_detail: fn(&[u8]) -> Option<String>,
}

/// Headers a request adds to the configured ones, at most: accept, content type, the key
/// (one or two), passed-through vendor headers, `traceparent`, user agent and host.
const ADDED_HEADERS: usize = 10;

/// The W3C trace context header, named once (a name given as text is parsed per request).
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

impl Connection {
    /// Check the configured headers and build the client; a failure names the provider.
    pub fn new(
        config: &UpstreamConfig,
        error_detail: fn(&[u8]) -> Option<String>,
    ) -> Result<Self, BuildError> {
        let invalid = |reason: String| BuildError::Invalid {
            name: config.name.clone(),
            reason,
        };
        Ok(Self {
            name: config.name.as_str().into(),
            client: client(config.timeout).map_err(invalid)?,
            headers: header_map(&config.headers).map_err(invalid)?,
            timeout: config.timeout,
            requires_key: true,
            error_detail,
        })
    }

    /// A new request's headers: the configured ones, in a map with room for those every
    /// request adds. (A clone of the configured map has no room: each added header would
    /// grow it again.)
    pub fn request_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(self.headers.len() + ADDED_HEADERS);
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        headers
    }

    /// Send a request and wait, at most `timeout`, for a 2xx response head; any other status
    /// is turned into its core error, with `key` scrubbed from the upstream's words.
    /// A traced request also carries its attempt's W3C `traceparent`, so that the upstream's
    /// spans join the caller's trace.
    pub async fn send(
        &self,
        key: Option<&Secret>,
        request: RequestBuilder<'_>,
    ) -> Result<Response> {
        let request = match llmgate_core::trace::traceparent() {
            Some(traceparent) => request.header(TRACEPARENT, traceparent.as_bytes()),
            None => request,
        };
        let response = match tokio::time::timeout(self.timeout, request.send()).await {
            Err(_) => return Err(Error::upstream_timeout(&self.name)),
            Ok(Err(error)) => return Err(transport_error(&self.name, &error)),
            Ok(Ok(response)) => response,
        };
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(self.error_from_response(key, response).await)
        }
    }

    /// Send a request and read its whole 2xx body, all within `timeout`.
    pub async fn send_for_body(
        &self,
        key: Option<&Secret>,
        request: RequestBuilder<'_>,
    ) -> Result<Bytes> {
        let exchange = async {
            let response = self.send(key, request).await?;
            response
                .bytes()
                .await
                .map_err(|error| transport_error(&self.name, &error))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Error::upstream_timeout(&self.name))?
    }

    /// Send a request and parse its whole 2xx body as `T`; `what` names the expected answer
    /// in the error when it does not parse.
    pub async fn send_for_json<T: DeserializeOwned>(
        &self,
        key: Option<&Secret>,
        request: RequestBuilder<'_>,
        what: &str,
    ) -> Result<T> {
        let body = self.send_for_body(key, request).await?;
        serde_json::from_slice(&body).map_err(|e| {
            Error::upstream_stream(&self.name, format!("the answer is not {what}: {e}"))
        })
    }

    /// The whole body of a 2xx response, within `timeout`.
    pub async fn read_body(&self, response: Response) -> Result<Bytes> {
        match tokio::time::timeout(self.timeout, response.bytes()).await {
            Err(_) => Err(Error::upstream_timeout(&self.name)),
            Ok(Err(error)) => Err(transport_error(&self.name, &error)),
            Ok(Ok(body)) => Ok(body),
        }
    }

    /// A 2xx response body as server-sent events (see [`sse_events`]).
    pub fn sse_events(
        &self,
        response: Response,
    ) -> impl Stream<Item = Result<sse_stream::Sse>> + Send + 'static {
        sse_events(&self.name, response, self.timeout)
    }

    /// A non-2xx answer as a core error: kind from the status, the upstream's own message as
    /// detail, and its retry hint. A body that stalls for `timeout` only costs the detail.
    ///
    /// Only a message the upstream put in its error JSON reaches the client. Anything else (an
    /// HTML error page from a proxy, a stack trace) may show the upstream's internals, so the
    /// client gets the status alone and the operator finds the body in the log.
    async fn error_from_response(&self, key: Option<&Secret>, response: Response) -> Error {
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers(), SystemTime::now());
        let mut body = Vec::new();
        let _ = tokio::time::timeout(self.timeout, read_capped(response, &mut body)).await;
        let detail = match (self.error_detail)(&body) {
            Some(message) => safe_detail(&message, key),
            None => {
                if !body.is_empty() {
                    tracing::warn!(
                        provider = %self.name,
                        status,
                        body = %safe_detail(&String::from_utf8_lossy(&body), key),
                        "upstream error answer without an error message; not shown to the client"
                    );
                }
                String::new()
            }
        };
        let error = Error::from_upstream_status(&self.name, status, &detail);
        match retry_after {
            Some(after) => error.with_retry_after(after),
            None => error,
        }
    }
}

/// A failure of the HTTP exchange itself (no status, or a body that broke), with no URL in it.
fn transport_error(provider: &str, error: &ClientError) -> Error {
    match error {
        ClientError::ConnectTimeout => return Error::upstream_timeout(provider),
        ClientError::Connect(_) => return Error::upstream_connect(provider),
        _ => {}
    }
    let detail = clip(&error.to_string());
    Error::new(
        ErrorKind::Upstream,
        format!("The request to upstream {provider} failed: {detail}"),
    )
    .with_code("upstream_failed")
}

async fn read_capped(response: Response, body: &mut Vec<u8>) {
    let mut chunks = response.bytes_stream();
    while let Some(Ok(chunk)) = chunks.next().await {
        let room = MAX_ERROR_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
}

/// Upstream text made fit for an error message: the key scrubbed out first (so clipping can
/// never leave part of it behind), then put on one line and clipped.
pub(crate) fn safe_detail(text: &str, key: Option<&Secret>) -> String {
    clip(&scrub(text, key))
}

/// Remove the key, and the visible head and tail of a masked echo of it (`sk-abc...wxyz`).
fn scrub(text: &str, key: Option<&Secret>) -> String {
    let Some(key) = key.map(Secret::expose).filter(|k| !k.is_empty()) else {
        return text.to_owned();
    };
    let mut text = text.replace(key, "*****");
    if key.len() >= 12 && key.is_char_boundary(8) && key.is_char_boundary(key.len() - 4) {
        text = text
            .replace(&key[..8], "*****")
            .replace(&key[key.len() - 4..], "****");
    }
    text
}

/// `text` on one line and at most [`MAX_DETAIL_CHARS`] characters.
fn clip(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// How long the upstream asks us to wait: `retry-after-ms`, else `retry-after` in seconds or
/// as an HTTP date; never more than a day.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let seconds = |text: &str| {
        text.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(MAX_RETRY_AFTER.as_secs_f64())))
    };
    if let Some(after) = header("retry-after-ms").and_then(|ms| seconds(ms).map(|d| d / 1000)) {
        return Some(after);
    }
    let value = header("retry-after")?;
    if let Some(after) = seconds(value) {
        return Some(after);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// Why a response body stopped early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("no data from the upstream for {0:?}")]
    Idle(Duration),
    /// The transport failure, described without its URL.
    #[error("{0}")]
    Transport(String),
}

impl BodyError {
    /// As a core error for a stream item.
    pub(crate) fn to_error(&self, provider: &str) -> Error {
        match self {
            BodyError::Idle(_) => Error::upstream_timeout(provider),
            BodyError::Transport(detail) => Error::upstream_stream(provider, clip(detail)),
        }
    }
}

/// The response body as a stream of frames, failing with [`BodyError::Idle`] when the upstream
/// sends no bytes at all for `idle`: any bytes (a keep-alive comment too) reset the timer.
/// Built with `unfold` so dropping it drops the connection.
pub(crate) fn timed_body(
    response: Response,
    idle: Duration,
) -> impl Stream<Item = Result<Bytes, BodyError>> + Send + 'static {
    let frames = response.bytes_stream().boxed();
    futures::stream::unfold(Some(frames), move |state| async move {
        let mut frames = state?;
        match tokio::time::timeout(idle, frames.next()).await {
            Err(_) => Some((Err(BodyError::Idle(idle)), None)),
            Ok(None) => None,
            Ok(Some(Err(error))) => Some((Err(BodyError::Transport(with_causes(&*error))), None)),
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(frames))),
        }
    })
}

/// Server-sent events from a response body, each decoding failure as a core error.
fn sse_events(
    provider: &str,
    response: Response,
    idle: Duration,
) -> impl Stream<Item = Result<sse_stream::Sse>> + Send + 'static {
    let provider = provider.to_owned();
    sse_stream::SseByteStream::new(timed_body(response, idle)).map(move |event| {
        event.map_err(|error| match error {
            sse_stream::Error::Body(inner) => match inner.downcast_ref::<BodyError>() {
                Some(body) => body.to_error(&provider),
                None => Error::upstream_stream(&provider, "the connection failed"),
            },
            other => Error::upstream_stream(&provider, clip(&other.to_string())),
        })
    })
}

/// Seconds since the Unix epoch, for `created` fields the upstream does not give.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An endpoint parsed once when the provider is built (a request then clones it, where a
/// string would be parsed again on every request); only http and https, with a host.
pub(crate) fn parse_endpoint(name: &str, url: &str) -> std::result::Result<Uri, BuildError> {
    let invalid = |reason: String| BuildError::Invalid {
        name: name.to_owned(),
        reason,
    };
    let endpoint =
        Uri::try_from(url).map_err(|e| invalid(format!("api_base is not a valid URL: {e}")))?;
    if !matches!(endpoint.scheme_str(), Some("http" | "https")) {
        return Err(invalid(
            "api_base must be an http:// or https:// URL".to_owned(),
        ));
    }
    if endpoint.host().is_none_or(str::is_empty) {
        return Err(invalid("api_base has no host".to_owned()));
    }
    Ok(endpoint)
}

/// Join a base URL and a path without doubling or dropping the slash.
pub(crate) fn endpoint(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_milliseconds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let wait = |pairs: &[(&'static str, &str)]| retry_after(&headers(pairs), now);
        assert_eq!(wait(&[("retry-after", "7")]), Some(Duration::from_secs(7)));
        assert_eq!(
            wait(&[("retry-after", "1.5")]),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            wait(&[("retry-after-ms", "250"), ("retry-after", "9")]),
            Some(Duration::from_millis(250))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            wait(&[("retry-after", &later)]),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(wait(&[("retry-after", &past)]), Some(Duration::ZERO));
        assert_eq!(wait(&[("retry-after", "soon")]), None);
        assert_eq!(wait(&[("retry-after", "-3")]), None);
        assert_eq!(wait(&[]), None);
    }

    #[test]
    fn retry_after_never_exceeds_a_day() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let far = httpdate::fmt_http_date(now + Duration::from_secs(10 * 86_400));
        for value in ["1e300", far.as_str()] {
            assert_eq!(
                retry_after(&headers(&[("retry-after", value)]), now),
                Some(MAX_RETRY_AFTER),
                "{value}"
            );
        }
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "1e300")]), now),
            Some(MAX_RETRY_AFTER / 1000)
        );
    }

    #[test]
    fn safe_detail_removes_the_key_and_its_masked_echo() {
        let key = Secret::new("sk-ant-api03-SECRETSECRET-wxyz");
        let text = "invalid x-api-key sk-ant-api03-SECRETSECRET-wxyz (also sk-ant-a...wxyz)";
        let clean = safe_detail(text, Some(&key));
        assert!(!clean.contains("SECRETSECRET"), "{clean}");
        assert!(!clean.contains("wxyz"), "{clean}");
        assert!(!clean.contains("sk-ant-a"), "{clean}");
        assert!(clean.starts_with("invalid x-api-key *****"), "{clean}");
    }

    #[test]
    fn safe_detail_replaces_every_occurrence_and_ignores_empty_keys() {
        let key = Secret::new("sk-test-SECRET-0123456789");
        let text = format!("a {} b {}", key.expose(), key.expose());
        assert_eq!(safe_detail(&text, Some(&key)), "a ***** b *****");
        assert_eq!(safe_detail("nothing", Some(&key)), "nothing");
        assert_eq!(safe_detail("nothing", Some(&Secret::new(""))), "nothing");
    }

    #[test]
    fn safe_detail_scrubs_the_key_before_clipping() {
        // The key straddles the clip point: clipping first would leave its head behind.
        let key = Secret::new("sk-test-SECRET-0123456789");
        let text = format!("{}{}", "x".repeat(MAX_DETAIL_CHARS - 5), key.expose());
        let clean = safe_detail(&text, Some(&key));
        assert!(!clean.contains("sk-te"), "{clean}");
        assert!(clean.contains("*****"), "{clean}");
    }

    #[test]
    fn safe_detail_is_one_line_clipped_on_a_char_boundary() {
        let text = "日".repeat(MAX_DETAIL_CHARS + 10);
        let clipped = safe_detail(&text, None);
        assert_eq!(clipped.chars().count(), MAX_DETAIL_CHARS + 1);
        assert!(clipped.ends_with('…'));
        assert_eq!(
            safe_detail("Bad Gateway\n\n  nginx ", None),
            "Bad Gateway nginx"
        );
    }

    #[test]
    fn endpoint_joins_with_one_slash() {
        assert_eq!(endpoint("http://h/v1/", "/chat"), "http://h/v1/chat");
        assert_eq!(endpoint("http://h", "api/chat"), "http://h/api/chat");
    }
}
