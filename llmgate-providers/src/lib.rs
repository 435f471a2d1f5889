//! Upstream adapters for llmgate.
//!
//! Each wire family has a module with pure translation (`convert`), a stream state machine
//! (`stream`) and the `Provider` implementation. Vendors that speak OpenAI's protocol
//! (Together, Groq, vLLM, ...) are presets of [`openai::OpenAiCompatible`], not modules.
//!
//! ```
//! use llmgate_core::Gateway;
//! use llmgate_providers::{ProviderSpec, WireFamily, build_provider, model_resolver, preset};
//!
//! // A well-known name needs no base URL: the preset supplies it.
//! assert_eq!(preset("groq").unwrap().api_base, "https://api.groq.com/openai/v1");
//! let spec = ProviderSpec::new;
//! // Local presets (`ollama`, `vllm`) need no key.
//! assert!(!spec("ollama", WireFamily::Ollama).requires_key());
//! let gateway = Gateway::builder()
//!     .provider(build_provider(&spec("groq", WireFamily::OpenAi))?)
//!     .provider(build_provider(&spec("anthropic", WireFamily::Anthropic))?)
//!     .provider(build_provider(&spec("ollama", WireFamily::Ollama))?)
//!     // `groq/llama3-70b-8192`, `claude-3-5-haiku-latest`, `ollama/llama3.2` need no entry.
//!     .model_resolver(model_resolver(["groq", "anthropic", "ollama"]))
//!     .build();
//! # drop(gateway);
//! # Ok::<(), llmgate_providers::BuildError>(())
//! ```

pub mod anthropic;
mod chunks;
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
