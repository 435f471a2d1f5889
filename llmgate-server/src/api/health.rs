//! `GET /health` (liveness: the process answers) and `GET /health/ready` (readiness: the
//! database answers and is migrated, and Redis answers when one is configured).
//!
//! Contract: docs/http-api.md#health-and-metrics

use std::future::Future;
use std::time::{Duration, Instant};

use http::{Response, StatusCode};
use llmgate_core::Result;
use serde_json::{Map, Value, json};

use super::response::{Body, json as json_response};
use crate::state::AppState;
use crate::telemetry::BACKEND_DURATION;

/// How long a readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn live() -> Response<Body> {
    json_response(StatusCode::OK, &json!({ "status": "ok" }))
}

/// 200 `{"status":"ready","checks":{"database":"ok",...}}`, or 503 with `"status":"unavailable"`,
/// the failed checks' reasons in `checks` and their names in `failed`.
pub(crate) async fn ready(state: &AppState) -> Response<Body> {
    let storage = &state.storage;
    let database = check("database", storage.ledger.ready());
    let redis = async {
        match &storage.cache {
            Some(cache) => Some(check("redis", cache.ping()).await),
            None => None,
        }
    };
    let (database, redis) = futures::join!(database, redis);

    let mut checks = Map::new();
    let mut failed = Vec::new();
    for (name, outcome) in
        std::iter::once(("database", database)).chain(redis.map(|r| ("redis", r)))
    {
        let verdict = match outcome {
            Ok(()) => "ok".to_owned(),
            Err(reason) => {
                tracing::warn!(check = name, %reason, "readiness check failed");
                failed.push(name);
                reason
            }
        };
        checks.insert(name.to_owned(), Value::String(verdict));
    }
    if failed.is_empty() {
        json_response(
            StatusCode::OK,
            &json!({ "status": "ready", "checks": checks }),
        )
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "unavailable", "checks": checks, "failed": failed }),
        )
    }
}

/// Run one check under the timeout, timing it as a backend call; the reason when it fails
/// (the backend's own client-safe message: no hosts, no SQL, no secrets).
async fn check(
    backend: &'static str,
    probe: impl Future<Output = Result<()>>,
) -> Result<(), String> {
    let started = Instant::now();
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, probe).await;
    metrics::histogram!(BACKEND_DURATION, "backend" => backend, "operation" => "ready")
        .record(started.elapsed().as_secs_f64());
    let verdict = match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.message().to_owned()),
        Err(_) => Err(format!(
            "{backend} did not answer within {} s",
            CHECK_TIMEOUT.as_secs()
        )),
    };
    if verdict.is_err() {
        metrics::counter!(crate::telemetry::BACKEND_ERRORS, "backend" => backend, "operation" => "ready")
            .increment(1);
    }
    verdict
}
