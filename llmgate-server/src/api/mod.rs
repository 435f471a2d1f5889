//! The HTTP API: a hand-written router, one small module per group of endpoints, and the
//! helpers they share (body reading, JSON and error responses, SSE).

mod body;
mod chat;
mod health;
mod models;
mod response;
mod router;
mod service;
mod sse;

pub use response::Body;
pub use service::handle;
