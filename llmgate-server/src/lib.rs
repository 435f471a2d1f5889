#![doc = include_str!("../README.md")]

mod api;
pub mod auth;
pub mod billing;
pub mod cli;
pub mod config;
mod connections;
mod ledger_verify;
pub mod master_key;
mod offline;
mod probe;
mod replicas;
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
pub fn sse_body_for_bench(stream: llmgate_core::CompletionStream) -> Body {
    api::sse_body(stream)
}
pub use server::{RunningServer, Server, shutdown_signal};
pub use state::AppState;
