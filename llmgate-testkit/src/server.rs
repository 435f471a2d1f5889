//! The loopback HTTP server that records requests and plays scripted replies.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::reply::Reply;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Headers in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Recorded {
    /// The body parsed as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

/// Picks the reply from the request itself (see [`FakeUpstream::respond_with`]).
type Responder = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

struct Script {
    queue: VecDeque<Reply>,
    default: Reply,
    responder: Option<Responder>,
    received: Vec<Recorded>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("queue", &self.queue)
            .field("default", &self.default)
            .field("responder", &self.responder.is_some())
            .field("received", &self.received.len())
            .finish()
    }
}

#[derive(Debug)]
struct Shared(Mutex<Script>);

impl Shared {
    // A test that panicked while holding the lock must not hide later failures behind poisoning.
    fn lock(&self) -> MutexGuard<'_, Script> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A scripted upstream on `127.0.0.1`, one reply per request. The server stops when dropped.
#[derive(Debug)]
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FakeUpstream {
    /// Bind `127.0.0.1:0` and start serving (HTTP/1.1 keep-alive and HTTP/2).
    ///
    /// # Panics
    /// When the loopback port cannot be bound: the test cannot run at all then.
    #[allow(clippy::expect_used)]
    pub async fn start() -> FakeUpstream {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind 127.0.0.1:0 for the fake upstream");
        let addr = listener
            .local_addr()
            .expect("local address of the fake upstream");
        let shared = Arc::new(Shared(Mutex::new(Script {
            queue: VecDeque::new(),
            default: Reply::unscripted(),
            responder: None,
            received: Vec::new(),
        })));
        let server = tokio::spawn(accept_loop(listener, shared.clone()));
        FakeUpstream {
            addr,
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queue a reply; requests take queued replies in order.
    pub fn push(&self, reply: Reply) {
        self.shared.lock().queue.push_back(reply);
    }

    /// The reply used once the queue is empty.
    pub fn set_default(&self, reply: Reply) {
        self.shared.lock().default = reply;
    }

    /// Answer each request the queue does not with `responder`'s reply to it, instead of the
    /// default: for concurrent traffic, where the request itself says how to answer it. It
    /// runs under the fake's lock, so it must not call back into this fake.
    pub fn respond_with(&self, responder: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        self.shared.lock().responder = Some(Arc::new(responder));
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().received.clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.lock().received.len()
    }

    /// The most recent request, if any.
    pub fn last_request(&self) -> Option<Recorded> {
        self.shared.lock().received.last().cloned()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every open connection.
        self.server.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| answer(request, shared.clone()));
                    // Errors here are the scripted aborts and clients hanging up: nothing to do.
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

type BodyStream =
    StreamBody<futures::stream::BoxStream<'static, Result<Frame<Bytes>, std::io::Error>>>;

async fn answer(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<BodyStream>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    let reply = {
        let mut script = shared.lock();
        let reply = match (script.queue.pop_front(), &script.responder) {
            (Some(queued), _) => queued,
            (None, Some(responder)) => responder(&recorded),
            (None, None) => script.default.clone(),
        };
        script.received.push(recorded);
        reply
    };
    if let Some(delay) = reply.first_byte_delay {
        tokio::time::sleep(delay).await;
    }
    Ok(build_response(&reply))
}

fn build_response(reply: &Reply) -> Response<BodyStream> {
    let (frames, abort) = reply.frames();
    let delay = reply.frame_delay;
    let data =
        futures::stream::iter(frames.into_iter().enumerate()).then(move |(i, frame)| async move {
            if i > 0 {
                match delay {
                    Some(delay) => tokio::time::sleep(delay).await,
                    // Let the connection flush between frames so they leave as separate chunks.
                    None => tokio::task::yield_now().await,
                }
            }
            Ok(Frame::data(frame))
        });
    let tail = futures::stream::iter(abort.then_some(())).then(|()| async {
        // Give the connection time to flush what was sent, so the client sees a cut body
        // rather than a connection that died before the head.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "scripted cut",
        ))
    });
    let body = StreamBody::new(data.chain(tail).boxed());

    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in &reply.headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}
