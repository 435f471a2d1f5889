//! [`SqlKeyVault`]: sealed provider keys in the `byok_keys` table (migration 0101).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use llmgate_core::memory::unix_now;
use llmgate_core::{
    Result,
    keys::{KeyVault, Secret, StoredKey},
};

use super::keyring::{Keyring, Sealed};
use crate::error::database_error;
use crate::users::{SqlPool, TtlCache, on_pool};

/// Rows re-sealed per batch by [`SqlKeyVault::rotate`].
const ROTATION_BATCH: i64 = 200;

const SELECT_KEY: &str =
    "SELECT key_id, nonce, ciphertext FROM byok_keys WHERE user_id = $1 AND provider = $2";

const SELECT_USER_KEYS: &str = "\
SELECT provider, key_id, nonce, ciphertext, updated_at FROM byok_keys WHERE user_id = $1 \
ORDER BY provider";

const UPSERT_KEY: &str = "\
INSERT INTO byok_keys (user_id, provider, key_id, nonce, ciphertext, updated_at) \
VALUES ($1, $2, $3, $4, $5, $6) \
ON CONFLICT (user_id, provider) DO UPDATE SET key_id = excluded.key_id, \
nonce = excluded.nonce, ciphertext = excluded.ciphertext, updated_at = excluded.updated_at";

const DELETE_KEY: &str = "DELETE FROM byok_keys WHERE user_id = $1 AND provider = $2";

/// The next batch of rows in key order, after the last one seen.
const SELECT_BATCH: &str = "\
SELECT user_id, provider, key_id, nonce, ciphertext FROM byok_keys \
WHERE user_id > $1 OR (user_id = $1 AND provider > $2) \
ORDER BY user_id, provider LIMIT $3";

/// Replace a seal only if the row still holds the one that was read (a concurrent `put` wins).
const RESEAL: &str = "\
UPDATE byok_keys SET key_id = $3, nonce = $4, ciphertext = $5 \
WHERE user_id = $1 AND provider = $2 AND key_id = $6 AND nonce = $7";

type SealedRow = (String, Vec<u8>, Vec<u8>);
type ListedRow = (String, String, Vec<u8>, Vec<u8>, i64);
type BatchRow = (String, String, String, Vec<u8>, Vec<u8>);

fn sealed((key_id, nonce, ciphertext): SealedRow) -> Sealed {
    Sealed {
        key_id,
        nonce,
        ciphertext,
    }
}

/// How the vault caches opened keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultSettings {
    /// How long an answer of [`KeyVault::get`] (a key, or that there is none) is reused.
    /// Changes through this vault apply at once; through another replica within this bound.
    /// Zero turns the cache off.
    pub cache_ttl: Duration,
    /// The most (user, provider) answers cached at once.
    pub cache_capacity: usize,
}

impl Default for VaultSettings {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_secs(5),
            cache_capacity: 10_000,
        }
    }
}

/// What [`SqlKeyVault::rotate`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Rows re-sealed under the newest key.
    pub resealed: u64,
    /// Rows already under the newest key.
    pub current: u64,
    /// Rows no loaded key opens (their key is missing, or they were tampered with).
    pub unreadable: u64,
    /// Rows replaced or deleted by a user while rotating (already under the newest key).
    pub skipped: u64,
}

/// A [`KeyVault`] in the ledger's database, sealed with a [`Keyring`].
#[derive(Debug)]
pub struct SqlKeyVault {
    pool: SqlPool,
    keyring: Arc<Keyring>,
    /// Opened keys (or their absence) by (user, provider), for the request path.
    cache: TtlCache<(String, String), Option<Secret>>,
}

impl SqlKeyVault {
    /// A vault on this database (migrated by the ledger's connect) sealing with `keyring`.
    pub fn new(pool: SqlPool, keyring: Keyring, settings: VaultSettings) -> Self {
        Self {
            pool,
            keyring: Arc::new(keyring),
            cache: TtlCache::new(settings.cache_ttl, settings.cache_capacity),
        }
    }

    /// The keys this vault seals and opens with.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    fn forget(&self, user_id: &str, provider: &str) {
        self.cache
            .remove(&(user_id.to_owned(), provider.to_owned()));
    }

    /// Re-seal every stored key under the keyring's newest key. Safe to run while serving:
    /// a row a user replaces meanwhile is left as the user wrote it.
    pub async fn rotate(&self) -> Result<RotationReport> {
        let mut report = RotationReport::default();
        let current = self.keyring.current_id().to_owned();
        let (mut after_user, mut after_provider) = (String::new(), String::new());
        loop {
            let rows: Vec<BatchRow> = on_pool!(&self.pool, |db| sqlx::query_as(SELECT_BATCH)
                .bind(&after_user)
                .bind(&after_provider)
                .bind(ROTATION_BATCH)
                .fetch_all(db)
                .await
                .map_err(database_error("read keys to rotate"))?);
            let Some(last) = rows.last() else {
                break;
            };
            (after_user, after_provider) = (last.0.clone(), last.1.clone());
            for (user_id, provider, key_id, nonce, ciphertext) in rows {
                if key_id == current {
                    report.current += 1;
                    continue;
                }
                let old = Sealed {
                    key_id,
                    nonce,
                    ciphertext,
                };
                let Ok(plaintext) = self.keyring.open(&user_id, &provider, &old) else {
                    report.unreadable += 1;
                    continue;
                };
                let new = self.keyring.seal(&user_id, &provider, &plaintext)?;
                let changed = on_pool!(&self.pool, |db| sqlx::query(RESEAL)
                    .bind(&user_id)
                    .bind(&provider)
                    .bind(&new.key_id)
                    .bind(&new.nonce)
                    .bind(&new.ciphertext)
                    .bind(&old.key_id)
                    .bind(&old.nonce)
                    .execute(db)
                    .await
                    .map_err(database_error("re-seal a key"))?
                    .rows_affected());
                if changed > 0 {
                    report.resealed += 1;
                } else {
                    report.skipped += 1;
                }
                self.forget(&user_id, &provider);
            }
        }
        tracing::info!(
            resealed = report.resealed,
            current = report.current,
            unreadable = report.unreadable,
            skipped = report.skipped,
            key_id = %current,
            "re-sealed BYOK keys under the newest key"
        );
        Ok(report)
    }
}

#[async_trait]
impl KeyVault for SqlKeyVault {
    async fn get(&self, user_id: &str, provider: &str) -> Result<Option<Secret>> {
        let cache_key = (user_id.to_owned(), provider.to_owned());
        if let Some(answer) = self.cache.get(&cache_key) {
            return Ok(answer);
        }
        let generation = self.cache.generation();
        let read: Result<Option<SealedRow>> = on_pool!(&self.pool, |db| sqlx::query_as(SELECT_KEY)
            .bind(user_id)
            .bind(provider)
            .fetch_optional(db)
            .await
            .map_err(database_error("read a BYOK key")));
        let row = match read {
            Ok(row) => row,
            // The database is down: the last answer it gave (a key, or none) still holds.
            Err(error) => return self.cache.get_stale(&cache_key).ok_or(error),
        };
        let answer = match row {
            Some(row) => Some(self.keyring.open(user_id, provider, &sealed(row))?),
            None => None,
        };
        self.cache.insert(generation, cache_key, answer.clone());
        Ok(answer)
    }

    async fn put(&self, user_id: &str, provider: &str, key: &Secret) -> Result<()> {
        let sealed = self.keyring.seal(user_id, provider, key)?;
        on_pool!(&self.pool, |db| sqlx::query(UPSERT_KEY)
            .bind(user_id)
            .bind(provider)
            .bind(&sealed.key_id)
            .bind(&sealed.nonce)
            .bind(&sealed.ciphertext)
            .bind(unix_now())
            .execute(db)
            .await
            .map_err(database_error("store a BYOK key"))?
            .rows_affected());
        self.forget(user_id, provider);
        Ok(())
    }

    async fn delete(&self, user_id: &str, provider: &str) -> Result<bool> {
        let deleted = on_pool!(&self.pool, |db| sqlx::query(DELETE_KEY)
            .bind(user_id)
            .bind(provider)
            .execute(db)
            .await
            .map_err(database_error("delete a BYOK key"))?
            .rows_affected());
        self.forget(user_id, provider);
        Ok(deleted > 0)
    }

    async fn list(&self, user_id: &str) -> Result<Vec<StoredKey>> {
        let rows: Vec<ListedRow> = on_pool!(&self.pool, |db| sqlx::query_as(SELECT_USER_KEYS)
            .bind(user_id)
            .fetch_all(db)
            .await
            .map_err(database_error("list BYOK keys"))?);
        Ok(rows
            .into_iter()
            .map(|(provider, key_id, nonce, ciphertext, updated_at)| {
                let opened =
                    self.keyring
                        .open(user_id, &provider, &sealed((key_id, nonce, ciphertext)));
                // The hint is computed from the opened key, so no part of it is stored in clear.
                let key_hint = opened.map_or_else(|_| "(unreadable)".to_owned(), |k| k.hint());
                StoredKey {
                    provider,
                    key_hint,
                    updated_at,
                }
            })
            .collect())
    }
}
