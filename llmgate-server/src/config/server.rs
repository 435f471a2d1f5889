//! `server:`, `storage:` and `byok:`.

use llmgate_core::keys::Secret;
use serde::Deserialize;

use super::values::{optional_secret, secret_list};

/// `server:` — where and how the HTTP server listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// `IP:PORT` to bind.
    pub listen: String,
    /// The admin key; else `$LLMGATE_MASTER_KEY`, else one generated into the data directory.
    #[serde(deserialize_with = "optional_secret")]
    pub master_key: Option<Secret>,
    /// Requests with a larger body are refused with 413.
    pub max_body_bytes: u64,
    /// How long a new connection may take to send its first request's headers (a connection
    /// that sends nothing is closed after this too).
    pub header_read_timeout_ms: u64,
    /// How long a connection may stay open with no request in flight (between keep-alive
    /// requests, or an HTTP/2 connection with no stream); the next request's headers must
    /// arrive within it.
    pub idle_timeout_ms: u64,
    /// How long a request body may take to arrive, from the start of reading it; slower
    /// bodies get 408 and the connection is closed.
    pub body_read_timeout_ms: u64,
    /// Open client connections at most; connections beyond it get a 503 and are closed. Also
    /// capped by the process's open-file limit (see `connections::effective_limit`).
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests (streams included) to finish.
    pub shutdown_grace_ms: u64,
    /// Serve `GET /metrics` on this `IP:PORT` only (e.g. a private interface) instead of on
    /// `listen`.
    pub metrics_listen: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:4000".to_owned(),
            master_key: None,
            max_body_bytes: 4 * 1024 * 1024,
            header_read_timeout_ms: 30_000,
            idle_timeout_ms: 75_000,
            body_read_timeout_ms: 60_000,
            max_connections: 4_096,
            shutdown_grace_ms: 30_000,
            metrics_listen: None,
        }
    }
}

/// `storage:` — the ledger's database and the optional shared cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite://FILE` or `postgres://...`.
    pub database_url: String,
    pub redis_url: Option<String>,
    /// Prepended to every Redis key (rate limits, cooldowns, the balance cache): replicas
    /// that share state must use the same one; separate deployments on one Redis, different
    /// ones.
    pub redis_prefix: String,
    /// How long a credit hold nobody settles (its replica crashed) lives before it is reclaimed.
    pub hold_ttl_secs: u64,
    /// How often each replica beats and reclaims abandoned holds (also once at start).
    pub reclaim_every_secs: u64,
    /// A replica silent this long (killed, cut off) counts as stopped: the others reclaim its
    /// holds at their next reclaim, long before the holds expire.
    pub replica_timeout_secs: u64,
    /// Serve paid requests from balance leases: a slice of an account's balance taken in one
    /// database step and spent from memory (see docs/credits.md). Off: a hold per request.
    pub leases: bool,
    /// A lease with no request in flight for this long goes back to the balance, where any
    /// replica can spend it.
    pub lease_idle_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            database_url: "sqlite://llmgate.db".to_owned(),
            redis_url: None,
            redis_prefix: "llmgate:".to_owned(),
            hold_ttl_secs: 3600,
            reclaim_every_secs: 10,
            replica_timeout_secs: 50,
            leases: true,
            lease_idle_ms: 1_000,
        }
    }
}

impl StorageConfig {
    /// The SQLite file, when the database is a SQLite file.
    pub fn sqlite_path(&self) -> Option<&str> {
        let rest = self
            .database_url
            .strip_prefix("sqlite://")
            .or_else(|| self.database_url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().unwrap_or(rest);
        (!path.is_empty() && path != ":memory:").then_some(path)
    }

    /// Whether the URL names a backend this server knows.
    pub fn is_known_backend(&self) -> bool {
        let url = self.database_url.as_str();
        url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://")
    }
}

/// `byok:` — sealing users' own provider keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ByokConfig {
    /// Base64 of 32 bytes (AES-256-GCM): seals new keys and opens keys sealed with it.
    #[serde(deserialize_with = "optional_secret")]
    pub encryption_key: Option<Secret>,
    /// Keys used before `encryption_key`, still accepted for opening during a rotation
    /// (`llmgate rotate-keys` re-seals everything under `encryption_key`).
    #[serde(deserialize_with = "secret_list")]
    pub previous_keys: Vec<Secret>,
}
