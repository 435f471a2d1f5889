//! `GET /health` (liveness) and `GET /health/ready` (the backends answer).

use std::time::Duration;

use http::{Response, StatusCode};
use serde_json::{Map, Value, json};

use super::response::{Body, json as json_response};
use crate::state::AppState;

/// How long a readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn live() -> Response<Body> {
    json_response(StatusCode::OK, &json!({ "status": "ok" }))
}

pub(crate) async fn ready(state: &AppState) -> Response<Body> {
    let mut checks = Map::new();
    let credit_store = tokio::time::timeout(
        CHECK_TIMEOUT,
        state.gateway.credits().balance("llmgate-readiness-probe"),
    )
    .await;
    let store_ok = matches!(credit_store, Ok(Ok(_)));
    if !store_ok {
        tracing::warn!("readiness: the credit store did not answer");
    }
    checks.insert("credit_store".to_owned(), status(store_ok));
    let all_ok = store_ok;
    let code = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        code,
        &json!({ "status": if all_ok { "ok" } else { "unavailable" }, "checks": checks }),
    )
}

fn status(ok: bool) -> Value {
    Value::String(if ok { "ok" } else { "unavailable" }.to_owned())
}
