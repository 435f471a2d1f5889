//! The configured models: each entry is one deployment of a model on one provider.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::pricing::ModelPrice;

/// How fast a deployment usually answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatencyClass {
    /// Usually well under a second to the first token.
    Ultrafast,
    /// Usually around a second.
    Fast,
    /// A few seconds.
    Medium,
    /// Longer: large or reasoning models.
    Slow,
}

/// Where a deployment's data goes: `high` privacy means it stays on machines the operator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privacy {
    /// The data goes to a third party whose retention terms are unknown or loose (the default).
    #[default]
    Low,
    /// The data goes to a third party with a no-retention or similar agreement.
    Medium,
    /// The data stays on machines the operator runs.
    High,
}

/// What a model does: chat completions or embeddings. A request of the other kind is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelMode {
    /// Chat completions (the default).
    #[default]
    Chat,
    /// Embeddings: priced by input tokens, no output.
    Embedding,
}

impl ModelMode {
    /// The name used in config and in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Embedding => "embedding",
        }
    }
}

impl std::fmt::Display for ModelMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One model served by one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    /// The name clients send as `model`.
    pub name: String,
    /// The configured provider that serves it.
    pub provider: String,
    /// The model id the provider expects.
    pub upstream_model: String,
    /// USD per 1K tokens; `None` when unpriced (usable only with BYOK).
    pub price: Option<ModelPrice>,
    /// A quality score from 0 to 1 set by the operator; `auto` picks only deployments at or above its power level's threshold.
    pub quality: Option<f64>,
    /// The most tokens, prompt and output together, the model accepts; caps `max_tokens`.
    pub context_window: Option<u32>,
    /// The most output tokens the model can produce, when known.
    pub max_output_tokens: Option<u32>,
    /// This deployment's own requests-per-minute limit; at it, the router skips it.
    pub rpm: Option<u32>,
    /// This deployment's own tokens-per-minute limit; at it, the router skips it.
    pub tpm: Option<u64>,
    /// Model names to try, in order, when every deployment of this one fails.
    pub fallbacks: Vec<String>,
    /// Free-form labels shown in the catalog (e.g. `premium`, `vision`); power levels may prefer some.
    pub tags: Vec<String>,
    /// How fast it usually answers, shown in the catalog.
    pub latency: Option<LatencyClass>,
    /// Where the request's data goes, shown in the catalog.
    pub privacy: Privacy,
    /// Runs on the operator's machines (vLLM, Ollama).
    pub local: bool,
    /// Share of traffic under the `weighted` strategy (0: only when nothing else is left); default 1.
    pub weight: u32,
    /// Order under the `priority` strategy, lowest first; default 0.
    pub priority: u32,
    /// Chat or embeddings; requests of the other kind are refused.
    pub mode: ModelMode,
    /// The most inputs one embeddings request may carry (larger batches are refused, never
    /// split); `None`: no bound of the gateway's own.
    pub max_inputs: Option<u32>,
}

impl Deployment {
    /// A deployment with only the required fields set.
    pub fn new(
        name: impl Into<String>,
        provider: impl Into<String>,
        upstream_model: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            provider: provider.into(),
            upstream_model: upstream_model.into(),
            price: None,
            quality: None,
            context_window: None,
            max_output_tokens: None,
            rpm: None,
            tpm: None,
            fallbacks: Vec::new(),
            tags: Vec::new(),
            latency: None,
            privacy: Privacy::Low,
            local: false,
            weight: 1,
            priority: 0,
            mode: ModelMode::Chat,
            max_inputs: None,
        }
    }

    /// Set the mode (an embedding model: [`ModelMode::Embedding`]).
    pub fn with_mode(mut self, mode: ModelMode) -> Self {
        self.mode = mode;
        self
    }

    /// Set the price (a free model has a zero price; without one it is usable only with BYOK).
    pub fn with_price(mut self, price: ModelPrice) -> Self {
        self.price = Some(price);
        self
    }

    /// Free when it has a price and both halves are zero.
    pub fn is_free(&self) -> bool {
        self.price.is_some_and(|p| p.is_free())
    }
}

/// All deployments, indexed by model name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    deployments: Vec<Arc<Deployment>>,
    by_name: HashMap<String, Vec<usize>>,
}

impl Catalog {
    /// A catalog of these deployments, in the given order.
    pub fn new(deployments: impl IntoIterator<Item = Deployment>) -> Self {
        let mut catalog = Self::default();
        for deployment in deployments {
            catalog.push(deployment);
        }
        catalog
    }

    /// Add a deployment after the existing ones.
    pub fn push(&mut self, deployment: Deployment) {
        let index = self.deployments.len();
        self.by_name
            .entry(deployment.name.clone())
            .or_default()
            .push(index);
        self.deployments.push(Arc::new(deployment));
    }

    /// Every deployment in configuration order.
    pub fn deployments(&self) -> &[Arc<Deployment>] {
        &self.deployments
    }

    /// The deployments of one model name, in configuration order.
    pub fn by_name(&self, name: &str) -> impl Iterator<Item = &Arc<Deployment>> + '_ {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .map(|&i| &self.deployments[i])
    }

    /// Whether any deployment has this model name.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Distinct model names in configuration order.
    pub fn model_names(&self) -> Vec<&str> {
        let mut seen = std::collections::HashSet::new();
        self.deployments
            .iter()
            .filter(|d| seen.insert(d.name.as_str()))
            .map(|d| d.name.as_str())
            .collect()
    }
}
