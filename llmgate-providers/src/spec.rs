//! Building providers from a description (what the server's config says).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use llmgate_core::Provider;

use crate::demo::DemoProvider;
use crate::openai::{OpenAiCompatible, OpenAiConfig};

/// The wire family a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFamily {
    OpenAi,
    Anthropic,
    Ollama,
    HuggingFace,
    Demo,
}

/// Everything needed to construct one provider.
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    /// The configured name (`together`, `my-vllm`).
    pub name: String,
    pub family: WireFamily,
    /// Base URL; `None` takes the family's or preset's default.
    pub api_base: Option<String>,
    pub timeout: Duration,
    /// Extra headers sent on every request (e.g. OpenRouter's `HTTP-Referer`).
    pub headers: BTreeMap<String, String>,
}

/// Why a provider could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("provider `{name}`: {reason}")]
    Invalid { name: String, reason: String },
}

/// Construct a provider from its description.
pub fn build_provider(spec: &ProviderSpec) -> Result<Arc<dyn Provider>, BuildError> {
    let invalid = |reason: &str| BuildError::Invalid {
        name: spec.name.clone(),
        reason: reason.to_owned(),
    };
    match spec.family {
        WireFamily::Demo => Ok(Arc::new(DemoProvider::new(spec.name.clone()))),
        WireFamily::OpenAi | WireFamily::HuggingFace => {
            let base = spec
                .api_base
                .clone()
                .ok_or_else(|| invalid("api_base is required for this kind"))?;
            let config = OpenAiConfig {
                name: spec.name.clone(),
                api_base: base,
                timeout: spec.timeout,
                headers: spec.headers.clone(),
            };
            Ok(Arc::new(OpenAiCompatible::new(config)?))
        }
        WireFamily::Anthropic | WireFamily::Ollama => {
            Err(invalid("this wire family is not implemented yet"))
        }
    }
}
