//! The load harness's parts: a fake upstream, the gateway as a child process, a bounded
//! closed-loop load generator on hyper, and the tables. The `loadtest` binary puts them
//! together; nothing here runs under `cargo test` beyond small unit tests.

pub mod client;
pub mod gateway;
pub mod outside;
pub mod postgres;
pub mod proxy;
pub mod report;
pub mod runner;
pub mod server;
pub mod stats;
pub mod upstream;
