#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod cache;
mod connect;
mod error;
mod grants;
mod postgres;
mod redis_limits;
mod redis_link;
mod request_log;
pub mod responses;
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
pub use request_log::SqlRequestLog;
pub use responses::{SqlResponseStore, StoredResponse};
pub use sql::DEFAULT_REPLICA_TIMEOUT;
pub use sqlite::SqliteCreditStore;
pub use users::{SqlPool, SqlUserStore, UserDirectory, UserStore};
pub use vault::{Keyring, SqlKeyVault, VaultKey};
pub use verify::{AccountProblem, BudgetProblem, LedgerReport};
