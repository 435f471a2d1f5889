//! `GET /v1/models`: OpenAI's model list, each entry with llmgate's catalog facts.
//!
//! Contract: docs/http-api.md#get-v1models

use std::collections::HashSet;

use http::{Response, StatusCode};
use llmgate_core::{catalog::Deployment, pricing::Decimal};
use serde_json::{Value, json};

use super::response::{Body, json as json_response};
use crate::auth::Principal;
use crate::state::AppState;

/// The models the caller's key may use (every model for an unrestricted key).
pub(crate) fn list(state: &AppState, principal: &Principal) -> Response<Body> {
    let allowed = |name: &str| {
        principal
            .caller
            .key
            .as_ref()
            .is_none_or(|key| key.allows_requested(name))
    };
    // One entry per model name: the first deployment in config order speaks for it.
    let mut seen = HashSet::new();
    let data: Vec<Value> = state
        .gateway
        .catalog()
        .deployments()
        .iter()
        .filter(|d| allowed(&d.name) && seen.insert(d.name.clone()))
        .map(|d| entry(d, state.started_at))
        .collect();
    json_response(StatusCode::OK, &json!({ "object": "list", "data": data }))
}

fn price(value: Option<Decimal>) -> Value {
    value.map_or(Value::Null, |v| Value::String(v.normalize().to_string()))
}

fn entry(deployment: &Deployment, created: u64) -> Value {
    json!({
        "id": deployment.name,
        "object": "model",
        "created": created,
        "owned_by": deployment.provider,
        "provider": deployment.provider,
        "input_cost_per_1k": price(deployment.price.map(|p| p.input_per_1k)),
        "output_cost_per_1k": price(deployment.price.map(|p| p.output_per_1k)),
        "cache_read_cost_per_1k": price(deployment.price.map(|p| p.cache_read_per_1k)),
        "cache_write_cost_per_1k": price(deployment.price.map(|p| p.cache_write_per_1k)),
        "free": deployment.is_free(),
        "quality": deployment.quality,
        "context_window": deployment.context_window,
        "tags": deployment.tags,
        "latency": deployment.latency,
        "privacy": deployment.privacy,
        "mode": deployment.mode,
        "max_inputs": deployment.max_inputs,
    })
}
