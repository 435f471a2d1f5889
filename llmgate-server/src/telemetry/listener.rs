//! `server.metrics_listen`: `GET /metrics` on an address of its own (a private interface),
//! apart from the API's clients. HTTP/1.1 only; everything but `/metrics` is 404.

use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::response_body::Body;
use llmgate_core::Gateway;

/// How long a scraper may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Bind `addr` now (usable outside async code, e.g. before spawning the server).
pub fn bind_metrics_listener(addr: &str) -> io::Result<TcpListener> {
    let listener = StdListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// Serve `/metrics` on `listener` until the task is aborted.
pub(crate) async fn serve_metrics(listener: TcpListener, gateway: Gateway) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics listening");
    }
    loop {
        let (stream, peer): (_, SocketAddr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting a metrics connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let gateway = gateway.clone();
        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
            let gateway = gateway.clone();
            async move { Ok::<_, Infallible>(answer(&gateway, &request)) }
        });
        tokio::spawn(async move {
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%peer, %error, "metrics connection ended with an error");
            }
        });
    }
}

fn answer<B>(gateway: &Gateway, request: &Request<B>) -> Response<Body> {
    if request.method() == Method::GET && request.uri().path() == "/metrics" {
        return super::scrape(gateway);
    }
    let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")).boxed_unsync());
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}
