//! BYOK through the API: `GET /api/v1/llm/providers` (the caller's view of every provider),
//! `PUT /api/v1/llm/providers/{name}/key {"api_key"}` and `DELETE …/key`. Keys go into the
//! vault sealed and come back out only as a masked `key_hint`.
//!
//! Contract: docs/http-api.md#bring-your-own-key

use std::collections::HashMap;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use llmgate_core::{
    Error, ErrorKind, Result,
    caller::Billing,
    keys::{KeyVault, Secret, StoredKey},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::read_json;
use super::response::{Body, json as json_response};
use crate::auth::Principal;
use crate::state::AppState;

/// Longer than any real provider key; a bound on what is sealed and stored.
const MAX_KEY_BYTES: usize = 4096;

/// `GET /api/v1/llm/providers`: each configured provider with whether the caller has a key
/// there (`byok_configured`, `key_hint`), and whether the caller may bring keys at all.
pub(crate) async fn list(state: &AppState, principal: &Principal) -> Result<Response<Body>> {
    let refusal = byok_refusal(state, principal);
    let stored: HashMap<String, StoredKey> = match state.gateway.vault() {
        Some(vault) if refusal.is_none() => vault
            .list(principal.user_id())
            .await?
            .into_iter()
            .map(|key| (key.provider.clone(), key))
            .collect(),
        _ => HashMap::new(),
    };
    let mut providers: Vec<Value> = state
        .gateway
        .providers()
        .map(|provider| {
            let name = provider.name();
            let config = state.config.providers.iter().find(|p| p.name == name);
            let key = stored.get(name);
            json!({
                "name": name,
                "kind": config.map(|c| c.kind.as_str()),
                "local": config.is_some_and(|c| c.local),
                "accepts_key": provider.requires_key(),
                "platform_key": state.gateway.has_platform_key(name),
                "byok_configured": key.is_some(),
                "key_hint": key.map(|k| k.key_hint.clone()),
                "updated_at": key.map(|k| k.updated_at),
            })
        })
        .collect();
    providers.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": providers,
            "byok_allowed": refusal.is_none(),
            "byok_reason": refusal.as_ref().map(Error::message),
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutKey {
    api_key: String,
}

/// `PUT /api/v1/llm/providers/{name}/key {"api_key"}`: store or replace the caller's key.
pub(crate) async fn put(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
    provider: &str,
) -> Result<Response<Body>> {
    let vault = byok_vault(state, principal, provider)?;
    let put: PutKey = read_json(request, &state.config.server).await?;
    let key = Secret::new(put.api_key.trim());
    if key.expose().is_empty() || key.expose().len() > MAX_KEY_BYTES {
        return Err(Error::invalid_request(format!(
            "`api_key` must be 1 to {MAX_KEY_BYTES} bytes."
        ))
        .with_param("api_key"));
    }
    if key.expose().chars().any(char::is_control) {
        return Err(Error::invalid_request(
            "`api_key` must not contain control characters or line breaks.",
        )
        .with_param("api_key"));
    }
    vault.put(principal.user_id(), provider, &key).await?;
    tracing::info!(user_id = principal.user_id(), provider, "stored a BYOK key");
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "provider": provider,
            "byok_configured": true,
            "key_hint": key.hint(),
        }),
    ))
}

/// `DELETE /api/v1/llm/providers/{name}/key`: requests go back to the platform key.
pub(crate) async fn delete(
    state: &AppState,
    principal: &Principal,
    provider: &str,
) -> Result<Response<Body>> {
    let vault = byok_vault(state, principal, provider)?;
    let deleted = vault.delete(principal.user_id(), provider).await?;
    if !deleted {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("You have no key stored for provider `{provider}`."),
        )
        .with_code("key_not_found"));
    }
    tracing::info!(
        user_id = principal.user_id(),
        provider,
        "deleted a BYOK key"
    );
    Ok(json_response(
        StatusCode::OK,
        &json!({ "provider": provider, "byok_configured": false, "deleted": true }),
    ))
}

/// The vault, once the provider exists, takes keys, and the caller may bring keys.
fn byok_vault<'a>(
    state: &'a AppState,
    principal: &Principal,
    provider: &str,
) -> Result<&'a std::sync::Arc<dyn KeyVault>> {
    let Some(found) = state.gateway.providers().find(|p| p.name() == provider) else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("There is no provider `{provider}` on this gateway."),
        )
        .with_code("provider_not_found"));
    };
    if let Some(refusal) = byok_refusal(state, principal) {
        return Err(refusal);
    }
    if !found.requires_key() {
        return Err(
            Error::invalid_request(format!("The provider `{provider}` takes no API key."))
                .with_code("provider_takes_no_key"),
        );
    }
    state.gateway.vault().ok_or_else(byok_off)
}

/// Why this caller cannot bring keys, if they cannot.
fn byok_refusal(state: &AppState, principal: &Principal) -> Option<Error> {
    let caller = &principal.caller;
    if caller.billing != Billing::Charged {
        return Some(
            Error::permission_denied(
                "The master key is never charged and always uses the platform keys; BYOK keys \
                 belong to users.",
            )
            .with_code("byok_not_allowed"),
        );
    }
    if !caller.tier.byok {
        return Some(
            Error::permission_denied(format!(
                "Your tier `{}` has no BYOK (bring your own key); ask the operator for a tier \
                 that includes it.",
                caller.tier.name
            ))
            .with_code("byok_not_allowed"),
        );
    }
    if state.gateway.vault().is_none() {
        return Some(byok_off());
    }
    None
}

fn byok_off() -> Error {
    Error::permission_denied(
        "BYOK is not enabled on this gateway: the operator has not set byok.encryption_key.",
    )
    .with_code("byok_disabled")
}
