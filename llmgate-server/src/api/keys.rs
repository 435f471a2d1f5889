//! `/api/v1/keys`: API keys as governance. Users manage their own keys, admins anyone's:
//! create (the key is in that response and nowhere else), list, change, revoke.
//!
//! Only an unrestricted key (or the master key) may create, change or revoke keys: a key
//! limited to some models or a budget could otherwise make itself an unlimited one. A team
//! key (`team_id`) may be made only for an owner of the team.
//!
//! Contract: docs/http-api.md#api-keys

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use llmgate_core::key_limits::{format_rfc3339, parse_rfc3339};
use llmgate_core::{Error, ErrorKind, Result, pricing::micros_to_credits};
use llmgate_credits::users::{ApiKeyInfo, KeySettings, TeamRole};
use serde_json::{Map, Value, json};

use super::amount::parse_credits;
use super::body::read_json;
use super::issued::{add_issued_key, issued_key_response};
use super::params::Params;
use super::response::{Body, json as json_response};
use crate::auth::Principal;
use crate::state::AppState;

/// The fields a key's settings are written with, in POST and PATCH bodies.
const SETTINGS: &[&str] = &[
    "name",
    "models",
    "max_budget",
    "budget_period",
    "rpm",
    "tpm",
    "expires_at",
    "team_id",
];

/// `POST /api/v1/keys`: a new key for the caller (admins: for `user_id`), shown this once.
pub(crate) async fn create(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>> {
    require_unrestricted(principal)?;
    let body: Map<String, Value> = read_json(request, &state.config.server).await?;
    let owner = match body.get("user_id") {
        None | Some(Value::Null) => principal.user.to_string(),
        Some(Value::String(user_id)) => principal_target(principal, user_id)?,
        Some(_) => return Err(bad("user_id", "`user_id` must be a string.")),
    };
    let mut settings = KeySettings::default();
    apply(&mut settings, &body, &["user_id"])?;
    settings.check()?;
    if let Some(team_id) = &settings.team_id {
        check_team_owner(state, principal, team_id, &owner).await?;
    }
    let Some(issued) = state.storage.users.create_key(&owner, &settings).await? else {
        return Err(
            Error::new(ErrorKind::NotFound, format!("There is no user `{owner}`."))
                .with_param("user_id")
                .with_code("user_not_found"),
        );
    };
    tracing::info!(user_id = %owner, key_id = %issued.id, by = %principal.user, "created an API key");
    let info = state.storage.users.store().key(&issued.id).await?;
    let mut answer = info.as_ref().map_or_else(|| json!({}), key_json);
    add_issued_key(&mut answer, &issued);
    Ok(issued_key_response(&answer))
}

/// `GET /api/v1/keys[?user_id=]`: the caller's keys; admins name a user or get every key.
pub(crate) async fn list(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>> {
    let params = Params::parse(request.uri(), &["user_id"])?;
    let store = state.storage.users.store();
    let keys = match params.get("user_id") {
        Some(user_id) => store.keys(&principal_target(principal, user_id)?).await?,
        None if principal.is_admin() && principal.caller.key.is_none() => {
            store.all_keys(500).await?
        }
        None => store.keys(&principal.user).await?,
    };
    let data: Vec<Value> = keys.iter().map(key_json).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "object": "list", "data": data }),
    ))
}

/// `PATCH /api/v1/keys/{key_id}`: change a live key's settings; a field set to `null` is
/// cleared. Takes effect on this replica at once, on others within the key cache's 5 s.
pub(crate) async fn update(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
    key_id: &str,
) -> Result<Response<Body>> {
    require_unrestricted(principal)?;
    let key = own_live_key(state, principal, key_id).await?;
    let body: Map<String, Value> = read_json(request, &state.config.server).await?;
    let mut settings = key.settings.clone();
    apply(&mut settings, &body, &[])?;
    settings.check()?;
    if settings.team_id != key.settings.team_id
        && let Some(team_id) = &settings.team_id
    {
        check_team_owner(state, principal, team_id, &key.user_id).await?;
    }
    if !state.storage.users.update_key(key_id, &settings).await? {
        return Err(no_such_key(key_id));
    }
    tracing::info!(key_id, by = %principal.user, "changed an API key");
    let key = state.storage.users.store().key(key_id).await?;
    let answer = key.as_ref().map_or_else(|| json!({}), key_json);
    Ok(json_response(StatusCode::OK, &answer))
}

/// `DELETE /api/v1/keys/{key_id}`: revoke; 401 from then on (on other replicas within 5 s).
pub(crate) async fn revoke(
    state: &AppState,
    principal: &Principal,
    key_id: &str,
) -> Result<Response<Body>> {
    require_unrestricted(principal)?;
    let key = own_live_key(state, principal, key_id).await?;
    if !state.storage.users.revoke_key(&key.user_id, key_id).await? {
        return Err(no_such_key(key_id));
    }
    tracing::info!(key_id, by = %principal.user, "revoked an API key");
    Ok(json_response(
        StatusCode::OK,
        &json!({ "key_id": key_id, "user_id": key.user_id, "revoked": true }),
    ))
}

/// A key with restrictions may not manage keys (it could mint itself an unrestricted one).
fn require_unrestricted(principal: &Principal) -> Result<()> {
    let restricted = principal
        .caller
        .key
        .as_ref()
        .is_some_and(|key| key.is_restricted())
        || principal.user.as_ref() != principal.user_id();
    if restricted {
        return Err(Error::permission_denied(
            "A restricted or team API key cannot create, change or revoke keys; use an \
             unrestricted key of your own.",
        )
        .with_code("permission_denied"));
    }
    Ok(())
}

/// The user a request names: the caller themselves, or anyone for an admin.
fn principal_target(principal: &Principal, user_id: &str) -> Result<String> {
    if user_id == principal.user.as_ref() || principal.is_admin() {
        return Ok(user_id.to_owned());
    }
    Err(
        Error::permission_denied("Only admins may manage another user's keys.")
            .with_code("permission_denied"),
    )
}

/// A live key the caller may manage; 404 for one that is not theirs (no hint that it exists).
async fn own_live_key(state: &AppState, principal: &Principal, key_id: &str) -> Result<ApiKeyInfo> {
    match state.storage.users.store().key(key_id).await? {
        Some(key)
            if key.revoked_at.is_none()
                && (key.user_id == principal.user.as_ref() || principal.is_admin()) =>
        {
            Ok(key)
        }
        _ => Err(no_such_key(key_id)),
    }
}

/// Team keys are made only for the team's owners (and the team must exist); 403 otherwise.
async fn check_team_owner(
    state: &AppState,
    principal: &Principal,
    team_id: &str,
    owner: &str,
) -> Result<()> {
    let role = state.storage.teams.role_of(team_id, owner).await?;
    if role == Some(TeamRole::Owner) {
        return Ok(());
    }
    let message = if principal.is_admin() {
        format!("`{owner}` is not an owner of the team `{team_id}`; only owners have team keys.")
    } else {
        format!("Only owners of the team `{team_id}` may make its keys.")
    };
    Err(Error::permission_denied(message)
        .with_param("team_id")
        .with_code("not_team_owner"))
}

fn no_such_key(key_id: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("There is no live key `{key_id}` of yours."),
    )
    .with_code("key_not_found")
}

fn bad(param: &'static str, message: &str) -> Error {
    Error::invalid_request(message.to_owned()).with_param(param)
}

/// Write the body's settings fields into `settings` (`null` clears one); any other field
/// than those and `extra` is refused.
fn apply(settings: &mut KeySettings, body: &Map<String, Value>, extra: &[&str]) -> Result<()> {
    if let Some(unknown) = body
        .keys()
        .find(|k| !SETTINGS.contains(&k.as_str()) && !extra.contains(&k.as_str()))
    {
        return Err(Error::invalid_request(format!(
            "Unknown field `{unknown}`."
        )));
    }
    for (field, value) in body {
        let null = value.is_null();
        match field.as_str() {
            "name" => settings.name = text(value, "name")?,
            "models" => settings.models = model_list(value)?,
            "max_budget" => {
                settings.max_budget_micros = if null {
                    None
                } else {
                    let raw = serde_json::value::to_raw_value(value)
                        .map_err(|_| bad("max_budget", "`max_budget` must be a number."))?;
                    Some(parse_credits(&raw, "max_budget")?)
                }
            }
            "budget_period" => {
                settings.budget_period = text(value, "budget_period")?
                    .map(|p| p.parse())
                    .transpose()?
            }
            "rpm" => settings.rpm = per_minute(value, "rpm")?,
            "tpm" => settings.tpm = per_minute(value, "tpm")?,
            "expires_at" => {
                settings.expires_at = text(value, "expires_at")?
                    .map(|at| {
                        parse_rfc3339(&at).ok_or_else(|| {
                            bad("expires_at", "`expires_at` must be an RFC 3339 time such as \"2026-12-31T23:59:59Z\".")
                        })
                    })
                    .transpose()?
            }
            "team_id" => settings.team_id = text(value, "team_id")?,
            _ => {}
        }
    }
    Ok(())
}

fn text(value: &Value, param: &'static str) -> Result<Option<String>> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text.clone())),
        _ => Err(bad(param, &format!("`{param}` must be a string."))),
    }
}

fn model_list(value: &Value) -> Result<Option<Vec<String>>> {
    match value {
        Value::Null => Ok(None),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad("models", "`models` must be a list of strings."))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        _ => Err(bad("models", "`models` must be a list of strings.")),
    }
}

fn per_minute(value: &Value, param: &'static str) -> Result<Option<u32>> {
    match value {
        Value::Null => Ok(None),
        _ => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n > 0)
            .map(Some)
            .ok_or_else(|| bad(param, &format!("`{param}` must be a whole number above 0."))),
    }
}

/// A key as listed: its hint, never the key.
fn key_json(key: &ApiKeyInfo) -> Value {
    let settings = &key.settings;
    json!({
        "key_id": key.id,
        "user_id": key.user_id,
        "key_hint": key.key_hint,
        "name": settings.name,
        "models": settings.models,
        "max_budget": settings.max_budget_micros.map(|m| micros_to_credits(m).to_string()),
        "max_budget_micros": settings.max_budget_micros,
        "budget_period": settings.max_budget_micros.map(|_| settings.period().as_str()),
        "spend_micros": key.spend_micros,
        "spend": micros_to_credits(key.spend_micros).to_string(),
        "rpm": settings.rpm,
        "tpm": settings.tpm,
        "expires_at": settings.expires_at.map(format_rfc3339),
        "team_id": settings.team_id,
        "last_used_at": key.last_used_at.map(format_rfc3339),
        "created_at": format_rfc3339(key.created_at),
        "revoked_at": key.revoked_at.map(format_rfc3339),
    })
}
