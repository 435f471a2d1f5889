//! The request path's view of users: a key → user cache in front of a [`UserStore`], every
//! change made through it invalidating what it changed, and the lazy monthly grant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmgate_core::memory::unix_now;
use llmgate_core::sync;
use llmgate_core::{Result, credits::CreditStore};

use super::api_key::key_digest;
use super::key_settings::KeySettings;
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
            key_ttl: Duration::from_secs(5),
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
    /// When each key's `last_used_at` was last written from here: at most once a minute.
    /// Shared with the background write, which forgets its mark when the write fails.
    touched: Arc<Mutex<HashMap<String, i64>>>,
}

/// `last_used_at` is written at most this often per key and replica.
const TOUCH_EVERY_SECS: i64 = 60;

/// The ledger account of a team: team ids and user ids share the ledger, and no user id can
/// hold a `:`.
pub fn team_account(team_id: &str) -> String {
    format!("{TEAM_ACCOUNT_PREFIX}{team_id}")
}

/// The team whose ledger account `account` is; `None` for a user's account.
pub fn team_of_account(account: &str) -> Option<&str> {
    account.strip_prefix(TEAM_ACCOUNT_PREFIX)
}

const TEAM_ACCOUNT_PREFIX: &str = "team:";

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
            touched: Arc::default(),
        }
    }

    /// The store, for reads that need no cache (listings).
    pub fn store(&self) -> &Arc<dyn UserStore> {
        &self.store
    }

    /// The owner of a live key, from the cache when it is fresh. Grants the owner's monthly
    /// credits on their first request of a month.
    pub async fn authenticate(&self, key: &str) -> Result<Option<KeyOwner>> {
        self.authenticate_digest(key, key_digest(key)).await
    }

    /// [`UserDirectory::authenticate`] for a caller that has the key's digest already
    /// ([`key_digest`]): a gateway checking the master key first hashes each key once, not
    /// twice (SHA-256 is about 2 % of a request's work).
    pub async fn authenticate_digest(
        &self,
        key: &str,
        digest: [u8; 32],
    ) -> Result<Option<KeyOwner>> {
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
        match (&owner.settings.team_id, &owner.team_tier) {
            (Some(team_id), Some(tier)) => self.grant_team(team_id, tier).await?,
            _ => self.grant_if_new_month(&owner.user).await?,
        }
        self.touch(&owner.key_id);
        Ok(Some(owner))
    }

    /// Note a key's use: written in the background, at most once a minute per key.
    fn touch(&self, key_id: &str) {
        let now = unix_now();
        {
            let mut touched = sync::lock(&self.touched);
            if touched
                .get(key_id)
                .is_some_and(|&at| now - at < TOUCH_EVERY_SECS)
            {
                return;
            }
            touched.insert(key_id.to_owned(), now);
        }
        let store = self.store.clone();
        let touched = self.touched.clone();
        let key_id = key_id.to_owned();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let used = [(key_id, now)];
                if let Err(error) = store.touch_keys(&used).await {
                    tracing::debug!(%error, "noting a key's last use failed");
                    // Unmarked, the key's next use tries again instead of a minute later.
                    let [(key_id, _)] = &used;
                    let mut touched = sync::lock(&touched);
                    if touched.get(key_id) == Some(&now) {
                        touched.remove(key_id);
                    }
                }
            });
        }
    }

    /// Issue a key with settings; `None` when there is no such user.
    pub async fn create_key(
        &self,
        user_id: &str,
        settings: &KeySettings,
    ) -> Result<Option<IssuedKey>> {
        self.store.create_key(user_id, settings).await
    }

    /// Replace a key's settings; cached on this replica it changes at once, on others within
    /// `key_ttl`.
    pub async fn update_key(&self, key_id: &str, settings: &KeySettings) -> Result<bool> {
        let updated = self.store.update_key(key_id, settings).await?;
        self.keys.remove_where(|_, owner| owner.key_id == key_id);
        Ok(updated)
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

    /// Drop a user's cached keys: their next request reads them again (a team role changed).
    pub fn forget_user(&self, user_id: &str) {
        self.keys
            .remove_where(|_, owner| owner.user.user_id == user_id);
    }

    /// Grant a team's account its tier's monthly credits, once a month.
    pub async fn grant_team(&self, team_id: &str, tier: &str) -> Result<()> {
        let team = User {
            user_id: team_account(team_id),
            tier: tier.to_owned(),
            role: UserRole::User,
            created_at: 0,
        };
        self.grant_if_new_month(&team).await
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
        sync::lock(&self.granted).insert(user.user_id.clone(), month);
        Ok(())
    }

    fn granted_month(&self, user_id: &str) -> Option<String> {
        sync::lock(&self.granted).get(user_id).cloned()
    }
}
