//! API keys with their settings in SQL (tables from migrations 0100 and 0410): the statements
//! and row mapping the [`SqlUserStore`](super::SqlUserStore) uses for keys.

use llmgate_core::Result;
use llmgate_core::memory::unix_now;

use super::key_settings::{Int, KeySettings, SettingsRow, Text, settings_from_row};
use super::pool::{SqlPool, on_pool};
use super::types::{ApiKeyInfo, KeyOwner, User};
use crate::error::database_error;

const INSERT_KEY: &str = "\
INSERT INTO api_keys (id, user_id, key_hash, key_hint, created_at, name, models, \
max_budget_micros, budget_period, rpm, tpm, expires_at, team_id) \
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

const SELECT_USER_KEYS: &str = "\
SELECT k.id, k.user_id, k.key_hint, k.created_at, k.revoked_at, k.last_used_at, \
k.name, k.models, k.max_budget_micros, k.budget_period, k.rpm, k.tpm, k.expires_at, k.team_id \
FROM api_keys k WHERE k.user_id = $1 ORDER BY k.created_at, k.id";

const SELECT_KEY: &str = "\
SELECT k.id, k.user_id, k.key_hint, k.created_at, k.revoked_at, k.last_used_at, \
k.name, k.models, k.max_budget_micros, k.budget_period, k.rpm, k.tpm, k.expires_at, k.team_id \
FROM api_keys k WHERE k.id = $1";

const SELECT_ALL_KEYS: &str = "\
SELECT k.id, k.user_id, k.key_hint, k.created_at, k.revoked_at, k.last_used_at, \
k.name, k.models, k.max_budget_micros, k.budget_period, k.rpm, k.tpm, k.expires_at, k.team_id \
FROM api_keys k ORDER BY k.created_at DESC, k.id DESC LIMIT $1";

const UPDATE_KEY: &str = "\
UPDATE api_keys SET name = $2, models = $3, max_budget_micros = $4, budget_period = $5, \
rpm = $6, tpm = $7, expires_at = $8, team_id = $9 WHERE id = $1 AND revoked_at IS NULL";

/// Coarse: a later time only, so concurrent replicas never move it back.
const TOUCH_KEY: &str = "\
UPDATE api_keys SET last_used_at = $2 \
WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)";

const SPEND_OF: &str = "SELECT spent_micros FROM key_spend WHERE key_id = $1 AND period_start = $2";

/// The live key with this digest, its owner and, for a team key, the team's tier: one indexed
/// lookup (`key_hash` is unique). A team key works only while its maker owns the team.
pub(crate) const OWNER_OF_KEY: &str = "\
SELECT k.key_hash, k.id, u.user_id, u.tier, u.role, u.created_at, t.tier, \
k.name, k.models, k.max_budget_micros, k.budget_period, k.rpm, k.tpm, k.expires_at, k.team_id \
FROM api_keys k JOIN users u ON u.user_id = k.user_id \
LEFT JOIN teams t ON t.team_id = k.team_id \
WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND (k.team_id IS NULL OR EXISTS ( \
SELECT 1 FROM team_members m WHERE m.team_id = k.team_id AND m.user_id = k.user_id \
AND m.role = 'owner'))";

/// id, user, hint, created, revoked, last used, then the settings.
type KeyHead = (String, String, String, i64, Int, Int);
#[rustfmt::skip]
type KeyRow = (String, String, String, i64, Int, Int, Text, Text, Int, Text, Int, Int, Int, Text);
/// digest, key id, user (id, tier, role, created), team tier, then the settings.
#[rustfmt::skip]
pub(crate) type OwnerRow =
    (Vec<u8>, String, String, String, String, i64, Text, Text, Text, Int, Text, Int, Int, Int, Text);

fn split_key_row(row: KeyRow) -> (KeyHead, SettingsRow) {
    let (id, user, hint, created, revoked, used, a, b, c, d, e, f, g, h) = row;
    (
        (id, user, hint, created, revoked, used),
        (a, b, c, d, e, f, g, h),
    )
}

fn key_from_row(row: KeyRow) -> ApiKeyInfo {
    let ((id, user_id, key_hint, created_at, revoked_at, last_used_at), settings) =
        split_key_row(row);
    ApiKeyInfo {
        id,
        user_id,
        key_hint,
        created_at,
        revoked_at,
        settings: settings_from_row(settings),
        last_used_at,
        spend_micros: 0,
    }
}

/// The owner of a key from [`OWNER_OF_KEY`]'s row; the user is built by `user`.
pub(crate) fn owner_from_row(
    row: OwnerRow,
    user: impl FnOnce((String, String, String, i64)) -> Result<User>,
) -> Result<(Vec<u8>, KeyOwner)> {
    let (digest, key_id, user_id, tier, role, created, team_tier, a, b, c, d, e, f, g, h) = row;
    let owner = KeyOwner {
        user: user((user_id, tier, role, created))?,
        key_id,
        settings: settings_from_row((a, b, c, d, e, f, g, h)),
        team_tier,
    };
    Ok((digest, owner))
}

fn per_minute(n: Option<u32>) -> Option<i64> {
    n.map(i64::from)
}

/// Binding a key's settings, in the column order of [`INSERT_KEY`] and [`UPDATE_KEY`].
trait BindSettings: Sized {
    fn bind_settings(self, settings: &KeySettings) -> Self;
}

impl<'q, DB> BindSettings for sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    for<'t> Option<String>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<i64>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    fn bind_settings(self, settings: &KeySettings) -> Self {
        self.bind(settings.name.clone())
            .bind(settings.models_to_sql())
            .bind(settings.max_budget_micros)
            .bind(settings.budget_period.map(|p| p.as_str().to_owned()))
            .bind(per_minute(settings.rpm))
            .bind(per_minute(settings.tpm))
            .bind(settings.expires_at)
            .bind(settings.team_id.clone())
    }
}

/// Insert a key row with its settings.
pub(crate) async fn insert_key(
    pool: &SqlPool,
    (id, user_id): (&str, &str),
    (digest, hint): (&[u8], &str),
    settings: &KeySettings,
) -> Result<()> {
    on_pool!(pool, |db| sqlx::query(INSERT_KEY)
        .bind(id)
        .bind(user_id)
        .bind(digest)
        .bind(hint)
        .bind(unix_now())
        .bind_settings(settings)
        .execute(db)
        .await
        .map_err(database_error("issue an API key"))?
        .rows_affected());
    Ok(())
}

/// A user's keys, oldest first, with their current spend.
pub(crate) async fn user_keys(pool: &SqlPool, user_id: &str) -> Result<Vec<ApiKeyInfo>> {
    let rows: Vec<KeyRow> = on_pool!(pool, |db| sqlx::query_as(SELECT_USER_KEYS)
        .bind(user_id)
        .fetch_all(db)
        .await
        .map_err(database_error("list API keys"))?);
    with_spend(pool, rows.into_iter().map(key_from_row).collect()).await
}

/// Every key, newest first.
pub(crate) async fn all_keys(pool: &SqlPool, limit: u32) -> Result<Vec<ApiKeyInfo>> {
    let limit = i64::from(limit.clamp(1, 500));
    let rows: Vec<KeyRow> = on_pool!(pool, |db| sqlx::query_as(SELECT_ALL_KEYS)
        .bind(limit)
        .fetch_all(db)
        .await
        .map_err(database_error("list API keys"))?);
    with_spend(pool, rows.into_iter().map(key_from_row).collect()).await
}

/// One key with its current spend.
pub(crate) async fn key(pool: &SqlPool, key_id: &str) -> Result<Option<ApiKeyInfo>> {
    let row: Option<KeyRow> = on_pool!(pool, |db| sqlx::query_as(SELECT_KEY)
        .bind(key_id)
        .fetch_optional(db)
        .await
        .map_err(database_error("read an API key"))?);
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(with_spend(pool, vec![key_from_row(row)]).await?.pop())
}

/// Fill in each budgeted key's spend for its current period (keys without a budget are not
/// metered and show 0).
async fn with_spend(pool: &SqlPool, mut keys: Vec<ApiKeyInfo>) -> Result<Vec<ApiKeyInfo>> {
    let now = unix_now();
    for key in keys
        .iter_mut()
        .filter(|k| k.settings.max_budget_micros.is_some())
    {
        let period_start = key.settings.period().start_of(now);
        let spent: Option<i64> = on_pool!(pool, |db| sqlx::query_scalar(SPEND_OF)
            .bind(&key.id)
            .bind(period_start)
            .fetch_optional(db)
            .await
            .map_err(database_error("read a key's spend"))?);
        key.spend_micros = spent.unwrap_or(0);
    }
    Ok(keys)
}

/// Replace a live key's settings.
pub(crate) async fn update_key(
    pool: &SqlPool,
    key_id: &str,
    settings: &KeySettings,
) -> Result<bool> {
    let changed = on_pool!(pool, |db| sqlx::query(UPDATE_KEY)
        .bind(key_id)
        .bind_settings(settings)
        .execute(db)
        .await
        .map_err(database_error("update an API key"))?
        .rows_affected());
    Ok(changed > 0)
}

/// Record when keys were last used.
pub(crate) async fn touch_keys(pool: &SqlPool, used: &[(String, i64)]) -> Result<()> {
    for (key_id, at) in used {
        on_pool!(pool, |db| sqlx::query(TOUCH_KEY)
            .bind(key_id)
            .bind(*at)
            .execute(db)
            .await
            .map_err(database_error("note a key's use"))?
            .rows_affected());
    }
    Ok(())
}
