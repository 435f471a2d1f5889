//! The request path's view of users: a key → user cache in front of a [`UserStore`], every
//! change made through it invalidating what it changed, and the lazy monthly grant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use llmgate_core::memory::unix_now;
use llmgate_core::{Result, credits::CreditStore};

use super::api_key::key_digest;
use super::ttl_cache::TtlCache;
use super::types::{IssuedKey, KeyOwner, User, UserRole, UserStore, UserUpdate};
use crate::grants::{grant_monthly, month_of};

/// How the directory caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorySettings {
    /// How long a key → user answer is reused. Changes made through this directory take
    /// effect at once; changes made by another replica within this bound.
    pub key_ttl: Duration,
    /// The most keys cached.
    pub capacity: usize,
}

impl Default for DirectorySettings {
    fn default() -> Self {
        Self {
            key_ttl: Duration::from_secs(30),
            capacity: 10_000,
        }
    }
}

/// Users for the request path and the admin API.
#[derive(Debug)]
pub struct UserDirectory {
    store: Arc<dyn UserStore>,
    credits: Arc<dyn CreditStore>,
    /// Micro-credits each tier grants per calendar month.
    monthly_grants: HashMap<String, i64>,
    /// By key digest, so no plaintext key is kept.
    keys: TtlCache<[u8; 32], KeyOwner>,
    /// The month each user's grant was last seen to: one ledger call per user and month.
    granted: Mutex<HashMap<String, String>>,
}

impl UserDirectory {
    /// `monthly_grants`: tier name → micro-credits granted each calendar month.
    pub fn new(
        store: Arc<dyn UserStore>,
        credits: Arc<dyn CreditStore>,
        monthly_grants: HashMap<String, i64>,
        settings: DirectorySettings,
    ) -> Self {
        Self {
            store,
            credits,
            monthly_grants,
            keys: TtlCache::new(settings.key_ttl, settings.capacity),
            granted: Mutex::new(HashMap::new()),
        }
    }

    /// The store, for reads that need no cache (listings).
    pub fn store(&self) -> &Arc<dyn UserStore> {
        &self.store
    }

    /// The owner of a live key, from the cache when it is fresh. Grants the owner's monthly
    /// credits on their first request of a month.
    pub async fn authenticate(&self, key: &str) -> Result<Option<KeyOwner>> {
        let digest = key_digest(key);
        let owner = match self.keys.get(&digest) {
            Some(owner) => owner,
            None => {
                let generation = self.keys.generation();
                let read = match self.store.owner_of(key).await {
                    Ok(read) => read,
                    // The database is down: a key it knew a moment ago still authenticates,
                    // so what needs no ledger (free models) keeps being served.
                    Err(error) => return self.keys.get_stale(&digest).map(Some).ok_or(error),
                };
                let Some(owner) = read else {
                    return Ok(None);
                };
                self.keys.insert(generation, digest, owner.clone());
                owner
            }
        };
        self.grant_if_new_month(&owner.user).await?;
        Ok(Some(owner))
    }

    /// Create a user, issue their first key and grant their tier's credits for this month.
    pub async fn create(
        &self,
        user_id: &str,
        tier: &str,
        role: UserRole,
    ) -> Result<(User, IssuedKey)> {
        let (user, key) = self.store.create(user_id, tier, role).await?;
        self.grant_if_new_month(&user).await?;
        Ok((user, key))
    }

    /// Change a user's tier or role. The user's cached keys are dropped, so the change holds
    /// from the next request. A user gets one grant per month: moving to a tier with a grant
    /// grants it only if no grant was applied this month yet.
    pub async fn update(&self, user_id: &str, update: &UserUpdate) -> Result<Option<User>> {
        let updated = self.store.update(user_id, update).await?;
        self.forget_user(user_id);
        if let Some(user) = &updated {
            self.grant_if_new_month(user).await?;
        }
        Ok(updated)
    }

    /// Issue another key to a user; `None` when there is no such user.
    pub async fn issue_key(&self, user_id: &str) -> Result<Option<IssuedKey>> {
        self.store.issue_key(user_id).await
    }

    /// Revoke a key; it stops working on this replica at once.
    pub async fn revoke_key(&self, user_id: &str, key_id: &str) -> Result<bool> {
        let revoked = self.store.revoke_key(user_id, key_id).await?;
        self.keys
            .remove_where(|_, owner| owner.user.user_id == user_id && owner.key_id == key_id);
        Ok(revoked)
    }

    fn forget_user(&self, user_id: &str) {
        self.keys
            .remove_where(|_, owner| owner.user.user_id == user_id);
    }

    async fn grant_if_new_month(&self, user: &User) -> Result<()> {
        let Some(&amount) = self.monthly_grants.get(&user.tier) else {
            return Ok(());
        };
        if amount <= 0 {
            return Ok(());
        }
        let now = unix_now();
        let month = month_of(now);
        if self.granted_month(&user.user_id).as_deref() == Some(month.as_str()) {
            return Ok(());
        }
        let outcome = grant_monthly(&*self.credits, &user.user_id, amount, now).await?;
        if outcome.applied {
            tracing::info!(user_id = %user.user_id, %month, "granted the monthly credits");
        }
        self.granted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(user.user_id.clone(), month);
        Ok(())
    }

    fn granted_month(&self, user_id: &str) -> Option<String> {
        self.granted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(user_id)
            .cloned()
    }
}
