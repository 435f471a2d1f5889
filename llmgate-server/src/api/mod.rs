//! The HTTP API: a hand-written router, one small module per group of endpoints, and the
//! helpers they share (body reading, JSON and error responses, SSE).
//!
//! Contract: docs/http-api.md

mod admin;
mod billing;
mod body;
mod chat;
mod context;
mod credits;
mod embeddings;
mod health;
mod models;
mod params;
mod provider_keys;
mod response;
#[cfg(test)]
mod route_table;
mod router;
mod service;
mod sse;
mod usage;

pub use service::handle;
#[cfg(feature = "bench-internals")]
pub(crate) use sse::body as sse_body;
