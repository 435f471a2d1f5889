//! The body type of every response the server sends, whole or streamed. A leaf: the API, the
//! UI, the metrics listener and the connection limiter all answer with it, and it depends on
//! none of them.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

/// The response body: whole or streamed. Never fails mid-way: stream errors are sent as
/// SSE error events instead.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A whole body of these bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}
