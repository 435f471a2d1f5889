//! The HTTP API: a hand-written router, one small module per group of endpoints, and the
//! helpers they share (body reading, JSON and error responses, SSE).
//!
//! Contract: docs/http-api.md

mod accounts;
mod admin;
mod amount;
mod billing;
mod body;
mod chat;
mod codec;
mod context;
mod credits;
mod embeddings;
mod health;
mod issued;
mod keys;
mod messages;
mod models;
mod params;
mod provider_keys;
mod requests;
mod response;
mod responses;
#[cfg(test)]
mod route_table;
mod router;
mod service;
mod sse;
mod stored_responses;
mod teams;
mod usage;

#[cfg(feature = "bench-internals")]
pub(crate) use messages::{bench_body as messages_body, bench_request as messages_request};
pub use service::handle;
#[cfg(feature = "bench-internals")]
pub(crate) use sse::body as sse_body;
