//! Users and API keys in the ledger's database (tables from migration 0100).

use async_trait::async_trait;
use llmgate_core::memory::unix_now;
use llmgate_core::{Error, Result};
use subtle::ConstantTimeEq;

use super::api_key::API_KEY_PREFIX;
use super::api_key::{generate, generate_id, key_digest};
use super::key_settings::KeySettings;
use super::key_sql::{self, OWNER_OF_KEY, OwnerRow, owner_from_row};
use super::pool::{SqlPool, on_pool};
use super::types::{ApiKeyInfo, IssuedKey, KeyOwner, User, UserRole, UserStore, UserUpdate};
use crate::error::database_error;

/// The most users one page lists.
const MAX_PAGE: u32 = 500;

const INSERT_USER: &str = "\
INSERT INTO users (user_id, tier, role, created_at) VALUES ($1, $2, $3, $4) \
ON CONFLICT (user_id) DO NOTHING \
RETURNING created_at";

const SELECT_USER: &str = "SELECT user_id, tier, role, created_at FROM users WHERE user_id = $1";

const LIST_USERS: &str = "\
SELECT user_id, tier, role, created_at FROM users WHERE user_id > $1 ORDER BY user_id LIMIT $2";

const UPDATE_USER: &str = "\
UPDATE users SET tier = COALESCE($2, tier), role = COALESCE($3, role) WHERE user_id = $1 \
RETURNING user_id, tier, role, created_at";

const INSERT_KEY: &str = "\
INSERT INTO api_keys (id, user_id, key_hash, key_hint, created_at) VALUES ($1, $2, $3, $4, $5)";

const REVOKE_KEY: &str = "\
UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL";

type UserRow = (String, String, String, i64);

fn user_from_row((user_id, tier, role, created_at): UserRow) -> Result<User> {
    Ok(User {
        user_id,
        tier,
        role: role
            .parse()
            .map_err(|_| Error::internal("a stored user has an unknown role"))?,
        created_at,
    })
}

/// A [`UserStore`] in the same SQLite or PostgreSQL database as the ledger.
#[derive(Debug, Clone)]
pub struct SqlUserStore {
    pool: SqlPool,
}

impl SqlUserStore {
    /// Use the ledger's pool; its migrations created the tables.
    pub fn new(pool: SqlPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl UserStore for SqlUserStore {
    async fn create(&self, user_id: &str, tier: &str, role: UserRole) -> Result<(User, IssuedKey)> {
        let key = generate()?;
        let id = generate_id();
        let digest = key_digest(key.expose()).to_vec();
        let hint = key.hint();
        let now = unix_now();
        let failed = || database_error("create a user");
        let created: Option<i64> = on_pool!(&self.pool, |db| {
            let mut tx = db.begin().await.map_err(failed())?;
            let created: Option<i64> = sqlx::query_scalar(INSERT_USER)
                .bind(user_id)
                .bind(tier)
                .bind(role.as_str())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(failed())?;
            if created.is_some() {
                sqlx::query(INSERT_KEY)
                    .bind(&id)
                    .bind(user_id)
                    .bind(&digest)
                    .bind(&hint)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed())?;
                tx.commit().await.map_err(failed())?;
            }
            created
        });
        let Some(created_at) = created else {
            return Err(
                Error::conflict(format!("The user `{user_id}` already exists."))
                    .with_param("user_id")
                    .with_code("user_exists"),
            );
        };
        let user = User {
            user_id: user_id.to_owned(),
            tier: tier.to_owned(),
            role,
            created_at,
        };
        Ok((user, IssuedKey { id, key }))
    }

    async fn get(&self, user_id: &str) -> Result<Option<User>> {
        let row: Option<UserRow> = on_pool!(&self.pool, |db| sqlx::query_as(SELECT_USER)
            .bind(user_id)
            .fetch_optional(db)
            .await
            .map_err(database_error("read a user"))?);
        row.map(user_from_row).transpose()
    }

    async fn list(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>> {
        let limit = i64::from(limit.clamp(1, MAX_PAGE));
        // Every id sorts after the empty string.
        let after = after.unwrap_or("");
        let rows: Vec<UserRow> = on_pool!(&self.pool, |db| sqlx::query_as(LIST_USERS)
            .bind(after)
            .bind(limit)
            .fetch_all(db)
            .await
            .map_err(database_error("list users"))?);
        rows.into_iter().map(user_from_row).collect()
    }

    async fn update(&self, user_id: &str, update: &UserUpdate) -> Result<Option<User>> {
        let row: Option<UserRow> = on_pool!(&self.pool, |db| sqlx::query_as(UPDATE_USER)
            .bind(user_id)
            .bind(update.tier.as_deref())
            .bind(update.role.map(UserRole::as_str))
            .fetch_optional(db)
            .await
            .map_err(database_error("update a user"))?);
        row.map(user_from_row).transpose()
    }

    async fn issue_key(&self, user_id: &str) -> Result<Option<IssuedKey>> {
        self.create_key(user_id, &KeySettings::default()).await
    }

    async fn keys(&self, user_id: &str) -> Result<Vec<ApiKeyInfo>> {
        key_sql::user_keys(&self.pool, user_id).await
    }

    async fn revoke_key(&self, user_id: &str, key_id: &str) -> Result<bool> {
        let revoked = on_pool!(&self.pool, |db| sqlx::query(REVOKE_KEY)
            .bind(key_id)
            .bind(user_id)
            .bind(unix_now())
            .execute(db)
            .await
            .map_err(database_error("revoke an API key"))?
            .rows_affected());
        Ok(revoked > 0)
    }

    async fn owner_of(&self, key: &str) -> Result<Option<KeyOwner>> {
        if !key.starts_with(API_KEY_PREFIX) {
            // Not one of ours: no need to ask the database.
            return Ok(None);
        }
        let digest = key_digest(key);
        let row: Option<OwnerRow> = on_pool!(&self.pool, |db| sqlx::query_as(OWNER_OF_KEY)
            .bind(digest.to_vec())
            .fetch_optional(db)
            .await
            .map_err(database_error("look up an API key"))?);
        let Some(row) = row else {
            return Ok(None);
        };
        let (stored, owner) = owner_from_row(row, user_from_row)?;
        // The index found the row; compare the digests again without an early exit.
        if !bool::from(stored.as_slice().ct_eq(digest.as_slice())) {
            return Ok(None);
        }
        Ok(Some(owner))
    }

    async fn create_key(&self, user_id: &str, settings: &KeySettings) -> Result<Option<IssuedKey>> {
        if self.get(user_id).await?.is_none() {
            return Ok(None);
        }
        let key = generate()?;
        let id = generate_id();
        // The foreign key refuses the insert if the user vanished meanwhile.
        let digest = key_digest(key.expose());
        key_sql::insert_key(&self.pool, (&id, user_id), (&digest, &key.hint()), settings).await?;
        Ok(Some(IssuedKey { id, key }))
    }

    async fn key(&self, key_id: &str) -> Result<Option<ApiKeyInfo>> {
        key_sql::key(&self.pool, key_id).await
    }

    async fn all_keys(&self, limit: u32) -> Result<Vec<ApiKeyInfo>> {
        key_sql::all_keys(&self.pool, limit).await
    }

    async fn update_key(&self, key_id: &str, settings: &KeySettings) -> Result<bool> {
        key_sql::update_key(&self.pool, key_id, settings).await
    }

    async fn touch_keys(&self, used: &[(String, i64)]) -> Result<()> {
        key_sql::touch_keys(&self.pool, used).await
    }
}
