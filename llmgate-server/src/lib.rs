//! The llmgate reference server.
pub mod config;
