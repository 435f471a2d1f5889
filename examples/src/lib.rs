//! Holder crate for the `examples/` programs.
//!
//! It also compiles and runs the example in `llmgate-core`'s README as a doc test: that example
//! uses the demo provider from `llmgate-providers`, which `llmgate-core` itself cannot depend on.

#[cfg(doctest)]
#[doc = include_str!("../../llmgate-core/README.md")]
struct CoreReadme;
