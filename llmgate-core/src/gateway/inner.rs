//! The gateway value and what it holds: providers, catalog, ledger, routing tables, limits.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use rust_decimal::Decimal;

use super::owed::Settlements;
use super::route::{ModelResolver, RouteSources, RouteTable};
use super::writer::LedgerWriter;
use crate::backoff::Backoff;
use crate::catalog::Catalog;
use crate::credits::CreditStore;
use crate::health::DeploymentStates;
use crate::limits::RateLimiter;
use crate::metrics::GatewayMetrics;
use crate::power::{PowerLevel, PowerLevelPolicy};
use crate::provider::Provider;
use crate::routing::RoutingPolicy;
use crate::secret::Secret;
use crate::vault::KeyVault;

/// The gateway. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) providers: HashMap<String, Arc<dyn Provider>>,
    pub(super) platform_keys: HashMap<String, Secret>,
    pub(super) catalog: Catalog,
    pub(super) resolver: Option<Box<ModelResolver>>,
    /// The store the pipeline writes to.
    pub(super) ledger: Arc<dyn CreditStore>,
    /// What [`Gateway::credits`] hands out: `ledger`, or with write-behind a view whose reads
    /// wait for the queued writes.
    pub(super) credits: Arc<dyn CreditStore>,
    /// Write-behind for settles and usage records, when enabled.
    pub(super) writer: Option<Arc<LedgerWriter>>,
    pub(super) vault: Option<Arc<dyn KeyVault>>,
    pub(super) policy: Arc<dyn RoutingPolicy>,
    pub(super) power_levels: HashMap<PowerLevel, PowerLevelPolicy>,
    pub(super) credits_per_usd: Decimal,
    /// Upstream calls per request, across failover and retries.
    pub(super) max_attempts: u32,
    /// Extra rounds over the planned attempts after a round without an answer.
    pub(super) num_retries: u32,
    pub(super) backoff: Backoff,
    pub(super) hold_ttl: Duration,
    pub(super) default_max_tokens: u32,
    pub(super) next_request: AtomicU64,
    /// Seeds weighted routing and backoff jitter, one number per request.
    pub(super) next_route: AtomicU64,
    pub(super) routes: RouteTable,
    pub(super) states: Arc<DeploymentStates>,
    pub(super) limiter: Arc<dyn RateLimiter>,
    /// When the last fail-open warning was logged (on the states' clock).
    pub(super) fail_open_warned: AtomicU64,
    pub(super) metrics: GatewayMetrics,
    /// Ledger work still owed by requests (for a clean shutdown).
    pub(super) settlements: Arc<Settlements>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("models", &self.catalog.deployments().len())
            .field("policy", &self.policy)
            .field("max_attempts", &self.max_attempts)
            .field("num_retries", &self.num_retries)
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// What routing reads of the gateway.
    pub(super) fn route_sources(&self) -> RouteSources<'_> {
        RouteSources {
            routes: &self.routes,
            catalog: &self.catalog,
            resolver: self.resolver.as_deref(),
            providers: &self.providers,
            states: &self.states,
            policy: self.policy.as_ref(),
        }
    }
}
