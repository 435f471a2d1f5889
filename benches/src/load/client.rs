//! One HTTP/1.1 keep-alive connection of the load generator, and one timed request on it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where requests go and with which keys.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub path: &'static str,
    /// `Authorization` values (`Bearer ...`), taken in turn; none sent when empty.
    pub keys: Keys,
}

/// The `Authorization` values of a target. One key is one hot account; many spread the
/// requests over many accounts (request `n` of a run carries key `n mod len`).
#[derive(Debug, Clone, Default)]
pub struct Keys(Arc<[String]>);

impl Keys {
    /// No `Authorization` header.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every request carries `value`.
    pub fn one(value: String) -> Self {
        Self(Arc::from(vec![value]))
    }

    /// Request `n` carries `values[n mod len]`.
    pub fn rotating(values: Vec<String>) -> Self {
        Self(Arc::from(values))
    }

    /// The value for request number `n`.
    pub fn pick(&self, n: u64) -> Option<&str> {
        let len = self.0.len() as u64;
        (len > 0).then(|| self.0[(n % len) as usize].as_str())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// All of them, in order.
    pub fn all(&self) -> &[String] {
        &self.0
    }
}

/// How one request went.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// From sending the request to the last body byte.
    pub total: Duration,
    /// From sending the request to the first body byte.
    pub first_byte: Duration,
    /// Server-sent events received (`\n\n`-terminated blocks); 0 for JSON.
    pub events: u32,
    /// The longest pause between two body frames (stalls show up here).
    pub longest_gap: Duration,
}

/// Why a request failed.
#[derive(Debug)]
pub enum Failure {
    /// The connection broke; it must be reopened.
    Connection(String),
    /// A non-2xx answer (the connection is still usable).
    Status(u16),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connection(reason) => write!(f, "connection failed: {reason}"),
            Failure::Status(status) => write!(f, "HTTP {status}"),
        }
    }
}

/// An open keep-alive connection.
#[derive(Debug)]
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: header::HeaderValue,
}

impl Connection {
    /// Connect with `TCP_NODELAY`.
    pub async fn open(addr: SocketAddr) -> Result<Self, Failure> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| Failure::Connection(e.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| Failure::Connection(e.to_string()))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Failure::Connection(e.to_string()))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let host = header::HeaderValue::from_str(&addr.to_string())
            .map_err(|e| Failure::Connection(e.to_string()))?;
        Ok(Self { sender, host })
    }

    /// POST `body` as JSON to `path` (with `authorization`, if any) and read the whole answer,
    /// timing it.
    pub async fn post(
        &mut self,
        path: &str,
        authorization: Option<&str>,
        body: &Bytes,
    ) -> Result<Timing, Failure> {
        let mut request = Request::post(path)
            .header(header::HOST, self.host.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, body.len())
            .body(Full::new(body.clone()))
            .map_err(|e| Failure::Connection(e.to_string()))?;
        if let Some(authorization) = authorization {
            let value = header::HeaderValue::from_str(authorization)
                .map_err(|e| Failure::Connection(e.to_string()))?;
            request.headers_mut().insert(header::AUTHORIZATION, value);
        }
        self.sender
            .ready()
            .await
            .map_err(|e| Failure::Connection(e.to_string()))?;
        let sent = Instant::now();
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| Failure::Connection(e.to_string()))?;
        let status = response.status();
        let mut body = response.into_body();
        let mut first_byte = None;
        let mut events = 0u32;
        let mut last_frame = sent;
        let mut longest_gap = Duration::ZERO;
        // `\n` that ended the previous frame, so a `\n\n` split across frames still counts.
        let mut trailing_newline = false;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Failure::Connection(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            let now = Instant::now();
            if first_byte.is_none() {
                first_byte = Some(now - sent);
            } else {
                longest_gap = longest_gap.max(now - last_frame);
            }
            last_frame = now;
            events += count_event_ends(&data, &mut trailing_newline);
        }
        let total = sent.elapsed();
        if !status.is_success() {
            return Err(Failure::Status(status.as_u16()));
        }
        Ok(Timing {
            total,
            first_byte: first_byte.unwrap_or(total),
            events,
            longest_gap,
        })
    }
}

/// One request on a fresh connection, for set-up calls (admin API): the status and the body.
pub async fn call(
    addr: SocketAddr,
    path: &str,
    authorization: &str,
    body: Bytes,
) -> Result<(u16, Bytes), Failure> {
    once(addr, Request::post(path), authorization, body).await
}

/// A `GET` on a fresh connection (the gateway's `/metrics`): the status and the body.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    authorization: &str,
) -> Result<(u16, Bytes), Failure> {
    once(addr, Request::get(path), authorization, Bytes::new()).await
}

async fn once(
    addr: SocketAddr,
    request: hyper::http::request::Builder,
    authorization: &str,
    body: Bytes,
) -> Result<(u16, Bytes), Failure> {
    let mut connection = Connection::open(addr).await?;
    let request = request
        .header(header::HOST, connection.host.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, authorization)
        .body(Full::new(body))
        .map_err(|e| Failure::Connection(e.to_string()))?;
    let response = connection
        .sender
        .send_request(request)
        .await
        .map_err(|e| Failure::Connection(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| Failure::Connection(e.to_string()))?
        .to_bytes();
    Ok((status, body))
}

/// Count `\n\n` event terminators in `data`, carrying a trailing `\n` across frames.
fn count_event_ends(data: &[u8], trailing_newline: &mut bool) -> u32 {
    let mut count = 0;
    let mut previous_newline = *trailing_newline;
    for &byte in data {
        let newline = byte == b'\n';
        if newline && previous_newline {
            count += 1;
            previous_newline = false;
        } else {
            previous_newline = newline;
        }
    }
    *trailing_newline = previous_newline;
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_taken_in_turn() {
        let keys = Keys::rotating(vec!["a".into(), "b".into(), "c".into()]);
        let picked: Vec<_> = (0..5).filter_map(|n| keys.pick(n)).collect();
        assert_eq!(picked, ["a", "b", "c", "a", "b"]);
        assert_eq!(Keys::one("k".into()).pick(7), Some("k"));
        assert_eq!(Keys::none().pick(0), None);
    }

    #[test]
    fn event_ends_are_counted_across_frames() {
        let mut carry = false;
        assert_eq!(count_event_ends(b"data: a\n\ndata: b\n", &mut carry), 1);
        assert!(carry);
        assert_eq!(count_event_ends(b"\ndata: [DONE]\n\n", &mut carry), 2);
        assert!(!carry);
        assert_eq!(count_event_ends(b"{\"json\":1}", &mut carry), 0);
    }
}
