//! A minimal fake OpenAI-compatible upstream for load tests: HTTP/1.1 keep-alive, `TCP_NODELAY`
//! on every socket, canned answers built once. It reads just enough of the request to pick an
//! answer (`"stream":true`, the slow model's name) so that it is never the bottleneck. It is also
//! the gateway's trace collector in load runs: OTLP exports (`/v1/traces`) are read and dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::server::Background;

/// The upstream model id whose streams are sent slowly (for the open-streams test).
pub const SLOW_MODEL: &str = "bench-slow";

/// What the fake answers.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Content chunks in a normal stream (plus role, finish, usage and `[DONE]` events).
    pub stream_chunks: usize,
    /// Content chunks of a slow stream.
    pub slow_chunks: usize,
    /// Pause before each content chunk of a slow stream.
    pub slow_gap: Duration,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            stream_chunks: 20,
            slow_chunks: 8,
            slow_gap: Duration::from_millis(500),
        }
    }
}

/// The canned answers, encoded once.
#[derive(Debug)]
struct Answers {
    json: Bytes,
    stream: Vec<Bytes>,
    slow: Vec<Bytes>,
    slow_gap: Duration,
    open_slow: Arc<OpenStreams>,
}

/// Slow streams being sent right now, and the most at once.
#[derive(Debug, Default)]
pub struct OpenStreams {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl OpenStreams {
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    pub fn reset_peak(&self) {
        self.peak
            .store(self.now.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    fn open(self: &Arc<Self>) -> OpenStream {
        let now = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        OpenStream(self.clone())
    }
}

/// One slow stream in flight; counted down when its body is dropped.
struct OpenStream(Arc<OpenStreams>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The answer to a request that is not a JSON completion.
const WHOLE_JSON: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the bench upstream, a short answer."},"finish_reason":"stop"}],"usage":{"prompt_tokens":14,"completion_tokens":10,"total_tokens":24}}"#;

fn sse_events(content_chunks: usize) -> Vec<Bytes> {
    let event = |json: String| Bytes::from(format!("data: {json}\n\n"));
    let head = r#""id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench""#;
    let mut events = vec![event(format!(
        r#"{{{head},"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},"finish_reason":null}}]}}"#
    ))];
    for i in 0..content_chunks {
        events.push(event(format!(
            r#"{{{head},"choices":[{{"index":0,"delta":{{"content":"tok{i} "}},"finish_reason":null}}]}}"#
        )));
    }
    events.push(event(format!(
        r#"{{{head},"choices":[{{"index":0,"delta":{{}},"finish_reason":"stop"}}]}}"#
    )));
    events.push(event(format!(
        r#"{{{head},"choices":[],"usage":{{"prompt_tokens":14,"completion_tokens":{content_chunks},"total_tokens":{}}}}}"#,
        14 + content_chunks
    )));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// A running fake upstream; dropping it stops it.
#[derive(Debug)]
pub struct FakeUpstream {
    open_slow: Arc<OpenStreams>,
    server: Background,
}

impl FakeUpstream {
    /// Start on 127.0.0.1 (port chosen by the OS) on a thread of its own with a single-threaded
    /// runtime, apart from the load generator's.
    pub fn start(settings: &UpstreamSettings) -> std::io::Result<Self> {
        let open_slow = Arc::new(OpenStreams::default());
        let answers = Arc::new(Answers {
            json: Bytes::from_static(WHOLE_JSON.as_bytes()),
            stream: sse_events(settings.stream_chunks),
            slow: sse_events(settings.slow_chunks),
            slow_gap: settings.slow_gap,
            open_slow: open_slow.clone(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let server = Background::start("fake-upstream", runtime, move |listener, stopped| {
            serve(listener, answers, stopped)
        })?;
        Ok(Self { open_slow, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Slow streams in flight (the open-streams test checks they all were open at once).
    pub fn slow_streams(&self) -> &OpenStreams {
        &self.open_slow
    }

    /// The OpenAI base URL (`http://IP:PORT/v1`).
    pub fn api_base(&self) -> String {
        format!("http://{}/v1", self.server.addr())
    }
}

async fn serve(listener: TcpListener, answers: Arc<Answers>, mut stopped: oneshot::Receiver<()>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let answers = answers.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| answer(answers.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = &mut stopped => return,
        }
    }
}

type Body = BoxBody<Bytes, Infallible>;

async fn answer(
    answers: Arc<Answers>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if request.method() == hyper::Method::GET {
        return Ok(plain(
            StatusCode::OK,
            Bytes::from_static(b"ok"),
            "text/plain",
        ));
    }
    if request.uri().path().ends_with("/v1/traces") {
        return Ok(drain_export(request.into_body()).await);
    }
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(plain(StatusCode::BAD_REQUEST, Bytes::new(), "text/plain")),
    };
    if !contains(&body, b"\"stream\":true") {
        return Ok(plain(
            StatusCode::OK,
            answers.json.clone(),
            "application/json",
        ));
    }
    let slow = contains(&body, SLOW_MODEL.as_bytes());
    let body: Body = if slow {
        let gap = answers.slow_gap;
        let events = answers.slow.clone();
        let last = events.len().saturating_sub(1);
        let open = answers.open_slow.open();
        let frames = futures::stream::unfold((0usize, open), move |(i, open)| {
            let event = events.get(i).cloned();
            async move {
                let event = event?;
                // Role chunk and [DONE] go at once; every other event waits its gap.
                if i > 0 && i < last {
                    tokio::time::sleep(gap).await;
                }
                Some((Ok::<_, Infallible>(Frame::data(event)), (i + 1, open)))
            }
        });
        BodyExt::boxed(StreamBody::new(frames))
    } else {
        let frames = answers
            .stream
            .clone()
            .into_iter()
            .map(|event| Ok::<_, Infallible>(Frame::data(event)));
        BodyExt::boxed(StreamBody::new(futures::stream::iter(frames)))
    };
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    Ok(response)
}

/// An OTLP trace export, taken as a collector that keeps nothing would: its body read frame
/// by frame and dropped, an empty `ExportTraceServiceResponse` answered. Read like a chat
/// request (whole, then searched) it cost this process about a microsecond per span, which
/// on a shared two-core machine was charged to the traced gateway.
async fn drain_export(mut body: Incoming) -> Response<Body> {
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return plain(StatusCode::BAD_REQUEST, Bytes::new(), "text/plain");
        }
    }
    plain(StatusCode::OK, Bytes::new(), "application/x-protobuf")
}

fn plain(status: StatusCode, body: Bytes, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(BodyExt::boxed(Full::new(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// Whether `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_events_end_with_usage_then_done() {
        let events = sse_events(3);
        assert_eq!(events.len(), 3 + 4);
        let usage: serde_json::Value = serde_json::from_slice(
            events[events.len() - 2]
                .strip_prefix(b"data: ")
                .unwrap()
                .strip_suffix(b"\n\n")
                .unwrap(),
        )
        .unwrap();
        assert_eq!(usage["usage"]["completion_tokens"], 3);
        assert_eq!(&events[events.len() - 1][..], b"data: [DONE]\n\n");
        for event in &events[..events.len() - 1] {
            let json = event.strip_prefix(b"data: ").unwrap();
            serde_json::from_slice::<serde_json::Value>(json.strip_suffix(b"\n\n").unwrap())
                .unwrap();
        }
    }

    #[test]
    fn whole_answer_is_valid_json_with_usage() {
        let value: serde_json::Value = serde_json::from_str(WHOLE_JSON).unwrap();
        assert_eq!(value["usage"]["total_tokens"], 24);
    }
}
