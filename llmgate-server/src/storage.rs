//! Every backend the server keeps state in, built in one place from `storage:` and `byok:`:
//! the ledger (SQLite or PostgreSQL, behind the Redis balance cache when `storage.redis_url` is
//! set), the users, the BYOK vault and the stored responses, all on the ledger's one connection
//! pool, plus the tasks that reclaim expired credit holds and prune expired responses.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use llmgate_core::{
    Result, caller::Tier, credits::CreditStore, keys::Secret, pricing::credits_to_micros,
};
use llmgate_credits::responses::spawn_pruner;
use llmgate_credits::users::DirectorySettings;
use llmgate_credits::vault::VaultSettings;
use llmgate_credits::{
    Backend, CacheSettings, CachedCreditStore, Keyring, SqlCreditStore, SqlKeyVault, SqlPool,
    SqlResponseStore, SqlUserStore, UserDirectory, VaultKey, spawn_reclaimer,
};
use tokio::task::JoinHandle;

use crate::config::{ByokConfig, Config, ConfigError, Problem};
use crate::telemetry::MeteredCreditStore;

/// The server's backends. Built by [`Storage::connect`]; shared by every request.
#[derive(Debug)]
pub struct Storage {
    /// The ledger as the gateway uses it (through the Redis cache when configured).
    pub credits: Arc<dyn CreditStore>,
    /// The SQL ledger itself, for other tables in its database.
    pub ledger: SqlCreditStore,
    /// The Redis balance cache, when `storage.redis_url` is set.
    pub cache: Option<Arc<CachedCreditStore>>,
    /// Users and API keys, cached for the request path.
    pub users: Arc<UserDirectory>,
    /// Users' own provider keys; `None` when `byok.encryption_key` is not set.
    pub vault: Option<Arc<SqlKeyVault>>,
    /// The Responses API's stored answers (`previous_response_id`), kept per owner.
    pub responses: Arc<SqlResponseStore>,
    reclaimer: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
    /// Deletes stored responses past `responses.retention_days`; `None` when kept forever.
    pruner: Option<JoinHandle<()>>,
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.reclaimer.abort();
        self.heartbeat.abort();
        if let Some(pruner) = &self.pruner {
            pruner.abort();
        }
    }
}

impl Storage {
    /// Connect to the database (running its migrations), Redis when configured, and load the
    /// BYOK keys. Failures are reported as config problems at the path that caused them.
    pub async fn connect(
        config: &Config,
        tiers: &HashMap<String, Arc<Tier>>,
    ) -> Result<Self, ConfigError> {
        let keyring = keyring(&config.byok).map_err(|problems| ConfigError {
            source_name: None,
            problems,
        })?;
        let url = &config.storage.database_url;
        let ledger = SqlCreditStore::connect(url)
            .await
            .map_err(|error| problem("storage.database_url", error.message()))?
            .with_replica_timeout(Duration::from_secs(config.storage.replica_timeout_secs));
        let (credits, cache): (Arc<dyn CreditStore>, _) = match &config.storage.redis_url {
            Some(redis_url) => {
                let cached = CachedCreditStore::connect(
                    MeteredCreditStore::database(Arc::new(ledger.clone())),
                    redis_url,
                    CacheSettings::default()
                        .with_key_prefix(format!("{}balance:", config.storage.redis_prefix)),
                )
                .await
                .map_err(|error| problem("storage.redis_url", error.message()))?;
                let cached = Arc::new(cached);
                (cached.clone(), Some(cached))
            }
            None => (MeteredCreditStore::database(Arc::new(ledger.clone())), None),
        };
        // Low-balance alerts wrap the ledger before anyone (gateway, monthly grants) uses it.
        let credits = crate::billing::with_low_balance_alerts(
            &config.billing,
            crate::billing::sql_store(&ledger),
            credits,
        )
        .map_err(|error| problem("billing.low_credit_alert", error.message()))?;
        let pool = SqlPool::of(&ledger);
        let responses = Arc::new(SqlResponseStore::new(pool.clone()));
        let users = UserDirectory::new(
            Arc::new(SqlUserStore::new(pool.clone())),
            credits.clone(),
            monthly_grants(tiers),
            DirectorySettings::default(),
        );
        let vault = keyring
            .map(|keyring| Arc::new(SqlKeyVault::new(pool, keyring, VaultSettings::default())));
        if let Some(warning) = byok_warning(config) {
            tracing::warn!("{warning}");
        }
        tracing::info!(
            backend = match ledger.backend() {
                Backend::Sqlite => "sqlite",
                Backend::Postgres => "postgres",
            },
            redis = cache.is_some(),
            byok = vault.is_some(),
            "storage ready"
        );
        // This replica beats, and holds past their expiry or of stopped replicas are released,
        // this often; also once at start.
        let reclaimer = spawn_reclaimer(
            credits.clone(),
            Duration::from_secs(config.storage.reclaim_every_secs),
        );
        let heartbeat = spawn_heartbeat(
            ledger.clone(),
            Duration::from_secs(config.storage.reclaim_every_secs),
        );
        let pruner = config.responses.retention().map(|retention| {
            spawn_pruner(
                responses.clone(),
                retention,
                Duration::from_secs(config.responses.prune_every_secs),
            )
        });
        Ok(Self {
            credits,
            ledger,
            cache,
            users: Arc::new(users),
            vault,
            responses,
            reclaimer,
            heartbeat,
            pruner,
        })
    }

    /// Whether the database answers.
    pub async fn ping_database(&self) -> Result<()> {
        self.ledger.ping().await
    }

    /// Whether Redis answers; `None` when no Redis is configured.
    pub async fn ping_redis(&self) -> Option<Result<()>> {
        match &self.cache {
            Some(cache) => Some(cache.ping().await),
            None => None,
        }
    }
}

/// This replica's beat, on a task of its own (a reclaim beats too, but one with many holds to
/// give back must not delay the beat past `storage.replica_timeout_secs`).
fn spawn_heartbeat(ledger: SqlCreditStore, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = ledger.beat().await {
                tracing::warn!(%error, "the replica's heartbeat could not be written");
            }
        }
    })
}

fn problem(path: &str, message: &str) -> ConfigError {
    ConfigError {
        source_name: None,
        problems: vec![Problem::new(path, message)],
    }
}

/// Why BYOK is off although tiers allow it (no `byok.encryption_key`), if it is. The server
/// starts anyway, so the quickstart runs without a key; users of those tiers are told why
/// they cannot store keys (403 `byok_disabled`).
pub fn byok_warning(config: &Config) -> Option<String> {
    if config.byok.encryption_key.is_some() {
        return None;
    }
    let tiers: Vec<&str> = config
        .tiers
        .iter()
        .filter(|(_, tier)| tier.byok)
        .map(|(name, _)| name.as_str())
        .collect();
    (!tiers.is_empty()).then(|| {
        format!(
            "BYOK is off: tiers {} allow it but byok.encryption_key is not set, so users cannot \
             store provider keys (set it to the base64 of 32 random bytes, e.g. `openssl rand \
             -base64 32`)",
            tiers.join(", ")
        )
    })
}

/// The vault's keys from `byok:`; `None` when no key is configured (BYOK off).
pub fn keyring(byok: &ByokConfig) -> Result<Option<Keyring>, Vec<Problem>> {
    let Some(current) = &byok.encryption_key else {
        return Ok(None);
    };
    let mut problems = Vec::new();
    let mut parse = |path: String, key: &Secret| match VaultKey::from_base64(key) {
        Ok(key) => Some(key),
        Err(error) => {
            problems.push(Problem::new(path, error.to_string()));
            None
        }
    };
    let newest = parse("byok.encryption_key".to_owned(), current);
    let older: Vec<VaultKey> = byok
        .previous_keys
        .iter()
        .enumerate()
        .filter_map(|(i, key)| parse(format!("byok.previous_keys[{i}]"), key))
        .collect();
    match newest {
        Some(newest) if problems.is_empty() => Ok(Some(Keyring::new(newest, older))),
        _ => Err(problems),
    }
}

/// Each tier's monthly grant in micro-credits.
fn monthly_grants(tiers: &HashMap<String, Arc<Tier>>) -> HashMap<String, i64> {
    tiers
        .iter()
        .filter_map(|(name, tier)| {
            let credits = tier.monthly_credits?;
            Some((name.clone(), credits_to_micros(credits).ok()?))
        })
        .collect()
}
