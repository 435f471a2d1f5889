//! One request in, one response out: request id, routing, dispatch, error rendering, logging.
//! Nothing a request does can take the process down: a panic becomes a 500.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use llmgate_core::Error;
use tracing::Instrument;

use super::response::{Body, error_response, error_with_status, set_header};
use super::router::{Endpoint, Miss, route};
use super::{admin, billing, chat, credits, health, messages, models, provider_keys, usage};
use crate::state::AppState;

/// What every handler may need about the request besides its body.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    pub request_id: Arc<str>,
}

/// Answer one request.
pub async fn handle(state: AppState, request: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let context = RequestContext {
        request_id: request_id(request.headers()),
    };
    // Handlers record what they learn (model, provider, attempts, cost) on this span; headers
    // are never logged (they carry keys).
    let span = tracing::info_span!(
        "request",
        request_id = %context.request_id,
        %method,
        %path,
        model = tracing::field::Empty,
        provider = tracing::field::Empty,
        attempts = tracing::field::Empty,
        key_source = tracing::field::Empty,
        cost_micros = tracing::field::Empty,
    );
    let outcome = AssertUnwindSafe(dispatch(&state, &context, request))
        .catch_unwind()
        .instrument(span.clone())
        .await;
    let mut response = outcome.unwrap_or_else(|_| {
        tracing::error!(parent: &span, "a handler panicked");
        error_response(&Error::internal("An internal error occurred."))
    });
    set_header(&mut response, "x-request-id", &context.request_id);
    let status = response.status().as_u16();
    let ms = started.elapsed().as_millis() as u64;
    if is_probe(&path) {
        tracing::debug!(parent: &span, status, ms, "request");
    } else {
        tracing::info!(parent: &span, status, ms, "request");
    }
    response
}

/// Health checks and scrapes come every few seconds; they log at debug only.
fn is_probe(path: &str) -> bool {
    matches!(path, "/health" | "/health/ready" | "/metrics")
}

async fn dispatch(
    state: &AppState,
    context: &RequestContext,
    request: Request<Incoming>,
) -> Response<Body> {
    let endpoint = match route(request.method(), request.uri().path()) {
        Ok(endpoint) => endpoint,
        Err(miss) => return miss_response(&miss, request.method(), request.uri().path()),
    };
    let result = match endpoint {
        Endpoint::ChatCompletions => chat::completions(state, context, request).await,
        Endpoint::Messages => messages::create(state, context, request).await,
        Endpoint::MessagesCountTokens => messages::count_tokens(state, context, request).await,
        Endpoint::ListModels => models::list(state, request).await,
        Endpoint::Credits => credits::balance(state, request).await,
        Endpoint::CreditsAdd => credits::add(state, request).await,
        Endpoint::CreditsTransactions => credits::transactions(state, request).await,
        Endpoint::CreditsPackages => billing::packages(state, request).await,
        Endpoint::CreditsPurchase => billing::purchase(state, request).await,
        Endpoint::Usage => usage::usage(state, request).await,
        Endpoint::StripeWebhook => billing::stripe_webhook(state, request).await,
        Endpoint::Health => Ok(health::live()),
        Endpoint::Ready => Ok(health::ready(state).await),
        // With its own listener, the metrics are not served to the API's clients.
        Endpoint::Metrics if state.config.server.metrics_listen.is_some() => {
            return miss_response(&Miss::NotFound, request.method(), request.uri().path());
        }
        Endpoint::Metrics => Ok(crate::telemetry::scrape(state)),
        Endpoint::AdminListUsers => admin::list_users(state, request).await,
        Endpoint::AdminCreateUser => admin::create_user(state, request).await,
        Endpoint::AdminGetUser(user) => admin::get_user(state, request, &user).await,
        Endpoint::AdminUpdateUser(user) => admin::update_user(state, request, &user).await,
        Endpoint::AdminListKeys(user) => admin::list_keys(state, request, &user).await,
        Endpoint::AdminIssueKey(user) => admin::issue_key(state, request, &user).await,
        Endpoint::AdminRevokeKey { user_id, key_id } => {
            admin::revoke_key(state, request, &user_id, &key_id).await
        }
        Endpoint::ListProviders => provider_keys::list(state, request).await,
        Endpoint::PutProviderKey(name) => provider_keys::put(state, request, &name).await,
        Endpoint::DeleteProviderKey(name) => provider_keys::delete(state, request, &name).await,
        Endpoint::Ui => Ok(crate::ui::serve(
            request.method(),
            request.uri().path(),
            request.headers(),
        )),
    };
    result.unwrap_or_else(|error| {
        if error.status() >= 500 {
            tracing::warn!(request_id = %context.request_id, %error, "request failed");
        }
        error_response(&error)
    })
}

fn miss_response(miss: &Miss, method: &Method, path: &str) -> Response<Body> {
    let error = miss.to_error(method, path);
    match miss {
        Miss::NotFound => error_response(&error),
        Miss::MethodNotAllowed { allowed } => {
            let mut response = error_with_status(&error, StatusCode::METHOD_NOT_ALLOWED);
            let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
            set_header(&mut response, header::ALLOW.as_str(), &allow.join(", "));
            response
        }
    }
}

/// The client's `x-request-id` when it is sane (1–128 visible ASCII characters), else a new one.
fn request_id(headers: &HeaderMap) -> Arc<str> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(
            || Arc::from(format!("req-{:032x}", rand::random::<u128>())),
            Arc::from,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_request_ids_are_kept_and_others_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", "abc-123".parse().unwrap());
        assert_eq!(&*request_id(&headers), "abc-123");
        headers.insert("x-request-id", "has space".parse().unwrap());
        assert!(request_id(&headers).starts_with("req-"));
        headers.insert("x-request-id", "x".repeat(129).parse().unwrap());
        assert!(request_id(&headers).starts_with("req-"));
        assert!(request_id(&HeaderMap::new()).starts_with("req-"));
    }
}
