//! The configured models: each entry is one deployment of a model on one provider.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::pricing::ModelPrice;

/// How fast a deployment usually answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatencyClass {
    Ultrafast,
    Fast,
    Medium,
    Slow,
}

/// Where a deployment's data goes: `high` privacy means it stays on machines the operator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privacy {
    #[default]
    Low,
    Medium,
    High,
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
    pub quality: Option<f64>,
    pub context_window: Option<u32>,
    /// The most output tokens the model can produce, when known.
    pub max_output_tokens: Option<u32>,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub fallbacks: Vec<String>,
    pub tags: Vec<String>,
    pub latency: Option<LatencyClass>,
    pub privacy: Privacy,
    /// Runs on the operator's machines (vLLM, Ollama).
    pub local: bool,
    pub weight: u32,
    pub priority: u32,
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
        }
    }

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
    pub fn new(deployments: impl IntoIterator<Item = Deployment>) -> Self {
        let mut catalog = Self::default();
        for deployment in deployments {
            catalog.push(deployment);
        }
        catalog
    }

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
