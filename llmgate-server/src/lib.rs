#![doc = include_str!("../README.md")]

mod api;
pub mod auth;
pub mod billing;
pub mod cli;
pub mod config;
mod connections;
mod ledger_verify;
mod log_lines;
pub mod master_key;
mod offline;
mod probe;
mod replicas;
pub mod request_log;
mod response_body;
pub mod rotate_keys;
mod server;
pub mod state;
pub mod storage;
pub mod telemetry;
mod ui;

pub use api::handle;
pub use response_body::Body;

/// A completion stream as the SSE body `POST /v1/chat/completions` sends. For the criterion
/// benches in `benches/` only; not part of the API.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub fn sse_body_for_bench(stream: llmgate_core::gateway::CompletionStream) -> Body {
    api::sse_body(stream)
}

/// A completion stream as the event body `POST /v1/messages` sends. For the criterion benches
/// in `benches/` only; not part of the API.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub fn messages_body_for_bench(stream: llmgate_core::gateway::CompletionStream) -> Body {
    api::messages_body(stream)
}

/// A `POST /v1/messages` body decoded into a core request. For the criterion benches in
/// `benches/` only; not part of the API.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub fn messages_request_for_bench(
    body: &bytes::Bytes,
) -> llmgate_core::Result<llmgate_core::chat::ChatRequest> {
    api::messages_request(body)
}
pub use server::{RunningServer, Server, shutdown_signal};
pub use state::AppState;
