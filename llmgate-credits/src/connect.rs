//! Pick the ledger backend from `storage.database_url`.

use std::sync::Arc;

use llmgate_core::{Error, Result, credits::CreditStore};

use crate::{PostgresCreditStore, SqliteCreditStore};

/// The database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (`sqlite:`): one machine.
    Sqlite,
    /// A PostgreSQL database (`postgres://`): replicas may share it.
    Postgres,
}

impl Backend {
    /// `sqlite:…` or `postgres://…` / `postgresql://…`.
    pub fn from_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(Error::invalid_request(
                "storage.database_url must start with sqlite:, postgres:// or postgresql://",
            ))
        }
    }
}

/// Either SQL ledger, chosen at run time, with the pool and health check still reachable.
#[derive(Debug, Clone)]
pub enum SqlCreditStore {
    /// The SQLite ledger.
    Sqlite(SqliteCreditStore),
    /// The PostgreSQL ledger.
    Postgres(PostgresCreditStore),
}

impl SqlCreditStore {
    /// Connect to the database `url` names and run its migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Ok(match Backend::from_url(url)? {
            Backend::Sqlite => SqlCreditStore::Sqlite(SqliteCreditStore::connect(url).await?),
            Backend::Postgres => SqlCreditStore::Postgres(PostgresCreditStore::connect(url).await?),
        })
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        match self {
            SqlCreditStore::Sqlite(_) => Backend::Sqlite,
            SqlCreditStore::Postgres(_) => Backend::Postgres,
        }
    }

    /// At the start of a server that owns its ledger alone (SQLite), release the holds a
    /// previous run left open; PostgreSQL's are shared with other replicas and wait for their
    /// expiry. Returns how many were released.
    pub async fn release_holds_of_a_previous_run(&self) -> Result<u64> {
        match self {
            SqlCreditStore::Sqlite(store) => store.release_every_hold().await,
            SqlCreditStore::Postgres(_) => Ok(0),
        }
    }

    /// How long peers wait without a beat from this replica before they reclaim its holds.
    pub fn with_replica_timeout(self, timeout: std::time::Duration) -> Self {
        match self {
            SqlCreditStore::Sqlite(store) => {
                SqlCreditStore::Sqlite(store.with_replica_timeout(timeout))
            }
            SqlCreditStore::Postgres(store) => {
                SqlCreditStore::Postgres(store.with_replica_timeout(timeout))
            }
        }
    }

    /// Say this replica is alive; see `beat` on the stores.
    pub async fn beat(&self) -> Result<()> {
        match self {
            SqlCreditStore::Sqlite(store) => store.beat().await,
            SqlCreditStore::Postgres(store) => store.beat().await,
        }
    }

    /// Check the ledger's invariants; reads only.
    pub async fn verify_ledger(&self) -> Result<crate::LedgerReport> {
        match self {
            SqlCreditStore::Sqlite(store) => store.verify_ledger().await,
            SqlCreditStore::Postgres(store) => store.verify_ledger().await,
        }
    }

    /// Whether the database answers (for `/health/ready`).
    pub async fn ping(&self) -> Result<()> {
        match self {
            SqlCreditStore::Sqlite(store) => store.ping().await,
            SqlCreditStore::Postgres(store) => store.ping().await,
        }
    }

    /// Whether the database answers and is migrated (for `/health/ready`).
    pub async fn ready(&self) -> Result<()> {
        match self {
            SqlCreditStore::Sqlite(store) => store.ready().await,
            SqlCreditStore::Postgres(store) => store.ready().await,
        }
    }
}

/// Every call goes to the backend the URL named.
impl llmgate_core::credits::forwarding::ForwardingCreditStore for SqlCreditStore {
    fn inner(&self) -> &dyn CreditStore {
        match self {
            SqlCreditStore::Sqlite(store) => store,
            SqlCreditStore::Postgres(store) => store,
        }
    }
}

/// Connect the ledger named by `url` (`sqlite:` or `postgres:`), migrated and ready.
pub async fn connect_credit_store(url: &str) -> Result<Arc<dyn CreditStore>> {
    Ok(Arc::new(SqlCreditStore::connect(url).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_follows_the_url_scheme() {
        assert_eq!(
            Backend::from_url("sqlite://llmgate.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::from_url("sqlite::memory:").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::from_url("postgres://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db").unwrap(),
            Backend::Postgres
        );
        let error = Backend::from_url("mysql://u:secret@h/db").unwrap_err();
        assert!(!error.message().contains("secret"));
    }
}
