//! Everything a request handler needs, built once from the config: the gateway (providers,
//! models, prices, power levels, credit store), the tiers and authentication.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmgate_core::{
    Gateway, GatewayBuilder,
    caller::Tier,
    catalog::{Deployment, ModelMode, Privacy},
    keys::Secret,
    memory::MemoryCreditStore,
    power::PowerLevel,
    pricing::{Decimal, ModelPrice},
};
use llmgate_credits::{Backend, SqlPool, SqlRequestLog};
use llmgate_providers::{build_provider, resolve_model};

use crate::auth::{Auth, DirectoryKeys};
use crate::billing::{self, Billing};
use crate::config::{Config, ConfigError, ModelConfig, Problem, ProviderConfig, ProviderKind};
use crate::request_log::RequestLog;
use crate::storage::Storage;
use crate::telemetry::Traces;

/// Settles and usage records queued behind answers at most (then requests wait for room);
/// they are committed in batches, so this is far more than a busy second needs.
const LEDGER_QUEUE: usize = 16_384;

/// Shared state of a running server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub gateway: Gateway,
    pub auth: Auth,
    pub config: Arc<Config>,
    /// Tiers by name.
    pub tiers: Arc<HashMap<String, Arc<Tier>>>,
    /// The ledger, users and BYOK vault (one database pool).
    pub storage: Arc<Storage>,
    /// Credit packages, Stripe purchases and the webhook.
    pub billing: Billing,
    /// The request log (in the ledger's database) and its writer.
    pub request_log: Arc<RequestLog>,
    /// Unix seconds when the server started (the `created` of listed models).
    pub started_at: u64,
    /// The OpenTelemetry tracer, when `telemetry.otlp_endpoint` is set.
    pub traces: Option<Traces>,
}

impl AppState {
    /// Build from a validated config and the master key: connect the storage (running its
    /// migrations), then assemble the gateway over it.
    pub async fn new(config: Config, master_key: &Secret) -> Result<Self, ConfigError> {
        // Before anything takes metric handles (the metered ledger, the gateway).
        crate::telemetry::install_recorder();
        let tiers = Arc::new(tiers(&config));
        let storage = Arc::new(Storage::connect(&config, &tiers).await?);
        let mut builder = gateway_builder(&config)?
            .credit_store(storage.credits.clone())
            .ledger_write_behind(LEDGER_QUEUE);
        // Balance leases (on by default): holds are served from a slice of the balance taken
        // in one step, on either backend. Without them, one process owns a SQLite ledger, so
        // its balances are kept in memory and a hold is queued instead of awaited; PostgreSQL
        // replicas share balances and must wait.
        if config.storage.leases {
            builder = builder.ledger_leases(Duration::from_millis(config.storage.lease_idle_ms));
        }
        if storage.ledger.backend() == Backend::Sqlite {
            if !config.storage.leases {
                builder = builder.ledger_reserve_in_memory();
            }
            let released = storage
                .ledger
                .release_holds_of_a_previous_run()
                .await
                .map_err(|error| ConfigError {
                    source_name: None,
                    problems: vec![Problem::new("storage.database_url", error.message())],
                })?;
            if released > 0 {
                tracing::info!(released, "released the holds a previous run left open");
            }
        }
        if let Some(vault) = &storage.vault {
            builder = builder.key_vault(vault.clone());
        }
        if let Some(redis_url) = &config.storage.redis_url {
            builder = crate::replicas::share_through_redis(
                builder,
                redis_url,
                &config.storage.redis_prefix,
            )
            .await?;
        }
        let auth = Auth::new(master_key).with_user_keys(Arc::new(DirectoryKeys::new(
            storage.users.clone(),
            tiers.clone(),
        )));
        let billing = Billing::new(&config.billing, billing::sql_store(&storage.ledger)).map_err(
            |error| ConfigError {
                source_name: None,
                problems: vec![Problem::new("billing", error.message())],
            },
        )?;
        let request_log = Arc::new(RequestLog::start(
            &config.logging,
            Arc::new(
                SqlRequestLog::new(SqlPool::of(&storage.ledger))
                    .writing_through(SqlPool::background_writes_of(&storage.ledger)),
            ),
        ));
        let traces = Traces::from_config(&config.telemetry).map_err(|problem| ConfigError {
            source_name: None,
            problems: vec![problem],
        })?;
        Ok(Self {
            gateway: builder.build(),
            auth,
            tiers,
            storage,
            billing,
            request_log,
            config: Arc::new(config),
            started_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            traces,
        })
    }
}

/// The gateway over an in-memory ledger, for `llmgate check` and tests that need no storage.
pub fn build_gateway(config: &Config) -> Result<Gateway, ConfigError> {
    Ok(gateway_builder(config)?
        .credit_store(Arc::new(MemoryCreditStore::new()))
        .build())
}

/// Everything of the gateway but its backends; fails with every provider that cannot be built.
fn gateway_builder(config: &Config) -> Result<GatewayBuilder, ConfigError> {
    let mut builder = Gateway::builder()
        .credits_per_usd(config.billing.credits_per_usd.value())
        .hold_ttl(Duration::from_secs(config.storage.hold_ttl_secs))
        .routing_strategy(config.routing.strategy)
        .num_retries(config.routing.num_retries)
        .max_attempts(config.routing.max_attempts)
        .backoff(
            Duration::from_millis(config.routing.backoff_base_ms),
            Duration::from_millis(config.routing.backoff_max_ms),
        )
        .max_retry_wait(Duration::from_millis(config.routing.max_retry_wait_ms))
        .default_fallbacks(config.routing.default_fallbacks.clone())
        .cooldown_after_failures(config.routing.cooldown_after_failures)
        .cooldown(Duration::from_millis(config.routing.cooldown_ms));
    for level in PowerLevel::ALL {
        builder = builder.power_level(level, config.power_levels.policy(level));
    }

    let mut problems = Vec::new();
    let mut usable: HashMap<String, &ProviderConfig> = HashMap::new();
    for (i, provider) in config.providers.iter().enumerate() {
        match build_provider(&provider.spec()) {
            Ok(built) => {
                builder = builder.provider(built);
                if let Some(key) = &provider.api_key {
                    builder = builder.platform_key(provider.name.clone(), key.clone());
                }
                usable.insert(provider.name.clone(), provider);
            }
            Err(error) if provider.from_env => {
                tracing::warn!(provider = %provider.name, %error, "skipping the provider preset");
            }
            Err(error) => problems.push(Problem::new(format!("providers[{i}]"), error.to_string())),
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError {
            source_name: None,
            problems,
        });
    }

    for model in &config.models {
        // Models of a skipped preset provider are left out with it.
        if let Some(provider) = usable.get(&model.provider) {
            builder = builder.model(deployment(model, provider));
        }
    }
    let resolver_providers: HashMap<String, AdHoc> = usable
        .iter()
        .map(|(name, p)| {
            (
                name.clone(),
                AdHoc {
                    local: p.local,
                    free: p.kind == ProviderKind::Demo,
                },
            )
        })
        .collect();
    builder = builder.model_resolver(move |name| resolve_ad_hoc(&resolver_providers, name));
    Ok(builder)
}

/// Every provider that would fail to build, for `llmgate check`.
pub fn provider_problems(config: &Config) -> Vec<Problem> {
    config
        .providers
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.from_env)
        .filter_map(|(i, p)| {
            build_provider(&p.spec())
                .err()
                .map(|error| Problem::new(format!("providers[{i}]"), error.to_string()))
        })
        .collect()
}

fn deployment(model: &ModelConfig, provider: &ProviderConfig) -> Deployment {
    let mut deployment = Deployment::new(&model.name, &model.provider, model.upstream());
    let (input, output) = model.prices();
    // An embedding model produces no output: its input price alone prices it.
    let output = output
        .map(crate::config::DecimalText::value)
        .or_else(|| (model.mode == ModelMode::Embedding).then_some(Decimal::ZERO));
    deployment.price = match (input, output) {
        (Some(input), Some(output)) => {
            let price = ModelPrice::new(input.value(), output);
            // An unset cache price is the input price.
            Some(
                price.with_cache_prices(
                    model
                        .cache_read_cost_per_1k
                        .as_ref()
                        .map_or(price.cache_read_per_1k, crate::config::DecimalText::value),
                    model
                        .cache_write_cost_per_1k
                        .as_ref()
                        .map_or(price.cache_write_per_1k, crate::config::DecimalText::value),
                ),
            )
        }
        _ if model.free => Some(ModelPrice::default()),
        _ => None,
    };
    deployment.quality = model.quality;
    deployment.context_window = model.context_window;
    deployment.max_output_tokens = model.max_output_tokens;
    deployment.rpm = model.rpm;
    deployment.tpm = model.tpm;
    deployment.fallbacks.clone_from(&model.fallbacks);
    deployment.tags.clone_from(&model.tags);
    deployment.latency = model.latency;
    deployment.privacy = model.privacy.unwrap_or(if provider.local {
        Privacy::High
    } else {
        Privacy::Low
    });
    deployment.local = provider.local;
    deployment.weight = model.weight;
    deployment.priority = model.priority;
    deployment.mode = model.mode;
    deployment.max_inputs = model.max_inputs;
    deployment
}

/// What the resolver needs to know about a provider.
struct AdHoc {
    local: bool,
    free: bool,
}

/// A model name no `models:` entry lists, resolved by the providers crate (`provider/model`,
/// well-known bare names such as `gpt-4o` with their list prices) over the usable providers,
/// then given what only this config knows: whether the provider is local (its models are then
/// private) and whether it is the free demo. Unknown models stay unpriced (BYOK or admin only).
fn resolve_ad_hoc(providers: &HashMap<String, AdHoc>, name: &str) -> Option<Deployment> {
    let names: Vec<&str> = providers.keys().map(String::as_str).collect();
    let mut deployment = resolve_model(name, &names)?;
    let facts = providers.get(&deployment.provider)?;
    if facts.free {
        deployment.price = Some(ModelPrice::default());
    }
    deployment.local = facts.local;
    deployment.privacy = if facts.local {
        Privacy::High
    } else {
        Privacy::Low
    };
    Some(deployment)
}

fn tiers(config: &Config) -> HashMap<String, Arc<Tier>> {
    config
        .tiers
        .iter()
        .map(|(name, tier)| {
            let mut built = Tier::new(name.clone());
            built.markup = tier.markup.value();
            built.byok = tier.byok;
            built.monthly_credits = tier.monthly_credits.as_ref().map(|c| c.value());
            built.default_power_level = tier
                .default_power_level
                .parse()
                .unwrap_or(PowerLevel::Balanced);
            built.rpm = tier.rpm;
            built.require_private = tier.require_private;
            (name.clone(), Arc::new(built))
        })
        .collect()
}

/// Distinct provider names, for log lines.
pub fn provider_names(config: &Config) -> Vec<&str> {
    let mut seen = HashSet::new();
    config
        .providers
        .iter()
        .map(|p| p.name.as_str())
        .filter(|n| seen.insert(*n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    #[test]
    fn ad_hoc_names_resolve_on_configured_providers_only() {
        let providers = HashMap::from([
            (
                "demo".to_owned(),
                AdHoc {
                    local: true,
                    free: true,
                },
            ),
            (
                "groq".to_owned(),
                AdHoc {
                    local: false,
                    free: false,
                },
            ),
        ]);
        let demo = resolve_ad_hoc(&providers, "demo/anything").unwrap();
        assert!(demo.is_free());
        let groq = resolve_ad_hoc(&providers, "groq/llama3-70b-8192").unwrap();
        assert_eq!(groq.upstream_model, "llama3-70b-8192");
        assert_eq!(groq.price, None);
        assert!(resolve_ad_hoc(&providers, "nope/x").is_none());
        assert!(resolve_ad_hoc(&providers, "groq/").is_none());
        assert!(resolve_ad_hoc(&providers, "plain").is_none());
        // A well-known bare name needs its vendor's provider.
        assert!(resolve_ad_hoc(&providers, "gpt-4o").is_none());
        let mut with_openai = providers;
        with_openai.insert(
            "openai".to_owned(),
            AdHoc {
                local: false,
                free: false,
            },
        );
        let gpt = resolve_ad_hoc(&with_openai, "gpt-4o").unwrap();
        assert_eq!(
            (
                gpt.name.as_str(),
                gpt.provider.as_str(),
                gpt.upstream_model.as_str()
            ),
            ("gpt-4o", "openai", "gpt-4o")
        );
        // The providers crate's list price and limits come with it.
        assert_eq!(
            gpt.price,
            Some(
                ModelPrice::new("0.0025".parse().unwrap(), "0.01".parse().unwrap())
                    .with_cache_prices("0.00125".parse().unwrap(), "0.0025".parse().unwrap())
            )
        );
        assert_eq!(gpt.context_window, Some(128_000));
        // Its prefix rules too: `o1x` is no OpenAI reasoning model.
        assert!(resolve_ad_hoc(&with_openai, "o1x").is_none());
    }

    #[test]
    fn ad_hoc_locality_comes_from_the_config_not_the_provider_name() {
        let providers = HashMap::from([
            (
                "ollama".to_owned(),
                AdHoc {
                    local: false,
                    free: false,
                },
            ),
            (
                "gpu".to_owned(),
                AdHoc {
                    local: true,
                    free: false,
                },
            ),
        ]);
        let remote = resolve_ad_hoc(&providers, "ollama/llama3").unwrap();
        assert!(!remote.local, "written `local: false` wins over the preset");
        assert_eq!(remote.privacy, Privacy::Low);
        let gpu = resolve_ad_hoc(&providers, "gpu/qwen").unwrap();
        assert!(gpu.local);
        assert_eq!(gpu.privacy, Privacy::High);
        assert_eq!(gpu.price, None);
    }

    #[test]
    fn local_providers_make_private_keyless_deployments() {
        let yaml = r#"
providers:
  - { name: ollama, kind: ollama }
  - { name: gpu, kind: openai, api_base: "http://10.0.0.5:8000/v1", local: true }
  - { name: groq, kind: openai }
models:
  - { name: llama-local, provider: ollama, upstream_model: "llama3.2", free: true }
  - { name: qwen-gpu, provider: gpu, upstream_model: qwen, free: true }
  - { name: shared, provider: gpu, upstream_model: qwen, free: true, privacy: low }
  - { name: llama-groq, provider: groq, upstream_model: llama3-70b, cost_per_1k: 0.001 }
"#;
        let config = Config::from_yaml(yaml, &Env::from_pairs([("X", "y")])).unwrap();
        assert!(config.validate().is_empty(), "{:?}", config.validate());
        let gateway = build_gateway(&config).unwrap();
        let deployment = |name: &str| gateway.catalog().by_name(name).next().unwrap().clone();
        for name in ["llama-local", "qwen-gpu"] {
            let d = deployment(name);
            assert!(d.local, "{name}");
            assert_eq!(d.privacy, Privacy::High, "{name}");
        }
        assert_eq!(
            deployment("shared").privacy,
            Privacy::Low,
            "written privacy wins"
        );
        assert!(!deployment("llama-groq").local);
        assert_eq!(deployment("llama-groq").privacy, Privacy::Low);
        let requires_key = |name: &str| {
            gateway
                .providers()
                .find(|p| p.name() == name)
                .unwrap()
                .requires_key()
        };
        assert!(!requires_key("ollama"));
        assert!(!requires_key("gpu"), "local and no api_key: key-free");
        assert!(requires_key("groq"));
    }

    #[test]
    fn anthropic_preset_never_blocks_startup() {
        let env = Env::from_pairs([("ANTHROPIC_API_KEY", "sk-ant-test")]);
        let config = Config::builtin(&env);
        assert!(build_gateway(&config).is_ok());
        assert!(provider_problems(&config).is_empty());
    }

    #[test]
    fn builtin_tiers_carry_markup_and_default_level() {
        let config = Config::builtin(&Env::from_pairs([("X", "y")]));
        let tiers = tiers(&config);
        assert_eq!(tiers["starter"].markup, "0.4".parse().unwrap());
        assert_eq!(tiers["free"].default_power_level, PowerLevel::Eco);
        assert_eq!(
            tiers["enterprise"].default_power_level,
            PowerLevel::Precision
        );
    }
}
