//! The llmgate reference server: the YAML config, the `llmgate` command line and the
//! OpenAI-compatible HTTP API over a [`llmgate_core::Gateway`].
//!
//! Run a server in-process (what the integration tests do):
//!
//! ```no_run
//! use llmgate_server::{Server, config::{Config, Env}};
//! use llmgate_core::Secret;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::builtin(&Env::process());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = Server::new(config, &Secret::new("lg-master-choose-a-long-one"), listener).await?;
//! let running = server.spawn()?;
//! println!("serving on {}", running.url());
//! running.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod api;
pub mod auth;
pub mod billing;
pub mod cli;
pub mod config;
mod connections;
mod ledger_verify;
pub mod master_key;
mod probe;
mod replicas;
pub mod rotate_keys;
mod server;
pub mod state;
pub mod storage;
pub mod telemetry;
mod ui;

pub use api::{Body, handle};

/// A completion stream as the SSE body `POST /v1/chat/completions` sends. For the criterion
/// benches in `benches/` only; not part of the API.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub fn sse_body_for_bench(stream: llmgate_core::CompletionStream) -> Body {
    api::sse_body(stream)
}
pub use server::{RunningServer, Server, shutdown_signal};
pub use state::AppState;
