//! `providers:` and `models:`.

use std::collections::BTreeMap;

use llmgate_core::{LatencyClass, Privacy, Secret};
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

    /// Whether the kind calls a remote API that needs a base URL.
    pub fn needs_api_base(self) -> bool {
        matches!(self, ProviderKind::Openai | ProviderKind::Huggingface)
    }
}

/// One upstream provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// What models and `provider/model` names refer to.
    pub name: String,
    pub kind: ProviderKind,
    pub api_base: Option<String>,
    /// The platform key; BYOK-only providers have none.
    #[serde(default, deserialize_with = "optional_secret")]
    pub api_key: Option<Secret>,
    /// Runs on the operator's machines; matches `local` in `preferred_providers`.
    #[serde(default)]
    pub local: bool,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Extra headers on every upstream request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Enabled by the built-in default from an environment variable, not written by the
    /// operator: one that cannot be built is skipped with a warning instead of failing startup.
    #[serde(skip)]
    pub preset: bool,
}

fn default_timeout_ms() -> u64 {
    600_000
}

impl ProviderConfig {
    pub fn new(name: impl Into<String>, kind: ProviderKind) -> Self {
        Self {
            name: name.into(),
            kind,
            api_base: None,
            api_key: None,
            local: false,
            timeout_ms: default_timeout_ms(),
            headers: BTreeMap::new(),
            preset: false,
        }
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
}

fn one() -> u32 {
    1
}

impl ModelConfig {
    pub fn new(
        name: impl Into<String>,
        provider: impl Into<String>,
        upstream_model: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            provider: provider.into(),
            upstream_model: Some(upstream_model.into()),
            input_cost_per_1k: None,
            output_cost_per_1k: None,
            cost_per_1k: None,
            free: false,
            quality: None,
            context_window: None,
            max_output_tokens: None,
            rpm: None,
            tpm: None,
            fallbacks: Vec::new(),
            tags: Vec::new(),
            latency: None,
            privacy: None,
            weight: 1,
            priority: 0,
        }
    }

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
