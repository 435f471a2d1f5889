//! Who is calling and what they may do: an API key from the request headers, turned into a
//! [`Principal`] with a role, checked against a [`Permission`].
//!
//! The master key acts as admin and is never charged. User keys are looked up through a
//! [`UserKeys`] backend ([`DirectoryKeys`] over the users table); without one, only the master
//! key works.
//!
//! The server calls [`Auth::require`] once per request, in its dispatch, with the permission
//! the endpoint needs; handlers get the [`Principal`] and only decide whose data is meant:
//!
//! ```
//! use llmgate_server::auth::{Auth, Permission};
//!
//! async fn balance_of(
//!     auth: &Auth,
//!     headers: &http::HeaderMap,
//!     asked_for: Option<&str>,
//! ) -> llmgate_core::Result<String> {
//!     let principal = auth.require(headers, Permission::Read).await?; // 401 or 403
//!     principal.target_user(asked_for) // own data, unless an admin names another user
//! }
//! ```
//!
//! Contract: docs/http-api.md#authentication

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use http::HeaderMap;
use std::collections::HashMap;

use llmgate_core::memory::unix_now;
use llmgate_core::{Caller, Error, Result, caller::Tier, keys::Secret};
use llmgate_credits::UserDirectory;
use llmgate_credits::users::{UserRole, key_digest, key_expired, team_account};
use subtle::ConstantTimeEq;

/// What a caller may do. Role `admin` has all; role `user` has all but
/// [`Permission::Configure`], and its `manage_*` rights cover only its own keys and models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `llm.read`: list models, read own balance and usage.
    Read,
    /// `llm.execute`: chat completions, purchases.
    Execute,
    /// `llm.configure`: users and credits of others.
    Configure,
    /// `llm.manage_providers`: BYOK keys.
    ManageProviders,
    /// `llm.manage_models`: models.
    ManageModels,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "llm.read",
            Permission::Execute => "llm.execute",
            Permission::Configure => "llm.configure",
            Permission::ManageProviders => "llm.manage_providers",
            Permission::ManageModels => "llm.manage_models",
        }
    }
}

/// A caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    User,
}

impl Role {
    /// Whether the role grants a permission. A user's `manage_*` rights cover only their own
    /// keys and models; the handlers that touch those scope them to the caller.
    pub fn allows(self, permission: Permission) -> bool {
        match self {
            Role::Admin => true,
            Role::User => permission != Permission::Configure,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

/// An authenticated caller: the gateway's view (`Caller`) plus the role.
#[derive(Debug, Clone)]
pub struct Principal {
    pub caller: Caller,
    pub role: Role,
    /// The user the key belongs to. For a team key (made by a team owner) the caller's
    /// account is the team's, and this is still its maker.
    pub user: Arc<str>,
    /// The id of the user key that authenticated (`None` for the master key).
    pub key_id: Option<Arc<str>>,
}

impl Principal {
    /// The operator holding the master key.
    pub fn admin() -> Self {
        let caller = Caller::admin();
        Self {
            user: caller.user_id.clone(),
            caller,
            role: Role::Admin,
            key_id: None,
        }
    }

    /// The user this principal acts as (`admin` for the master key).
    pub fn user_id(&self) -> &str {
        &self.caller.user_id
    }

    /// Whether this principal may act on every user's data (`llm.configure`).
    pub fn is_admin(&self) -> bool {
        self.role.allows(Permission::Configure)
    }

    /// The user whose data a request is about: the caller's own, or — for admins only —
    /// the one named. A non-admin naming anyone but themselves gets 403.
    pub fn target_user(&self, requested: Option<&str>) -> Result<String> {
        match requested {
            None => Ok(self.user_id().to_owned()),
            Some(user_id) if user_id == self.user_id() || self.is_admin() => Ok(user_id.to_owned()),
            Some(_) => Err(
                Error::permission_denied("Only admins may act on another user's data.")
                    .with_code("permission_denied"),
            ),
        }
    }

    /// `Ok` when the role grants the permission, else 403.
    pub fn require(&self, permission: Permission) -> Result<()> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(Error::permission_denied(format!(
                "This key lacks the `{}` permission.",
                permission.as_str()
            ))
            .with_code("permission_denied"))
        }
    }
}

/// Resolves user API keys. Implemented by the users store.
#[async_trait]
pub trait UserKeys: Send + Sync + fmt::Debug + 'static {
    /// The principal owning `key`, or `None` when no user has it.
    /// `digest` is the key's [`key_digest`], computed once per request.
    async fn principal_for_key(&self, key: &str, digest: [u8; 32]) -> Result<Option<Principal>>;
}

const _: Option<Arc<dyn UserKeys>> = None;

/// Turns request headers into a principal.
#[derive(Clone)]
pub struct Auth {
    /// Only the digest is kept, so comparisons are constant-time over a fixed length.
    master_digest: [u8; 32],
    users: Option<Arc<dyn UserKeys>>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("user_keys", &self.users.is_some())
            .finish_non_exhaustive()
    }
}

impl Auth {
    pub fn new(master_key: &Secret) -> Self {
        Self {
            master_digest: key_digest(master_key.expose()),
            users: None,
        }
    }

    /// Accept user keys from this backend too.
    pub fn with_user_keys(mut self, users: Arc<dyn UserKeys>) -> Self {
        self.users = Some(users);
        self
    }

    /// Whether `key` is the master key (constant time).
    pub fn is_master_key(&self, key: &str) -> bool {
        self.is_master_digest(&key_digest(key))
    }

    /// Whether a key's digest is the master key's (constant time).
    fn is_master_digest(&self, digest: &[u8; 32]) -> bool {
        digest.ct_eq(&self.master_digest).into()
    }

    /// Authenticate, then check one permission (401, then 403).
    pub async fn require(&self, headers: &HeaderMap, permission: Permission) -> Result<Principal> {
        let principal = self.authenticate(headers).await?;
        principal.require(permission)?;
        Ok(principal)
    }

    /// The principal behind the request's key; 401 when there is none or it is unknown.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal> {
        let Some(key) = presented_key(headers) else {
            return Err(Error::authentication(
                "Missing API key: send it as `Authorization: Bearer KEY` or `x-api-key: KEY`.",
            )
            .with_code("missing_api_key"));
        };
        let digest = key_digest(key);
        if self.is_master_digest(&digest) {
            return Ok(Principal::admin());
        }
        if let Some(users) = &self.users
            && let Some(principal) = users.principal_for_key(key, digest).await?
        {
            return Ok(principal);
        }
        Err(Error::authentication("Invalid API key.").with_code("invalid_api_key"))
    }
}

/// User keys from the users table, through the cached [`UserDirectory`], mapped to principals
/// with their configured tier.
#[derive(Debug)]
pub struct DirectoryKeys {
    directory: Arc<UserDirectory>,
    tiers: Arc<HashMap<String, Arc<Tier>>>,
}

impl DirectoryKeys {
    pub fn new(directory: Arc<UserDirectory>, tiers: Arc<HashMap<String, Arc<Tier>>>) -> Self {
        Self { directory, tiers }
    }
}

#[async_trait]
impl UserKeys for DirectoryKeys {
    async fn principal_for_key(&self, key: &str, digest: [u8; 32]) -> Result<Option<Principal>> {
        let Some(owner) = self.directory.authenticate_digest(key, digest).await? else {
            return Ok(None);
        };
        if owner.settings.expired_at(unix_now()) {
            return Err(key_expired());
        }
        let limits = Arc::new(owner.settings.limits(&owner.key_id));
        let user = owner.user;
        // A team key spends the team's account at the team's tier.
        let (account, tier_name) = match (&owner.settings.team_id, owner.team_tier) {
            (Some(team_id), Some(tier)) => (team_account(team_id), tier),
            _ => (user.user_id.clone(), user.tier.clone()),
        };
        let Some(tier) = self.tiers.get(&tier_name) else {
            // The operator removed the tier from the config; refuse rather than guess prices.
            tracing::warn!(user_id = %user.user_id, tier = %tier_name, "a user's tier is not configured");
            return Err(Error::permission_denied(format!(
                "Your tier `{tier_name}` is not configured on this gateway; ask the operator."
            ))
            .with_code("unknown_tier"));
        };
        Ok(Some(Principal {
            caller: Caller::user(account, tier.clone()).with_key(limits),
            role: match user.role {
                UserRole::Admin => Role::Admin,
                UserRole::User => Role::User,
            },
            user: Arc::from(user.user_id),
            key_id: Some(Arc::from(owner.key_id)),
        }))
    }
}

/// The key from `Authorization: Bearer KEY`, else from `x-api-key`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(key.trim())
        });
    let key = bearer.or_else(|| {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    })?;
    (!key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[tokio::test]
    async fn master_key_is_admin_by_bearer_or_x_api_key() {
        let auth = Auth::new(&Secret::new("lg-master-abcdefghijklmnop"));
        for h in [
            headers(&[("authorization", "Bearer lg-master-abcdefghijklmnop")]),
            headers(&[("authorization", "bearer  lg-master-abcdefghijklmnop ")]),
            headers(&[("x-api-key", "lg-master-abcdefghijklmnop")]),
        ] {
            let principal = auth.authenticate(&h).await.unwrap();
            assert_eq!(principal.role, Role::Admin);
            assert_eq!(
                principal.caller.billing,
                llmgate_core::caller::Billing::Uncharged
            );
        }
    }

    #[tokio::test]
    async fn missing_or_wrong_key_is_401() {
        let auth = Auth::new(&Secret::new("lg-master-abcdefghijklmnop"));
        let none = auth.authenticate(&HeaderMap::new()).await.unwrap_err();
        assert_eq!((none.status(), none.code()), (401, Some("missing_api_key")));
        let wrong = auth
            .authenticate(&headers(&[(
                "authorization",
                "Bearer lg-master-abcdefghijklmnoq",
            )]))
            .await
            .unwrap_err();
        assert_eq!(
            (wrong.status(), wrong.code()),
            (401, Some("invalid_api_key"))
        );
        let basic = auth
            .authenticate(&headers(&[("authorization", "Basic abc")]))
            .await
            .unwrap_err();
        assert_eq!(basic.status(), 401);
    }

    #[test]
    fn users_may_not_configure() {
        assert!(Role::User.allows(Permission::Execute));
        assert!(!Role::User.allows(Permission::Configure));
        assert!(Role::Admin.allows(Permission::Configure));
    }
}
