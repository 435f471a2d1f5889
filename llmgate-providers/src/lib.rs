//! Upstream adapters for llmgate.
//!
//! Each wire family has a module with pure translation (`convert`), a stream state machine
//! (`stream`) and the `Provider` implementation. Vendors that speak OpenAI's protocol
//! (Together, Groq, vLLM, ...) are presets of [`openai::OpenAiCompatible`], not modules.

pub mod demo;
pub mod openai;
mod spec;

pub use demo::DemoProvider;
pub use openai::{OpenAiCompatible, OpenAiConfig};
pub use spec::{BuildError, ProviderSpec, WireFamily, build_provider};
