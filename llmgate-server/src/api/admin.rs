//! The admin API (`llm.configure`): the configured tiers, users with tier, role and balance,
//! and their API keys.
//!
//! `GET /api/v1/admin/tiers`, `GET|POST /api/v1/admin/users`, `GET|PATCH /api/v1/admin/users/{id}`,
//! `GET|POST /api/v1/admin/users/{id}/keys`, `DELETE /api/v1/admin/users/{id}/keys/{key_id}`.
//! A new key is in the response that issued it and nowhere else, ever.
//!
//! Contract: docs/http-api.md#admin

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use llmgate_core::{Error, ErrorKind, Result, pricing::micros_to_credits};
use llmgate_credits::users::{ApiKeyInfo, User, UserRole, UserUpdate, check_user_id};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::read_json;
use super::issued::{add_issued_key, issued_key_response};
use super::params::Params;
use super::response::{Body, json as json_response};
use crate::auth::Principal;
use crate::state::AppState;

/// Users per page unless `limit` says otherwise, and the most it may say.
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;

/// `GET /api/v1/admin/tiers`: every configured tier with its settings, by name. Amounts are
/// decimal strings (never floats), `monthly_credits` and `rpm` are `null` when unset.
pub(crate) fn list_tiers(state: &AppState) -> Response<Body> {
    let mut tiers: Vec<&llmgate_core::caller::Tier> = state.tiers.values().map(|t| &**t).collect();
    tiers.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    let data: Vec<Value> = tiers
        .into_iter()
        .map(|tier| {
            json!({
                "name": tier.name,
                "markup": tier.markup.normalize().to_string(),
                "byok": tier.byok,
                "monthly_credits": tier.monthly_credits.map(|c| c.normalize().to_string()),
                "default_power_level": tier.default_power_level.as_str(),
                "rpm": tier.rpm,
                "require_private": tier.require_private,
            })
        })
        .collect();
    json_response(StatusCode::OK, &json!({ "object": "list", "data": data }))
}

/// `GET /api/v1/admin/users[?limit=&after=]`: users by id, each with their balance.
pub(crate) async fn list_users(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>> {
    let query = Params::parse(request.uri(), &["limit", "after"])?;
    let limit = query
        .integer("limit", 1..=MAX_PAGE, Some(DEFAULT_PAGE))?
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(DEFAULT_PAGE as u32);
    // One extra row tells whether there is a next page.
    let mut users = state
        .storage
        .users
        .store()
        .list(query.get("after"), limit + 1)
        .await?;
    let has_more = users.len() > limit as usize;
    users.truncate(limit as usize);
    let mut data = Vec::with_capacity(users.len());
    for user in &users {
        data.push(user_json(state, user).await?);
    }
    let next_after = has_more
        .then(|| users.last().map(|u| u.user_id.clone()))
        .flatten();
    tracing::debug!(by = principal.user_id(), count = data.len(), "listed users");
    Ok(json_response(
        StatusCode::OK,
        &json!({ "object": "list", "data": data, "has_more": has_more, "next_after": next_after }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    user_id: String,
    tier: String,
    #[serde(default)]
    role: Option<String>,
}

/// `POST /api/v1/admin/users {"user_id","tier","role"}` → the user and their first key (shown
/// this once). Grants the tier's monthly credits.
pub(crate) async fn create_user(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>> {
    let new: NewUser = read_json(request, &state.config.server).await?;
    check_user_id(&new.user_id)?;
    check_tier(state, &new.tier)?;
    let role = parse_role(new.role.as_deref().unwrap_or("user"))?;
    let (user, key) = state
        .storage
        .users
        .create(&new.user_id, &new.tier, role)
        .await?;
    log_change(&user, principal, "created a user");
    let mut answer = user_json(state, &user).await?;
    add_issued_key(&mut answer, &key);
    Ok(issued_key_response(&answer))
}

/// `GET /api/v1/admin/users/{id}`.
pub(crate) async fn get_user(state: &AppState, user_id: &str) -> Result<Response<Body>> {
    let user = existing_user(state, user_id).await?;
    Ok(json_response(
        StatusCode::OK,
        &user_json(state, &user).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChange {
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    role: Option<String>,
}

/// `PATCH /api/v1/admin/users/{id} {"tier"?, "role"?}`. Takes effect on the user's next
/// request (their cached keys are dropped).
pub(crate) async fn update_user(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
    user_id: &str,
) -> Result<Response<Body>> {
    let change: UserChange = read_json(request, &state.config.server).await?;
    if change.tier.is_none() && change.role.is_none() {
        return Err(Error::invalid_request(
            "Nothing to change: send `tier`, `role` or both.",
        ));
    }
    if let Some(tier) = &change.tier {
        check_tier(state, tier)?;
    }
    let update = UserUpdate {
        tier: change.tier,
        role: change.role.as_deref().map(parse_role).transpose()?,
    };
    let Some(user) = state.storage.users.update(user_id, &update).await? else {
        return Err(no_such_user(user_id));
    };
    log_change(&user, principal, "changed a user");
    Ok(json_response(
        StatusCode::OK,
        &user_json(state, &user).await?,
    ))
}

/// `POST /api/v1/admin/users/{id}/keys`: another key for the user, shown this once.
pub(crate) async fn issue_key(
    state: &AppState,
    principal: &Principal,
    user_id: &str,
) -> Result<Response<Body>> {
    let Some(key) = state.storage.users.issue_key(user_id).await? else {
        return Err(no_such_user(user_id));
    };
    tracing::info!(user_id, key_id = %key.id, by = principal.user_id(), "issued an API key");
    let mut answer = json!({ "user_id": user_id });
    add_issued_key(&mut answer, &key);
    Ok(issued_key_response(&answer))
}

/// `GET /api/v1/admin/users/{id}/keys`: the user's keys as hints, revoked ones included.
pub(crate) async fn list_keys(state: &AppState, user_id: &str) -> Result<Response<Body>> {
    existing_user(state, user_id).await?;
    let keys = state.storage.users.store().keys(user_id).await?;
    let data: Vec<Value> = keys.iter().map(key_json).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "object": "list", "data": data }),
    ))
}

/// `DELETE /api/v1/admin/users/{id}/keys/{key_id}`: the key stops working at once on this
/// replica (within the key cache's 5 s on others).
pub(crate) async fn revoke_key(
    state: &AppState,
    principal: &Principal,
    user_id: &str,
    key_id: &str,
) -> Result<Response<Body>> {
    if !state.storage.users.revoke_key(user_id, key_id).await? {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("The user `{user_id}` has no live key `{key_id}`."),
        )
        .with_code("key_not_found"));
    }
    tracing::info!(
        user_id,
        key_id,
        by = principal.user_id(),
        "revoked an API key"
    );
    Ok(json_response(
        StatusCode::OK,
        &json!({ "id": key_id, "user_id": user_id, "revoked": true }),
    ))
}

/// The log line of a user made or changed, with who did it.
fn log_change(user: &User, by: &Principal, what: &'static str) {
    tracing::info!(
        user_id = %user.user_id,
        tier = %user.tier,
        role = user.role.as_str(),
        by = by.user_id(),
        "{what}"
    );
}

async fn existing_user(state: &AppState, user_id: &str) -> Result<User> {
    state
        .storage
        .users
        .store()
        .get(user_id)
        .await?
        .ok_or_else(|| no_such_user(user_id))
}

fn no_such_user(user_id: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("There is no user `{user_id}`."),
    )
    .with_code("user_not_found")
}

fn check_tier(state: &AppState, tier: &str) -> Result<()> {
    if state.tiers.contains_key(tier) {
        return Ok(());
    }
    let mut known: Vec<&str> = state.tiers.keys().map(String::as_str).collect();
    known.sort_unstable();
    Err(Error::invalid_request(format!(
        "Unknown tier `{tier}`; this gateway has: {}.",
        known.join(", ")
    ))
    .with_param("tier")
    .with_code("unknown_tier"))
}

fn parse_role(text: &str) -> Result<UserRole> {
    text.parse()
}

async fn user_json(state: &AppState, user: &User) -> Result<Value> {
    // Through the gateway: the read waits for settles still queued behind answers.
    let balance_micros = state.gateway.credits().balance(&user.user_id).await?;
    Ok(json!({
        "user_id": user.user_id,
        "tier": user.tier,
        "role": user.role,
        "created_at": user.created_at,
        "balance_micros": balance_micros,
        "balance": micros_to_credits(balance_micros).to_string(),
    }))
}

fn key_json(key: &ApiKeyInfo) -> Value {
    json!({
        "id": key.id,
        "key_hint": key.key_hint,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    })
}
