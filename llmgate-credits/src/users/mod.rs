//! Users and their API keys: who may call the gateway, with which tier and role.
//!
//! Keys are random (256 bits), prefixed `lg-`, shown once when issued and stored only as their
//! SHA-256 digest. [`SqlUserStore`] keeps users and keys in the ledger's database;
//! [`UserDirectory`] puts a short-lived in-process cache in front of it for the request path
//! and grants each tier's monthly credits on a user's first request of a month.

mod api_key;
mod directory;
mod key_settings;
mod key_sql;
mod pool;
mod sql;
mod teams;
mod ttl_cache;
mod types;

pub use api_key::{API_KEY_PREFIX, key_digest};
pub use directory::{DirectorySettings, UserDirectory, team_account, team_of_account};
pub use key_settings::{KeySettings, key_expired};
pub use pool::SqlPool;
pub(crate) use pool::on_pool;
pub use sql::SqlUserStore;
pub use teams::{SqlTeamStore, Team, TeamMember, TeamRole};
pub(crate) use ttl_cache::TtlCache;
pub use types::{
    ApiKeyInfo, IssuedKey, KeyOwner, User, UserRole, UserStore, UserUpdate, check_user_id,
};
