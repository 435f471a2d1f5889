//! Users, their keys and the store that keeps them: the types every part of `users` shares.
//! A leaf: the directory and the SQL store build on it.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use llmgate_core::{Error, Result, keys::Secret};
use serde::Serialize;

use super::key_settings::KeySettings;

/// What a user may do beyond their own requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    /// Every permission, over every user.
    Admin,
    /// Their own requests, balance, usage and BYOK keys.
    User,
}

impl UserRole {
    /// The lowercase name stored and shown in APIs: `"admin"` or `"user"`.
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Admin => "admin",
            UserRole::User => "user",
        }
    }
}

impl std::str::FromStr for UserRole {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "admin" => Ok(UserRole::Admin),
            "user" => Ok(UserRole::User),
            _ => Err(Error::invalid_request(format!(
                "Unknown role `{text}`: use `admin` or `user`."
            ))
            .with_param("role")),
        }
    }
}

/// A user of the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// The user's id, chosen by the admin who created them; the ledger's account id.
    pub user_id: String,
    /// The name of a tier in the server's config.
    pub tier: String,
    /// What the user may do beyond their own requests.
    pub role: UserRole,
    /// Unix seconds.
    pub created_at: i64,
}

/// What may be shown about an API key: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyInfo {
    /// The key's id, for listing and revoking it.
    pub id: String,
    /// The user the key belongs to.
    pub user_id: String,
    /// Masked, e.g. `lg-...x9Zq`.
    pub key_hint: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When the key was revoked, in Unix seconds; `None` while it works.
    pub revoked_at: Option<i64>,
    /// Its restrictions (migration 0410); all `None` for an unrestricted key.
    #[serde(flatten)]
    pub settings: KeySettings,
    /// When it was last used, to the minute (Unix seconds).
    pub last_used_at: Option<i64>,
    /// What it spent in its budget's current period (every period of a key without a budget
    /// is `total`), settled charges only.
    pub spend_micros: i64,
}

/// A key just issued. The only time the plaintext exists outside the client.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    /// The key's id, for listing and revoking it.
    pub id: String,
    /// The key itself (`lg-...`); show it to the user once, it is stored only as a digest.
    pub key: Secret,
}

/// The user a presented key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    /// The key's owner.
    pub user: User,
    /// The id of the key presented.
    pub key_id: String,
    /// The key's restrictions.
    pub settings: KeySettings,
    /// For a team key: the team's tier (the key spends the team's account at that tier).
    pub team_tier: Option<String>,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// The new tier's name.
    pub tier: Option<String>,
    /// The new role.
    pub role: Option<UserRole>,
}

/// Users and API keys, persisted.
#[async_trait]
pub trait UserStore: Send + Sync + fmt::Debug + 'static {
    /// Create a user with a first API key. `conflict` (409) when the id is taken.
    async fn create(&self, user_id: &str, tier: &str, role: UserRole) -> Result<(User, IssuedKey)>;

    /// The user with this id, if there is one.
    async fn get(&self, user_id: &str) -> Result<Option<User>>;

    /// Users ordered by id, after `after` (the last id of the previous page).
    async fn list(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>>;

    /// Apply an update; `None` when there is no such user.
    async fn update(&self, user_id: &str, update: &UserUpdate) -> Result<Option<User>>;

    /// Issue another key to a user; `None` when there is no such user.
    async fn issue_key(&self, user_id: &str) -> Result<Option<IssuedKey>>;

    /// A user's keys, revoked ones included, oldest first.
    async fn keys(&self, user_id: &str) -> Result<Vec<ApiKeyInfo>>;

    /// Revoke one of a user's keys; `false` when the user has no such live key.
    async fn revoke_key(&self, user_id: &str, key_id: &str) -> Result<bool>;

    /// The owner of a live key, looked up by the key's digest. An expired key is returned
    /// (the caller says why it is refused); a revoked one, or a team key whose maker is no
    /// longer the team's owner, is not.
    async fn owner_of(&self, key: &str) -> Result<Option<KeyOwner>>;

    /// Issue a key with these settings; `None` when there is no such user.
    async fn create_key(&self, user_id: &str, settings: &KeySettings) -> Result<Option<IssuedKey>>;

    /// One key by id, revoked or not.
    async fn key(&self, key_id: &str) -> Result<Option<ApiKeyInfo>>;

    /// Every user's keys, newest first, at most `limit`.
    async fn all_keys(&self, limit: u32) -> Result<Vec<ApiKeyInfo>>;

    /// Replace a live key's settings; `false` when there is no such live key.
    async fn update_key(&self, key_id: &str, settings: &KeySettings) -> Result<bool>;

    /// Note that keys were used (key id, Unix seconds); a later time than the stored one wins.
    async fn touch_keys(&self, used: &[(String, i64)]) -> Result<()>;
}

/// Compile-time check that the trait stays object-safe.
const _: Option<Arc<dyn UserStore>> = None;

/// User ids are short, printable and safe in URLs and log lines.
pub fn check_user_id(user_id: &str) -> Result<()> {
    let valid = (1..=64).contains(&user_id.len())
        && user_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if !valid {
        return Err(Error::invalid_request(
            "`user_id` must be 1 to 64 characters of letters, digits, `.`, `_`, `-` or `@`.",
        )
        .with_param("user_id"));
    }
    if user_id == "admin" {
        // Requests made with the master key are recorded under `admin`.
        return Err(Error::invalid_request(
            "`admin` is reserved for the master key; choose another user_id.",
        )
        .with_param("user_id"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_checked() {
        for good in ["ann", "ann.smith@example.com", "u_1-2"] {
            assert!(check_user_id(good).is_ok(), "{good}");
        }
        for bad in ["", "admin", "has space", "a/b", &"x".repeat(65)] {
            assert_eq!(check_user_id(bad).unwrap_err().status(), 400, "{bad}");
        }
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        assert_eq!("admin".parse::<UserRole>().unwrap(), UserRole::Admin);
        assert_eq!("user".parse::<UserRole>().unwrap(), UserRole::User);
        assert_eq!("root".parse::<UserRole>().unwrap_err().status(), 400);
    }
}
