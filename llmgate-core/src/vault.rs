//! The `KeyVault` trait: users' own provider keys (BYOK).

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::Result;
use crate::secret::Secret;

/// What may be shown about a stored key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredKey {
    pub provider: String,
    /// Masked, e.g. `sk-...abcd`.
    pub key_hint: String,
    /// Unix seconds.
    pub updated_at: i64,
}

/// Stores each user's provider keys, sealed at rest.
#[async_trait]
pub trait KeyVault: Send + Sync + std::fmt::Debug + 'static {
    /// The caller's key for a provider, if stored.
    async fn get(&self, user_id: &str, provider: &str) -> Result<Option<Secret>>;

    /// Store or replace a key.
    async fn put(&self, user_id: &str, provider: &str, key: &Secret) -> Result<()>;

    /// Remove a key; returns whether one was there.
    async fn delete(&self, user_id: &str, provider: &str) -> Result<bool>;

    /// Every key of a user, masked.
    async fn list(&self, user_id: &str) -> Result<Vec<StoredKey>>;
}

/// Compile-time check that the trait stays object-safe.
const _: Option<Arc<dyn KeyVault>> = None;
