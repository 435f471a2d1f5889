#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod anthropic;
mod chunks;
mod client;
pub mod demo;
mod embedding;
mod error;
mod family;
mod http;
mod native;
pub mod ollama;
pub mod openai;
mod presets;
mod resolve;
mod spec;
pub mod tokenizer;
mod upstream;

pub use anthropic::Anthropic;
pub use demo::DemoProvider;
pub use error::BuildError;
pub use family::WireFamily;
pub use ollama::Ollama;
pub use openai::{EmbeddingsApi, OpenAiCompatible};
pub use presets::{AuthStyle, Preset, Quirks, is_openai_reasoning_model, preset, presets};
pub use resolve::{model_resolver, resolve_model};
pub use spec::{ProviderSpec, build_provider};
pub use upstream::{DEFAULT_TIMEOUT, UpstreamConfig};
