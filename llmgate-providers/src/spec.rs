//! Building providers from a description (what the server's config says).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use llmgate_core::Provider;

use crate::anthropic::Anthropic;
use crate::demo::DemoProvider;
use crate::error::BuildError;
use crate::family::{ANTHROPIC_API_BASE, OLLAMA_API_BASE, WireFamily};
use crate::ollama::Ollama;
use crate::openai::{EmbeddingsApi, OpenAiCompatible};
use crate::presets::{Preset, preset};
use crate::upstream::UpstreamConfig;

/// Everything needed to construct one provider. Start from [`ProviderSpec::new`]; every field
/// left `None` takes the preset's or the family's default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProviderSpec {
    /// The configured name (`together`, `my-vllm`).
    pub name: String,
    /// Which adapter speaks to it.
    pub family: WireFamily,
    /// The well-known provider whose defaults apply (see [`crate::preset`]); `None` takes the
    /// preset called like the provider, if there is one.
    pub preset: Option<String>,
    /// Base URL; `None` takes the preset's, else the family's default.
    pub api_base: Option<String>,
    /// For whole answers the limit on the whole exchange; for streams the limit until the response head, then on the silence between two reads. Default ten minutes.
    pub timeout: Duration,
    /// Extra headers sent on every request (e.g. OpenRouter's `HTTP-Referer`).
    pub headers: BTreeMap<String, String>,
    /// Runs on the operator's machines; `None` takes the preset's flag, else true for the
    /// Ollama and demo families only.
    pub local: Option<bool>,
    /// Whether a call needs a key; `None` means: not for a local provider, else yes.
    pub requires_key: Option<bool>,
    /// OpenAI-compatible and HuggingFace providers: which embeddings API the upstream speaks
    /// (OpenAI's `/embeddings` by default, or Text Embeddings Inference's `/embed`).
    pub embeddings_api: EmbeddingsApi,
    /// OpenAI-compatible providers: whether the upstream speaks OpenAI's Responses API too, so
    /// that Responses requests are passed through instead of translated. Default false.
    pub responses_api: bool,
}

impl ProviderSpec {
    /// A provider of this name and family with a ten-minute timeout and every default.
    pub fn new(name: impl Into<String>, family: WireFamily) -> Self {
        Self {
            name: name.into(),
            family,
            preset: None,
            api_base: None,
            timeout: Duration::from_secs(600),
            headers: BTreeMap::new(),
            local: None,
            requires_key: None,
            embeddings_api: EmbeddingsApi::default(),
            responses_api: false,
        }
    }

    /// The preset whose defaults apply: the one named by `preset`, else the one called like the
    /// provider, when it speaks this family (an OpenAI-compatible preset also serves
    /// `huggingface`, and `ollama` also serves `kind: openai`, through Ollama's `/v1` layer).
    pub fn matching_preset(&self) -> Option<Preset> {
        let found = preset(self.preset.as_deref().unwrap_or(&self.name))?;
        let openai_like = |family| matches!(family, WireFamily::OpenAi | WireFamily::HuggingFace);
        let fits = found.family == self.family
            || (openai_like(found.family) && openai_like(self.family))
            || (found.family == WireFamily::Ollama && self.family == WireFamily::OpenAi);
        fits.then_some(found)
    }

    /// Whether the provider runs on the operator's machines (`local` in a power level's
    /// preferred providers; its models default to `privacy: high`).
    pub fn is_local(&self) -> bool {
        self.local.unwrap_or_else(|| match self.matching_preset() {
            Some(p) => p.local,
            None => matches!(self.family, WireFamily::Ollama | WireFamily::Demo),
        })
    }

    /// Whether a call needs a key: as configured, else only when the provider is not local.
    pub fn requires_key(&self) -> bool {
        self.requires_key.unwrap_or(!self.is_local())
    }

    /// The base URL requests go to: the configured one, else the preset's, else the family's
    /// default. `None` for an OpenAI-compatible provider that is not a preset.
    pub fn resolved_api_base(&self) -> Option<String> {
        if let Some(base) = &self.api_base {
            return Some(base.clone());
        }
        if let Some(p) = self.matching_preset() {
            return Some(
                if p.family == WireFamily::Ollama && self.family == WireFamily::OpenAi {
                    // `name: ollama, kind: openai` means Ollama's OpenAI-compatible layer.
                    format!("{}/v1", p.api_base)
                } else {
                    p.api_base.to_owned()
                },
            );
        }
        let family_default = match self.family {
            WireFamily::Anthropic => ANTHROPIC_API_BASE,
            WireFamily::Ollama => OLLAMA_API_BASE,
            WireFamily::HuggingFace => preset("huggingface")?.api_base,
            WireFamily::OpenAi | WireFamily::Demo => return None,
        };
        Some(family_default.to_owned())
    }
}

/// Construct a provider from its description, every unset field taking the preset's or the
/// family's default (see [`ProviderSpec`]).
pub fn build_provider(spec: &ProviderSpec) -> Result<Arc<dyn Provider>, BuildError> {
    let invalid = |reason: String| BuildError::Invalid {
        name: spec.name.clone(),
        reason,
    };
    if let Some(name) = &spec.preset
        && spec.matching_preset().is_none()
    {
        return Err(invalid(match preset(name) {
            Some(p) => format!(
                "preset `{name}` speaks {:?}, not {:?}",
                p.family, spec.family
            ),
            None => format!("`{name}` is not a known preset"),
        }));
    }
    let base = || {
        spec.resolved_api_base().ok_or_else(|| {
            invalid(
                "api_base is required for this kind (the name is not a known preset)".to_owned(),
            )
        })
    };
    let upstream = || -> Result<UpstreamConfig, BuildError> {
        Ok(UpstreamConfig {
            name: spec.name.clone(),
            api_base: base()?,
            timeout: spec.timeout,
            headers: spec.headers.clone(),
        })
    };
    let requires_key = spec.requires_key();
    match spec.family {
        WireFamily::Demo => Ok(Arc::new(DemoProvider::new(spec.name.clone()))),
        WireFamily::OpenAi | WireFamily::HuggingFace => {
            let config = upstream()?;
            let quirks = spec.matching_preset().map(|p| p.quirks).unwrap_or_default();
            Ok(Arc::new(
                OpenAiCompatible::new(config)?
                    .with_requires_key(requires_key)
                    .with_quirks(quirks)
                    .with_embeddings_api(spec.embeddings_api)
                    .with_responses_api(spec.responses_api),
            ))
        }
        WireFamily::Anthropic => Ok(Arc::new(
            Anthropic::new(upstream()?)?.with_requires_key(requires_key),
        )),
        WireFamily::Ollama => Ok(Arc::new(
            Ollama::new(upstream()?)?.with_requires_key(requires_key),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, family: WireFamily, api_base: Option<&str>) -> ProviderSpec {
        let mut spec = ProviderSpec::new(name, family);
        spec.api_base = api_base.map(str::to_owned);
        spec
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
                spec(name, family, None).resolved_api_base().as_deref(),
                Some(base),
                "{name}"
            );
        }
        assert_eq!(
            spec("groq", WireFamily::OpenAi, Some("http://proxy/v1"))
                .resolved_api_base()
                .as_deref(),
            Some("http://proxy/v1")
        );
        assert_eq!(
            spec("my-vllm", WireFamily::OpenAi, None).resolved_api_base(),
            None
        );
    }

    #[test]
    fn a_preset_field_lends_its_defaults_to_another_name() {
        let mut backup = spec("groq-backup", WireFamily::OpenAi, None);
        assert_eq!(backup.resolved_api_base(), None);
        backup.preset = Some("groq".to_owned());
        assert_eq!(
            backup.resolved_api_base().as_deref(),
            Some("https://api.groq.com/openai/v1")
        );
        assert_eq!(build_provider(&backup).unwrap().name(), "groq-backup");

        backup.preset = Some("grok".to_owned());
        let error = build_provider(&backup).unwrap_err().to_string();
        assert!(error.contains("`grok` is not a known preset"), "{error}");
        let mut wrong_family = spec("x", WireFamily::Anthropic, None);
        wrong_family.preset = Some("groq".to_owned());
        assert!(build_provider(&wrong_family).is_err());
    }

    #[test]
    fn local_comes_from_the_preset_or_family_unless_configured() {
        let local = |name: &str, family, configured: Option<bool>| {
            let mut spec = spec(name, family, Some("http://h/v1"));
            spec.local = configured;
            spec.is_local()
        };
        assert!(local("vllm", WireFamily::OpenAi, None));
        assert!(local("ollama", WireFamily::OpenAi, None));
        assert!(local("gpu", WireFamily::Ollama, None));
        assert!(!local("groq", WireFamily::OpenAi, None));
        assert!(!local("my-vllm", WireFamily::OpenAi, None));
        assert!(local("my-vllm", WireFamily::OpenAi, Some(true)));
        assert!(!local("ollama", WireFamily::Ollama, Some(false)));
    }

    #[test]
    fn local_providers_need_no_key_unless_configured() {
        let requires_key = |name: &str, family, local: Option<bool>, requires: Option<bool>| {
            let mut spec = spec(name, family, Some("http://h/v1"));
            spec.local = local;
            spec.requires_key = requires;
            build_provider(&spec).unwrap().requires_key()
        };
        for family in [
            WireFamily::OpenAi,
            WireFamily::HuggingFace,
            WireFamily::Anthropic,
            WireFamily::Ollama,
        ] {
            assert!(!requires_key("box", family, Some(true), None), "{family:?}");
            assert!(requires_key("box", family, Some(false), None), "{family:?}");
            assert!(
                requires_key("box", family, Some(true), Some(true)),
                "{family:?}"
            );
        }
        assert!(!requires_key("vllm", WireFamily::OpenAi, None, None));
        assert!(!requires_key("ollama", WireFamily::Ollama, None, None));
        assert!(requires_key("groq", WireFamily::OpenAi, None, None));
        assert!(requires_key("anthropic", WireFamily::Anthropic, None, None));
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
        let error = build_provider(&spec("my-vllm", WireFamily::OpenAi, None)).unwrap_err();
        assert!(error.to_string().contains("api_base"), "{error}");
    }
}
