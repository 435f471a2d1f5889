//! `GatewayBuilder`: assemble a gateway from providers, models and backends.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use rust_decimal::Decimal;

use super::inner::{Gateway, Inner};
use super::route::ModelResolver;
use super::route::RouteTable;
use super::writer::LedgerWriter;
use crate::backoff::Backoff;
use crate::catalog::{Catalog, Deployment};
use crate::credits::CreditStore;
use crate::health::{CooldownRules, DeploymentStates, SharedCooldowns};
use crate::limits::{InProcessRateLimiter, RateLimiter};
use crate::memory::MemoryCreditStore;
use crate::metrics::GatewayMetrics;
use crate::power::{PowerLevel, PowerLevelPolicy};
use crate::provider::Provider;
use crate::routing::{InOrder, RoutingPolicy, Strategy};
use crate::secret::Secret;
use crate::vault::KeyVault;

/// Builds a [`Gateway`]. Every part has a default: an in-memory credit store, configuration
/// order routing, the seed's power levels, 1,000 credits per USD, an in-process rate limiter,
/// failover across up to 10 calls without retry rounds, and a 30 s cooldown after 3
/// consecutive failures.
///
/// The gateway reports through the [`metrics`](crate::metrics) facade; install a recorder
/// before [`build`](Self::build), which takes the metric handles.
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
    num_retries: u32,
    backoff: Backoff,
    cooldown: CooldownRules,
    default_fallbacks: Vec<String>,
    limiter: Option<Arc<dyn RateLimiter>>,
    shared_cooldowns: Option<Arc<dyn SharedCooldowns>>,
    cooldown_sync_interval: Duration,
    hold_ttl: Duration,
    default_max_tokens: u32,
    write_behind: Option<usize>,
    reserve_in_memory: bool,
    lease_idle: Option<Duration>,
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
    /// A builder with no providers or models, in-memory credits, no key vault, configuration-order routing, the default power levels and 1000 credits per USD.
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
            max_attempts: 10,
            num_retries: 0,
            backoff: Backoff::default(),
            cooldown: CooldownRules {
                after_failures: 3,
                duration: Duration::from_secs(30),
            },
            default_fallbacks: Vec::new(),
            limiter: None,
            shared_cooldowns: None,
            cooldown_sync_interval: Duration::from_secs(1),
            hold_ttl: Duration::from_secs(3600),
            default_max_tokens: 4096,
            write_behind: None,
            reserve_in_memory: false,
            lease_idle: None,
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

    /// Where balances, holds and the ledger live (default: a fresh [`MemoryCreditStore`](crate::memory::MemoryCreditStore)).
    pub fn credit_store(mut self, store: Arc<dyn CreditStore>) -> Self {
        self.credits = Some(store);
        self
    }

    /// Where users' own provider keys live; without one, every call uses the platform key.
    pub fn key_vault(mut self, vault: Arc<dyn KeyVault>) -> Self {
        self.vault = Some(vault);
        self
    }

    /// The policy that orders each model's deployments (default: configuration order).
    pub fn routing_policy(mut self, policy: Arc<dyn RoutingPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// One of the built-in strategies (`routing.strategy` in the config).
    pub fn routing_strategy(self, strategy: Strategy) -> Self {
        self.routing_policy(strategy.policy())
    }

    /// Replace the settings of one power level (output cap, cost multiplier, `auto`'s choice).
    pub fn power_level(mut self, level: PowerLevel, policy: PowerLevelPolicy) -> Self {
        self.power_levels.insert(level, policy);
        self
    }

    /// Credits one USD of upstream price buys (default 1000).
    pub fn credits_per_usd(mut self, credits: Decimal) -> Self {
        self.credits_per_usd = credits;
        self
    }

    /// The most upstream calls one request makes, failover and retries together (at least 1;
    /// default 10). Also the most candidates planned, so it bounds the hold as well.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Retry rounds (`routing.num_retries`; default 0). A round calls every planned candidate
    /// that is available, moving on at once after a retryable failure; after a round without
    /// an answer, up to `retries` more rounds follow, each after a backoff. Single-deployment
    /// models are thus called up to `retries + 1` times; `max_attempts` bounds the total.
    pub fn num_retries(mut self, retries: u32) -> Self {
        self.num_retries = retries;
        self
    }

    /// The backoff before retry round `n`: a random point in the upper half of
    /// `base × 2^(n-1)`, capped at `max` (default 250 ms and 8 s).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff = Backoff {
            base,
            max: max.max(base),
            max_wait: self.backoff.max_wait,
        };
        self
    }

    /// The longest one wait before a retry round may be, Retry-After included
    /// (`routing.max_retry_wait_ms`; default 2 s). A deployment whose Retry-After is longer
    /// cools down until then and the next candidate is called at once; when none is left,
    /// the request ends with the upstream's error and its Retry-After instead of a sleep.
    pub fn max_retry_wait(mut self, wait: Duration) -> Self {
        self.backoff.max_wait = wait;
        self
    }

    /// Consecutive retryable failures after which a deployment cools down
    /// (`routing.cooldown_after_failures`; default 3; 0 turns this trigger off). An upstream
    /// 429 starts a cooldown at once.
    pub fn cooldown_after_failures(mut self, failures: u32) -> Self {
        self.cooldown.after_failures = failures;
        self
    }

    /// How long a cooldown lasts (`routing.cooldown_ms`; default 30 s; zero turns cooldowns
    /// off). A Retry-After from the upstream sets the length instead.
    pub fn cooldown(mut self, duration: Duration) -> Self {
        self.cooldown.duration = duration;
        self
    }

    /// Models tried after a named model's own fallbacks, for every named model (and for
    /// ad-hoc `provider/model` names). Names that are not configured are ignored.
    pub fn default_fallbacks(mut self, models: Vec<String>) -> Self {
        self.default_fallbacks = models;
        self
    }

    /// Where per-user rpm (`Tier::rpm`) and per-deployment rpm are counted. Default: in this
    /// process. Give every replica the same Redis-backed limiter to share the limits.
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Share cooldowns with other replicas: published when a deployment enters one, pulled in
    /// the background at most once per `sync_interval`.
    pub fn shared_cooldowns(
        mut self,
        store: Arc<dyn SharedCooldowns>,
        sync_interval: Duration,
    ) -> Self {
        self.shared_cooldowns = Some(store);
        self.cooldown_sync_interval = sync_interval;
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

    /// Write settles and usage records behind the answer: queued (at most `queue` writes;
    /// beyond that requests wait for room) and committed in batches by one background task,
    /// instead of awaited on every request. Holds go through the same queue (committed in
    /// order, together under load) and the request waits for its own; credits are written at
    /// once, and [`Gateway::credits`] reads wait for the queued writes. A process killed
    /// outright loses what was queued: those requests go uncharged (their holds expire and are
    /// reclaimed) and uncharged ones miss from usage. Default: off.
    pub fn ledger_write_behind(mut self, queue: usize) -> Self {
        self.write_behind = Some(queue.max(1));
        self
    }

    /// With write-behind: keep each user's spendable balance in memory, so that a hold is a
    /// subtraction there and its write is queued instead of awaited (see the ledger queue's
    /// docs). Only for a ledger no other process writes — the embedded SQLite default; replicas
    /// sharing PostgreSQL must not (each would spend the same balance). Default: off.
    pub fn ledger_reserve_in_memory(mut self) -> Self {
        self.reserve_in_memory = true;
        self
    }

    /// With write-behind: serve holds from **balance leases**. The gateway takes a slice of an
    /// account's balance in one database step (sized to about a second of the account's
    /// recent holds, never more than half of what the balance has beyond the hold that needs
    /// it), serves holds from it in memory, charges through the ledger queue and gives back
    /// what is left once no hold was in flight for `idle`, at shutdown
    /// ([`Gateway::settled`]), or at once when the balance is small. Safe with any number of
    /// replicas; a lease is an open hold in the ledger, reclaimed like one when its replica
    /// stops. Holds against a key budget are still placed one by one. Takes precedence over
    /// [`ledger_reserve_in_memory`](Self::ledger_reserve_in_memory); a store without leases
    /// ([`CreditStore::leases`](crate::credits::CreditStore::leases)) keeps per-request holds.
    /// Default: off.
    pub fn ledger_leases(mut self, idle: Duration) -> Self {
        self.lease_idle = Some(idle);
        self
    }

    /// The gateway, ready to serve. Nothing is checked here: a deployment whose provider was
    /// never added fails when a request reaches it.
    pub fn build(self) -> Gateway {
        let routes = RouteTable::build(
            &self.catalog,
            &self.providers,
            &self.power_levels,
            &self.default_fallbacks,
        );
        let states = Arc::new(DeploymentStates::new(
            self.catalog.deployments(),
            self.cooldown,
            self.shared_cooldowns,
            self.cooldown_sync_interval,
        ));
        let metrics = GatewayMetrics::new(
            self.catalog.deployments(),
            self.providers.keys().map(String::as_str),
        );
        let credits = self
            .credits
            .unwrap_or_else(|| Arc::new(MemoryCreditStore::new()));
        let writer = self.write_behind.map(|queue| {
            let writer = LedgerWriter::new(
                credits.clone(),
                queue,
                metrics.usage_record_failures.clone(),
            );
            Arc::new(match self.lease_idle {
                Some(idle) if credits.leases() => writer.with_leases(idle),
                _ if self.reserve_in_memory => writer.reserve_in_memory(),
                _ => writer,
            })
        });
        let credits_view = writer
            .as_ref()
            .map_or_else(|| credits.clone(), |writer| writer.flushed_view());
        Gateway {
            inner: Arc::new(Inner {
                providers: self.providers,
                platform_keys: self.platform_keys,
                catalog: self.catalog,
                resolver: self.resolver,
                ledger: credits,
                credits: credits_view,
                writer,
                vault: self.vault,
                policy: self.policy.unwrap_or_else(|| Arc::new(InOrder)),
                power_levels: self.power_levels,
                credits_per_usd: self.credits_per_usd,
                max_attempts: self.max_attempts,
                num_retries: self.num_retries,
                backoff: self.backoff,
                hold_ttl: self.hold_ttl,
                default_max_tokens: self.default_max_tokens,
                next_request: AtomicU64::new(1),
                next_route: AtomicU64::new(0),
                routes,
                states,
                limiter: self
                    .limiter
                    .unwrap_or_else(|| Arc::new(InProcessRateLimiter::new())),
                fail_open_warned: AtomicU64::new(0),
                metrics,
                settlements: Arc::default(),
            }),
        }
    }
}
