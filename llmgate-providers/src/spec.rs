//! Building providers from a description (what the server's config says).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use llmgate_core::Provider;

use crate::anthropic::{Anthropic, AnthropicConfig};
use crate::demo::DemoProvider;
use crate::ollama::{Ollama, OllamaConfig};
use crate::openai::{OpenAiCompatible, OpenAiConfig};
use crate::presets::preset;

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

/// Construct a provider from its description. A missing `api_base` takes the preset's when the
/// name is a well-known provider (`groq`, `vllm`, ...; see [`crate::preset`]), else the
/// family's default; only the OpenAI family has no default of its own.
pub fn build_provider(spec: &ProviderSpec) -> Result<Arc<dyn Provider>, BuildError> {
    let invalid = |reason: &str| BuildError::Invalid {
        name: spec.name.clone(),
        reason: reason.to_owned(),
    };
    let local = preset(&spec.name).is_some_and(|p| p.local && !p.requires_key());
    match spec.family {
        WireFamily::Demo => Ok(Arc::new(DemoProvider::new(spec.name.clone()))),
        WireFamily::OpenAi | WireFamily::HuggingFace => {
            let base = default_base(spec).ok_or_else(|| {
                invalid("api_base is required for this kind (the name is not a known preset)")
            })?;
            let config = OpenAiConfig {
                name: spec.name.clone(),
                api_base: base,
                timeout: spec.timeout,
                headers: spec.headers.clone(),
            };
            // Local servers (vLLM) run without keys; a configured key is still sent.
            Ok(Arc::new(
                OpenAiCompatible::new(config)?.with_requires_key(!local),
            ))
        }
        WireFamily::Anthropic => {
            let mut config = AnthropicConfig::new(spec.name.clone());
            config.api_base = default_base(spec).unwrap_or(config.api_base);
            config.timeout = spec.timeout;
            config.headers = spec.headers.clone();
            Ok(Arc::new(Anthropic::new(config)?))
        }
        WireFamily::Ollama => {
            let mut config = OllamaConfig::new(spec.name.clone());
            config.api_base = default_base(spec).unwrap_or(config.api_base);
            config.timeout = spec.timeout;
            config.headers = spec.headers.clone();
            Ok(Arc::new(Ollama::new(config)?))
        }
    }
}

/// The configured base, else the preset's for this name and family, else the family's.
fn default_base(spec: &ProviderSpec) -> Option<String> {
    if let Some(base) = &spec.api_base {
        return Some(base.clone());
    }
    let openai_like = |family| matches!(family, WireFamily::OpenAi | WireFamily::HuggingFace);
    match preset(&spec.name) {
        Some(p) if p.family == spec.family => return Some(p.api_base.to_owned()),
        Some(p) if openai_like(p.family) && openai_like(spec.family) => {
            return Some(p.api_base.to_owned());
        }
        // `name: ollama, kind: openai` means Ollama's OpenAI-compatible layer.
        Some(p) if p.family == WireFamily::Ollama && spec.family == WireFamily::OpenAi => {
            return Some(format!("{}/v1", p.api_base));
        }
        _ => {}
    }
    let family_default = match spec.family {
        WireFamily::Anthropic => crate::anthropic::DEFAULT_API_BASE,
        WireFamily::Ollama => crate::ollama::DEFAULT_API_BASE,
        WireFamily::HuggingFace => preset("huggingface")?.api_base,
        WireFamily::OpenAi | WireFamily::Demo => return None,
    };
    Some(family_default.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, family: WireFamily, api_base: Option<&str>) -> ProviderSpec {
        ProviderSpec {
            name: name.to_owned(),
            family,
            api_base: api_base.map(str::to_owned),
            timeout: Duration::from_secs(5),
            headers: BTreeMap::new(),
        }
    }

    #[test]
    fn known_names_take_their_preset_base() {
        let cases = [
            ("groq", WireFamily::OpenAi, "https://api.groq.com/openai/v1"),
            ("vllm", WireFamily::OpenAi, "http://127.0.0.1:8000/v1"),
            (
                "huggingface",
                WireFamily::OpenAi,
                "https://router.huggingface.co/v1",
            ),
            (
                "my-hf",
                WireFamily::HuggingFace,
                "https://router.huggingface.co/v1",
            ),
            ("ollama", WireFamily::OpenAi, "http://127.0.0.1:11434/v1"),
            ("ollama", WireFamily::Ollama, "http://127.0.0.1:11434"),
            ("claude", WireFamily::Anthropic, "https://api.anthropic.com"),
            ("gpu", WireFamily::Ollama, "http://127.0.0.1:11434"),
        ];
        for (name, family, base) in cases {
            assert_eq!(
                default_base(&spec(name, family, None)).as_deref(),
                Some(base),
                "{name}"
            );
        }
        assert_eq!(
            default_base(&spec("groq", WireFamily::OpenAi, Some("http://proxy/v1"))).as_deref(),
            Some("http://proxy/v1")
        );
        assert_eq!(
            default_base(&spec("my-vllm", WireFamily::OpenAi, None)),
            None
        );
    }

    #[test]
    fn every_family_builds_and_unknown_openai_names_need_a_base() {
        for family in [
            WireFamily::Anthropic,
            WireFamily::Ollama,
            WireFamily::HuggingFace,
        ] {
            let built = build_provider(&spec("x", family, None)).unwrap();
            assert_eq!(built.name(), "x");
        }
        assert!(
            !build_provider(&spec("ollama", WireFamily::Ollama, None))
                .unwrap()
                .requires_key()
        );
        assert!(
            !build_provider(&spec("vllm", WireFamily::OpenAi, None))
                .unwrap()
                .requires_key()
        );
        assert!(
            build_provider(&spec("groq", WireFamily::OpenAi, None))
                .unwrap()
                .requires_key()
        );
        let error = build_provider(&spec("my-vllm", WireFamily::OpenAi, None)).unwrap_err();
        assert!(error.to_string().contains("api_base"), "{error}");
    }
}
