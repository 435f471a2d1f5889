//! Credit ledgers for llmgate: [`SqliteCreditStore`] (the embedded default),
//! [`PostgresCreditStore`] (replicas sharing one database) and [`CachedCreditStore`] (a Redis
//! balance cache in front of either). All implement [`llmgate_core::CreditStore`] with the
//! semantics of the in-memory reference store; the SQL that keeps each invariant is in
//! `docs/credits.md`.
//!
//! ```no_run
//! use llmgate_core::{Credit, CreditKind};
//!
//! # async fn demo() -> llmgate_core::Result<()> {
//! let store = llmgate_credits::connect_credit_store("sqlite://llmgate.db").await?;
//! store
//!     .credit(Credit {
//!         user_id: "ann".into(),
//!         kind: CreditKind::TopUp,
//!         amount_micros: 5_000_000,
//!         idempotency_key: "stripe:cs_test_123".into(),
//!         reason: "bought 5 credits".into(),
//!     })
//!     .await?;
//! llmgate_credits::grant_monthly(&*store, "ann", 1_000_000_000, llmgate_core::memory::unix_now())
//!     .await?;
//! assert!(store.balance("ann").await? >= 5_000_000);
//! # Ok(())
//! # }
//! ```

mod cache;
mod connect;
mod error;
mod grants;
mod postgres;
mod redis_limits;
mod redis_link;
mod sql;
mod sqlite;
pub mod users;
pub mod vault;
mod verify;

pub use cache::{CacheSettings, CachedCreditStore};
pub use connect::{Backend, SqlCreditStore, connect_credit_store};
pub use grants::{grant_monthly, month_of, monthly_grant_key, spawn_reclaimer};
pub use postgres::PostgresCreditStore;
pub use redis_limits::{RedisCooldowns, RedisLimitSettings, RedisRateLimiter};
pub use sql::DEFAULT_REPLICA_TIMEOUT;
pub use sqlite::SqliteCreditStore;
pub use users::{SqlPool, SqlUserStore, UserDirectory, UserStore};
pub use vault::{Keyring, SqlKeyVault, VaultKey};
pub use verify::{AccountProblem, LedgerReport};
