//! Upstream adapters for llmgate.
//!
//! Each wire family has a module with pure translation (`convert`), a stream state machine
//! (`stream`) and the `Provider` implementation. Vendors that speak OpenAI's protocol
//! (Together, Groq, vLLM, ...) are presets of [`openai::OpenAiCompatible`], not modules.

pub mod anthropic;
pub mod demo;
mod http;
pub mod ollama;
pub mod openai;
mod presets;
mod resolve;
mod spec;

pub use anthropic::{Anthropic, AnthropicConfig};
pub use demo::DemoProvider;
pub use ollama::{Ollama, OllamaConfig};
pub use openai::{OpenAiCompatible, OpenAiConfig};
pub use presets::{AuthStyle, Preset, Quirks, is_openai_reasoning_model, preset, presets};
pub use resolve::{model_resolver, resolve_model};
pub use spec::{BuildError, ProviderSpec, WireFamily, build_provider};
