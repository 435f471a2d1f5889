//! `providers:` and `models:`.

use std::collections::BTreeMap;
use std::time::Duration;

use llmgate_core::{
    catalog::{LatencyClass, ModelMode, Privacy},
    keys::Secret,
};
use llmgate_providers::{EmbeddingsApi, ProviderSpec, WireFamily};
use serde::Deserialize;

use super::values::{DecimalText, optional_secret};

/// The wire family a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Openai,
    Anthropic,
    Ollama,
    Huggingface,
    Demo,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Huggingface => "huggingface",
            ProviderKind::Demo => "demo",
        }
    }

    pub fn family(self) -> WireFamily {
        match self {
            ProviderKind::Openai => WireFamily::OpenAi,
            ProviderKind::Anthropic => WireFamily::Anthropic,
            ProviderKind::Ollama => WireFamily::Ollama,
            ProviderKind::Huggingface => WireFamily::HuggingFace,
            ProviderKind::Demo => WireFamily::Demo,
        }
    }

    pub fn of_family(family: WireFamily) -> Self {
        match family {
            WireFamily::OpenAi => ProviderKind::Openai,
            WireFamily::Anthropic => ProviderKind::Anthropic,
            WireFamily::Ollama => ProviderKind::Ollama,
            WireFamily::HuggingFace => ProviderKind::Huggingface,
            WireFamily::Demo => ProviderKind::Demo,
        }
    }
}

/// One upstream provider. Read from YAML through a private mirror that leaves `local` out
/// when the operator did; here it is settled (the preset's or the family's default).
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "ProviderYaml")]
pub struct ProviderConfig {
    /// What models and `provider/model` names refer to.
    pub name: String,
    pub kind: ProviderKind,
    /// The well-known provider whose defaults apply when the name is not one (`preset: groq`
    /// for a provider called `groq-eu`).
    pub preset: Option<String>,
    /// Base URL; optional when the name (or `preset`) is a well-known provider.
    pub api_base: Option<String>,
    /// The platform key; BYOK-only providers have none.
    pub api_key: Option<Secret>,
    /// Runs on the operator's machines; matches `local` in `preferred_providers`, and its
    /// models default to `privacy: high`. Settled from the preset when not configured.
    pub local: bool,
    /// Whether calls need a key; `None`: not for a local provider, else yes.
    pub requires_key: Option<bool>,
    pub timeout_ms: u64,
    /// Extra headers on every upstream request.
    pub headers: BTreeMap<String, String>,
    /// Which embeddings API an `openai` or `huggingface` provider speaks.
    pub embeddings_api: EmbeddingsApiKind,
    /// An `openai` provider whose upstream speaks OpenAI's Responses API too: `/v1/responses`
    /// requests are passed through to it instead of translated.
    pub responses_api: bool,
    /// Enabled by the built-in default from an environment variable, not written by the
    /// operator: one that cannot be built is skipped with a warning instead of failing startup.
    pub from_env: bool,
}

/// `providers[]` as written in YAML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderYaml {
    name: String,
    kind: ProviderKind,
    #[serde(default)]
    preset: Option<String>,
    api_base: Option<String>,
    #[serde(default, deserialize_with = "optional_secret")]
    api_key: Option<Secret>,
    #[serde(default)]
    local: Option<bool>,
    #[serde(default)]
    requires_key: Option<bool>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    embeddings_api: EmbeddingsApiKind,
    #[serde(default)]
    responses_api: bool,
}

/// `providers[].embeddings_api`: OpenAI's `/embeddings` (the default) or HuggingFace Text
/// Embeddings Inference's `/embed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingsApiKind {
    #[default]
    Openai,
    Tei,
}

impl From<ProviderYaml> for ProviderConfig {
    fn from(yaml: ProviderYaml) -> Self {
        let mut config = ProviderConfig::new(yaml.name, yaml.kind);
        config.preset = yaml.preset;
        config.api_base = yaml.api_base;
        config.api_key = yaml.api_key;
        config.requires_key = yaml.requires_key;
        config.timeout_ms = yaml.timeout_ms;
        config.headers = yaml.headers;
        config.embeddings_api = yaml.embeddings_api;
        config.responses_api = yaml.responses_api;
        config.local = yaml.local.unwrap_or_else(|| config.default_local());
        config
    }
}

fn default_timeout_ms() -> u64 {
    600_000
}

impl ProviderConfig {
    /// A provider with every default; `local` as its preset (or family) says.
    pub fn new(name: impl Into<String>, kind: ProviderKind) -> Self {
        let mut config = Self {
            name: name.into(),
            kind,
            preset: None,
            api_base: None,
            api_key: None,
            local: false,
            requires_key: None,
            timeout_ms: default_timeout_ms(),
            headers: BTreeMap::new(),
            embeddings_api: EmbeddingsApiKind::Openai,
            responses_api: false,
            from_env: false,
        };
        config.local = config.default_local();
        config
    }

    /// Whether the preset (or, for a name that is none, the family) runs locally.
    fn default_local(&self) -> bool {
        let mut spec = self.spec();
        spec.local = None;
        spec.is_local()
    }

    /// What `llmgate_providers::build_provider` needs to build it.
    pub fn spec(&self) -> ProviderSpec {
        let mut spec = ProviderSpec::new(&self.name, self.kind.family());
        spec.preset.clone_from(&self.preset);
        spec.api_base.clone_from(&self.api_base);
        spec.timeout = Duration::from_millis(self.timeout_ms);
        spec.headers.clone_from(&self.headers);
        spec.local = Some(self.local);
        spec.requires_key = self.requires_key;
        spec.responses_api = self.responses_api;
        spec.embeddings_api = match self.embeddings_api {
            EmbeddingsApiKind::Openai => EmbeddingsApi::OpenAi,
            EmbeddingsApiKind::Tei => EmbeddingsApi::Tei,
        };
        spec
    }
}

/// One deployment of a model on a provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// What clients send as `model`; several entries may share it.
    pub name: String,
    pub provider: String,
    /// The provider's id for the model; defaults to `name`.
    pub upstream_model: Option<String>,
    /// USD per 1K prompt tokens.
    pub input_cost_per_1k: Option<DecimalText>,
    /// USD per 1K completion tokens.
    pub output_cost_per_1k: Option<DecimalText>,
    /// Sets both prices.
    pub cost_per_1k: Option<DecimalText>,
    /// USD per 1K prompt tokens read from the provider's prompt cache; the input price when
    /// not given.
    pub cache_read_cost_per_1k: Option<DecimalText>,
    /// USD per 1K prompt tokens written to the provider's prompt cache; the input price when
    /// not given.
    pub cache_write_cost_per_1k: Option<DecimalText>,
    /// Free to use (both prices zero) even when no price is given.
    #[serde(default)]
    pub free: bool,
    pub quality: Option<f64>,
    pub context_window: Option<u32>,
    pub max_output_tokens: Option<u32>,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    #[serde(default)]
    pub fallbacks: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub latency: Option<LatencyClass>,
    /// Defaults to `high` on local providers, `low` elsewhere.
    pub privacy: Option<Privacy>,
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub priority: u32,
    /// `chat` (the default) or `embedding`; requests of the other kind are refused.
    #[serde(default)]
    pub mode: ModelMode,
    /// Embedding models: the most inputs one request may carry (larger batches are a 400).
    pub max_inputs: Option<u32>,
}

fn one() -> u32 {
    1
}

impl ModelConfig {
    /// The input and output prices, `cost_per_1k` filling whichever is not given.
    pub fn prices(&self) -> (Option<&DecimalText>, Option<&DecimalText>) {
        let both = self.cost_per_1k.as_ref();
        (
            self.input_cost_per_1k.as_ref().or(both),
            self.output_cost_per_1k.as_ref().or(both),
        )
    }

    pub fn upstream(&self) -> &str {
        self.upstream_model.as_deref().unwrap_or(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Env};

    fn providers(yaml: &str) -> (Vec<ProviderConfig>, Vec<String>) {
        let config = Config::from_yaml(yaml, &Env::from_pairs([("X", "y")])).unwrap();
        let problems = config.validate().iter().map(ToString::to_string).collect();
        (config.providers, problems)
    }

    #[test]
    fn preset_names_need_no_api_base() {
        let (providers, problems) = providers(
            r#"
providers:
  - { name: openai, kind: openai }
  - { name: groq, kind: openai }
  - { name: huggingface, kind: huggingface }
  - { name: anthropic, kind: anthropic }
  - { name: ollama, kind: openai }
  - { name: groq-eu, kind: openai, preset: groq }
"#,
        );
        assert!(problems.is_empty(), "{problems:#?}");
        let bases: Vec<Option<String>> = providers
            .iter()
            .map(|p| p.spec().resolved_api_base())
            .collect();
        assert_eq!(bases[1].as_deref(), Some("https://api.groq.com/openai/v1"));
        assert_eq!(bases[4].as_deref(), Some("http://127.0.0.1:11434/v1"));
        assert_eq!(bases[5], bases[1], "preset: lends the base");
    }

    #[test]
    fn unknown_names_and_presets_are_reported_with_their_paths() {
        let (_, problems) = providers(
            r#"
providers:
  - { name: my-vllm, kind: openai }
  - { name: x, kind: openai, preset: grok }
  - { name: y, kind: anthropic, preset: groq }
"#,
        );
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[0].starts_with(
                "providers[0].api_base: is required for kind openai: \"my-vllm\" is not a preset name (known: openai, anthropic,"
            ),
            "{problems:#?}"
        );
        assert!(
            problems[1].starts_with("providers[1].preset: unknown preset \"grok\""),
            "{problems:#?}"
        );
        assert_eq!(
            problems[2],
            "providers[2].preset: preset \"groq\" speaks kind openai, not anthropic"
        );
    }

    #[test]
    fn local_comes_from_the_preset_unless_written() {
        let (providers, problems) = providers(
            r#"
providers:
  - { name: ollama, kind: ollama }
  - { name: vllm, kind: openai }
  - { name: gpu, kind: openai, api_base: "http://10.0.0.5:8000/v1", local: true }
  - { name: groq, kind: openai }
  - { name: remote-ollama, kind: ollama, preset: ollama, local: false }
  - { name: proxy, kind: openai, api_base: "http://p/v1", local: true, requires_key: true }
"#,
        );
        assert!(problems.is_empty(), "{problems:#?}");
        let local: Vec<bool> = providers.iter().map(|p| p.local).collect();
        assert_eq!(local, [true, true, true, false, false, true]);
        let keyed: Vec<bool> = providers.iter().map(|p| p.spec().requires_key()).collect();
        assert_eq!(keyed, [false, false, false, true, true, true]);
    }

    #[test]
    fn unknown_provider_keys_are_refused_with_their_path() {
        let error = Config::from_yaml(
            "providers:\n  - { name: a, kind: openai, api_bsae: x }\n",
            &Env::from_pairs([("X", "y")]),
        )
        .unwrap_err();
        assert_eq!(error.problems[0].path, "providers[0].api_bsae", "{error}");
    }
}
