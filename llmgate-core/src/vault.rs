//! The `KeyVault` trait: users' own provider keys (BYOK).

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::Result;
use crate::secret::Secret;

/// What may be shown about a stored key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredKey {
    /// The configured provider name the key is for.
    pub provider: String,
    /// Masked, e.g. `sk-...abcd`.
    pub key_hint: String,
    /// Unix seconds.
    pub updated_at: i64,
}

/// Stores each user's provider keys, sealed at rest.
///
/// # Implementing it
///
/// A vault that accepts keys for one provider only, keeping them in the in-memory vault:
///
/// ```
/// use std::sync::Arc;
///
/// use async_trait::async_trait;
/// use llmgate_core::keys::{KeyVault, Secret, StoredKey};
/// use llmgate_core::memory::MemoryKeyVault;
/// use llmgate_core::{Error, Gateway, Result};
///
/// #[derive(Debug, Default)]
/// struct OpenAiKeysOnly {
///     inner: MemoryKeyVault,
/// }
///
/// #[async_trait]
/// impl KeyVault for OpenAiKeysOnly {
///     async fn get(&self, user_id: &str, provider: &str) -> Result<Option<Secret>> {
///         self.inner.get(user_id, provider).await
///     }
///
///     async fn put(&self, user_id: &str, provider: &str, key: &Secret) -> Result<()> {
///         if provider != "openai" {
///             return Err(Error::invalid_request("only OpenAI keys are kept here")
///                 .with_param("provider"));
///         }
///         self.inner.put(user_id, provider, key).await
///     }
///
///     async fn delete(&self, user_id: &str, provider: &str) -> Result<bool> {
///         self.inner.delete(user_id, provider).await
///     }
///
///     async fn list(&self, user_id: &str) -> Result<Vec<StoredKey>> {
///         self.inner.list(user_id).await
///     }
/// }
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<()> {
///     let vault = Arc::new(OpenAiKeysOnly::default());
///     let key = Secret::new("sk-ann-0123456789");
///     vault.put("ann", "openai", &key).await?;
///     assert!(vault.put("ann", "anthropic", &key).await.is_err());
///     assert_eq!(vault.get("ann", "openai").await?, Some(key));
///     assert_eq!(vault.list("ann").await?.len(), 1);
///
///     // With a vault, the gateway calls upstreams with the caller's own key when there is one.
///     let gateway = Gateway::builder().key_vault(vault).build();
///     assert!(gateway.vault().is_some());
///     Ok(())
/// }
/// ```
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
