//! `GatewayBuilder`: assemble a gateway from providers, models and backends.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use rust_decimal::Decimal;

use super::{Gateway, Inner, ModelResolver};
use crate::catalog::{Catalog, Deployment};
use crate::credits::CreditStore;
use crate::memory::MemoryCreditStore;
use crate::power::{PowerLevel, PowerLevelPolicy};
use crate::provider::Provider;
use crate::routing::{InOrder, RoutingPolicy};
use crate::secret::Secret;
use crate::vault::KeyVault;

/// Builds a [`Gateway`]. Every part has a default: an in-memory credit store, configuration
/// order routing, the seed's power levels and 1,000 credits per USD.
pub struct GatewayBuilder {
    providers: HashMap<String, Arc<dyn Provider>>,
    platform_keys: HashMap<String, Secret>,
    catalog: Catalog,
    resolver: Option<Box<ModelResolver>>,
    credits: Option<Arc<dyn CreditStore>>,
    vault: Option<Arc<dyn KeyVault>>,
    policy: Option<Arc<dyn RoutingPolicy>>,
    power_levels: HashMap<PowerLevel, PowerLevelPolicy>,
    credits_per_usd: Decimal,
    max_attempts: u32,
    hold_ttl: Duration,
    default_max_tokens: u32,
}

impl std::fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayBuilder")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("models", &self.catalog.deployments().len())
            .finish_non_exhaustive()
    }
}

impl Default for GatewayBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GatewayBuilder {
    pub fn new() -> Self {
        Self {
            providers: HashMap::new(),
            platform_keys: HashMap::new(),
            catalog: Catalog::default(),
            resolver: None,
            credits: None,
            vault: None,
            policy: None,
            power_levels: PowerLevel::ALL
                .into_iter()
                .map(|level| (level, PowerLevelPolicy::default_for(level)))
                .collect(),
            credits_per_usd: Decimal::from(1000),
            max_attempts: 3,
            hold_ttl: Duration::from_secs(3600),
            default_max_tokens: 4096,
        }
    }

    /// Add a provider under its own name.
    pub fn provider(mut self, provider: Arc<dyn Provider>) -> Self {
        self.providers.insert(provider.name().to_owned(), provider);
        self
    }

    /// The platform's key for a provider; users without their own key use it and pay credits.
    pub fn platform_key(mut self, provider: impl Into<String>, key: Secret) -> Self {
        self.platform_keys.insert(provider.into(), key);
        self
    }

    /// Add one deployment of a model.
    pub fn model(mut self, deployment: Deployment) -> Self {
        self.catalog.push(deployment);
        self
    }

    /// Resolve model names the catalog does not list (`provider/model`, well-known names).
    pub fn model_resolver(
        mut self,
        resolver: impl Fn(&str) -> Option<Deployment> + Send + Sync + 'static,
    ) -> Self {
        self.resolver = Some(Box::new(resolver));
        self
    }

    pub fn credit_store(mut self, store: Arc<dyn CreditStore>) -> Self {
        self.credits = Some(store);
        self
    }

    pub fn key_vault(mut self, vault: Arc<dyn KeyVault>) -> Self {
        self.vault = Some(vault);
        self
    }

    pub fn routing_policy(mut self, policy: Arc<dyn RoutingPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    pub fn power_level(mut self, level: PowerLevel, policy: PowerLevelPolicy) -> Self {
        self.power_levels.insert(level, policy);
        self
    }

    pub fn credits_per_usd(mut self, credits: Decimal) -> Self {
        self.credits_per_usd = credits;
        self
    }

    /// Total attempts per request across retries and fallbacks (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// How long an unsettled hold lives before it is reclaimed.
    pub fn hold_ttl(mut self, ttl: Duration) -> Self {
        self.hold_ttl = ttl;
        self
    }

    /// The output cap when neither the request nor the model sets one.
    pub fn default_max_tokens(mut self, tokens: u32) -> Self {
        self.default_max_tokens = tokens.max(1);
        self
    }

    pub fn build(self) -> Gateway {
        Gateway {
            inner: Arc::new(Inner {
                providers: self.providers,
                platform_keys: self.platform_keys,
                catalog: self.catalog,
                resolver: self.resolver,
                credits: self
                    .credits
                    .unwrap_or_else(|| Arc::new(MemoryCreditStore::new())),
                vault: self.vault,
                policy: self.policy.unwrap_or_else(|| Arc::new(InOrder)),
                power_levels: self.power_levels,
                credits_per_usd: self.credits_per_usd,
                max_attempts: self.max_attempts,
                hold_ttl: self.hold_ttl,
                default_max_tokens: self.default_max_tokens,
                next_request: AtomicU64::new(1),
            }),
        }
    }
}
