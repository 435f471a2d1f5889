//! Thin HTTP plumbing shared by the adapters: one client per provider, timeouts that know a
//! stream from a whole answer, upstream error answers turned into core errors (with the key
//! scrubbed and `Retry-After` honoured), and body streams whose failures say what happened.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use llmgate_core::{ChatChunk, ChunkStream, Error, Result, Secret};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{RequestBuilder, Response};

/// Upstream error bodies longer than this are cut before they reach a message.
const MAX_ERROR_DETAIL: usize = 500;
/// Read at most this much of an error answer: a broken upstream may send megabytes of HTML.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Connecting never waits longer than this, whatever the request timeout.
const MAX_CONNECT_WAIT: Duration = Duration::from_secs(10);

/// A client for one provider. Timeouts are applied per call (see [`send`] and [`timed_body`])
/// rather than on the client, because a whole-request limit would cut long streams.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    // Another part of the process may have installed a provider first; either is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("llmgate/", env!("CARGO_PKG_VERSION")))
        .tcp_nodelay(true)
        .connect_timeout(timeout.min(MAX_CONNECT_WAIT))
        // A redirected POST is either turned into a GET or sent again: neither is wanted.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", e.without_url()))
}

/// Configured extra headers, checked once when the provider is built.
pub(crate) fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, String> {
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
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Send a request and wait for the response head, at most `timeout`.
pub(crate) async fn send(
    provider: &str,
    request: RequestBuilder,
    timeout: Duration,
) -> Result<Response, Error> {
    match tokio::time::timeout(timeout, request.send()).await {
        Err(_) => Err(Error::upstream_timeout(provider)),
        Ok(Err(error)) => Err(transport_error(provider, &error)),
        Ok(Ok(response)) => Ok(response),
    }
}

/// The whole body of a response, within `timeout`.
pub(crate) async fn read_body(
    provider: &str,
    response: Response,
    timeout: Duration,
) -> Result<Bytes, Error> {
    match tokio::time::timeout(timeout, response.bytes()).await {
        Err(_) => Err(Error::upstream_timeout(provider)),
        Ok(Err(error)) => Err(transport_error(provider, &error)),
        Ok(Ok(body)) => Ok(body),
    }
}

/// A reqwest failure as a core error, with no URL in it.
pub(crate) fn transport_error(provider: &str, error: &reqwest::Error) -> Error {
    if error.is_timeout() {
        Error::upstream_timeout(provider)
    } else if error.is_connect() {
        Error::upstream_connect(provider)
    } else {
        tracing::debug!(provider, error = %clean(error), "upstream transport error");
        Error::upstream_stream(provider, "the connection failed")
    }
}

fn clean(error: &reqwest::Error) -> String {
    // `without_url` needs ownership; rebuild the message from the chain instead.
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<upstream>");
    }
    text
}

/// A non-2xx answer as a core error. `detail` pulls the human-readable message out of the
/// family's error body; the key is scrubbed from it and `Retry-After` is kept. A body that
/// stalls for `timeout` only costs the detail, not the error.
pub(crate) async fn error_from_response(
    provider: &str,
    response: Response,
    key: Option<&Secret>,
    timeout: Duration,
    detail: impl FnOnce(&[u8]) -> Option<String>,
) -> Error {
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers(), SystemTime::now());
    let mut body = Vec::new();
    let _ = tokio::time::timeout(timeout, read_capped(response, &mut body)).await;
    let text = detail(&body).unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    let mut error = Error::from_upstream_status(provider, status, &scrub(&text, key));
    if let Some(after) = retry_after {
        error = error.with_retry_after(after);
    }
    error
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

/// Remove the key (and anything long enough to be a fragment of it) from upstream text, and
/// cut it to a readable length.
pub(crate) fn scrub(text: &str, key: Option<&Secret>) -> String {
    let mut text = text.trim().to_owned();
    if let Some(key) = key.map(Secret::expose).filter(|k| !k.is_empty()) {
        text = text.replace(key, "*****");
        // Upstreams echo keys partly masked (`sk-abc...wxyz`); drop the visible tail too.
        if key.len() >= 12 {
            let tail = &key[key.len() - 4..];
            let head = &key[..8];
            text = text.replace(head, "*****").replace(tail, "****");
        }
    }
    if text.len() > MAX_ERROR_DETAIL {
        let mut end = MAX_ERROR_DETAIL;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// How long the upstream asks us to wait: `retry-after-ms`, or `retry-after` in seconds or as
/// an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = header("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Why a response body stopped early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("no data from the upstream for {0:?}")]
    Idle(Duration),
    #[error("the connection failed")]
    Transport(#[source] reqwest::Error),
}

impl BodyError {
    /// As a core error for a stream item.
    pub(crate) fn to_error(&self, provider: &str) -> Error {
        match self {
            BodyError::Idle(_) => Error::upstream_timeout(provider),
            BodyError::Transport(error) => {
                tracing::debug!(provider, error = %clean(error), "upstream stream broke");
                Error::upstream_stream(provider, "the connection was cut")
            }
        }
    }
}

/// The response body as a stream of frames, failing with [`BodyError::Idle`] when the upstream
/// is silent for `idle` between frames. Built with `unfold` so dropping it drops the connection.
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
            Ok(Some(Err(error))) => Some((Err(BodyError::Transport(error)), None)),
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(frames))),
        }
    })
}

/// Server-sent events from a response body, each decoding failure as a core error.
pub(crate) fn sse_events(
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
            other => Error::upstream_stream(&provider, other),
        })
    })
}

/// A wire family's stream state machine: events in, OpenAI-style chunks out.
pub(crate) trait ChunkDecoder: Send + 'static {
    type Event: Send + 'static;

    /// The chunks one event produces. An error ends the stream.
    fn decode(&mut self, event: Self::Event) -> Result<Vec<ChatChunk>>;

    /// Called when the body ends: the last chunks, or an error when the stream was cut short.
    fn finish(&mut self) -> Result<Vec<ChatChunk>>;

    /// Whether the upstream sent its terminator; nothing after it is read.
    fn is_done(&self) -> bool;
}

/// Drive `decoder` over `events` as a chunk stream. Built with `unfold`, so dropping the
/// stream drops the upstream connection; an `Err` item is always the last.
pub(crate) fn chunk_stream<S, D>(events: S, decoder: D) -> ChunkStream
where
    S: Stream<Item = Result<D::Event>> + Send + 'static,
    D: ChunkDecoder,
{
    struct State<S, D> {
        events: Pin<Box<S>>,
        decoder: D,
        pending: VecDeque<ChatChunk>,
        over: bool,
    }
    let state = State {
        events: Box::pin(events),
        decoder,
        pending: VecDeque::new(),
        over: false,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(chunk) = state.pending.pop_front() {
                return Some((Ok(chunk), state));
            }
            if state.over {
                return None;
            }
            let step = if state.decoder.is_done() {
                None
            } else {
                state.events.next().await
            };
            let decoded = match step {
                Some(Ok(event)) => state.decoder.decode(event),
                Some(Err(error)) => Err(error),
                None => {
                    state.over = true;
                    state.decoder.finish()
                }
            };
            match decoded {
                Ok(chunks) => state.pending.extend(chunks),
                Err(error) => {
                    state.over = true;
                    return Some((Err(error), state));
                }
            }
        }
    }))
}

/// Seconds since the Unix epoch, for `created` fields the upstream does not give.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
    use reqwest::header::HeaderValue;

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
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &later)]), now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &past)]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after-ms", "1500"), ("retry-after", "9")]),
                now
            ),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")]), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn scrub_removes_the_key_and_its_masked_echo() {
        let key = Secret::new("sk-ant-api03-SECRETSECRET-wxyz");
        let text = "invalid x-api-key sk-ant-api03-SECRETSECRET-wxyz (also sk-ant-a...wxyz)";
        let clean = scrub(text, Some(&key));
        assert!(!clean.contains("SECRETSECRET"), "{clean}");
        assert!(!clean.contains("wxyz"), "{clean}");
        assert!(!clean.contains("sk-ant-a"), "{clean}");
        assert!(clean.starts_with("invalid x-api-key"));
    }

    #[test]
    fn scrub_cuts_long_text_on_a_char_boundary() {
        let text = "é".repeat(400);
        let clean = scrub(&text, None);
        let kept = clean.strip_suffix('…').unwrap();
        assert!(kept.len() <= MAX_ERROR_DETAIL);
        assert!(kept.len() >= MAX_ERROR_DETAIL - 1, "keeps as much as fits");
        assert!(kept.chars().all(|c| c == 'é'));
    }

    #[test]
    fn endpoint_joins_with_one_slash() {
        assert_eq!(endpoint("http://h/v1/", "/chat"), "http://h/v1/chat");
        assert_eq!(endpoint("http://h", "api/chat"), "http://h/api/chat");
    }
}
