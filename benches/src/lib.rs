//! Benchmarks and the load harness for llmgate.
//!
//! - `benches/*.rs`: criterion benches of the in-process parts (routing, the gateway pipeline,
//!   SSE decode/encode, translation, pricing, the in-memory ledger).
//! - [`load`]: the parts of the `loadtest` binary, which compares calls made straight to a fake
//!   OpenAI upstream with the same calls made through the real `llmgate` release binary.
//!
//! Run the load test with `cargo run --release -p llmgate-benches --bin loadtest -- --quick`
//! (see `docs/benchmarks.md`).

pub mod load;
