//! Test support for llmgate: a scripted fake upstream that speaks the providers' wire formats
//! over real loopback HTTP, with hostile chunking, slow first bytes and cut connections.
//!
//! ```no_run
//! use llmgate_testkit::{Chunking, FakeUpstream, Reply, openai};
//!
//! # async fn demo() {
//! let upstream = FakeUpstream::start().await;
//! upstream.push(Reply::sse(&openai::text_chunks("m", &["Hel", "lo"], Some((3, 2))))
//!     .chunked(Chunking::Bytes(1)));
//! // point a client at `upstream.url()`, then inspect `upstream.requests()`.
//! # }
//! ```

pub mod anthropic;
mod chunking;
pub mod db;
pub mod embeddings;
pub mod ollama;
pub mod openai;
pub mod otlp;
mod reply;
pub mod responses;
mod server;
pub mod stripe;

pub use chunking::{Chunking, split_frames};
pub use reply::Reply;
pub use server::{FakeUpstream, Recorded};
