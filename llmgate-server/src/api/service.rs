//! One request in, one response out: request id, routing, authentication, dispatch, error
//! rendering, logging. Nothing a request does can take the process down: a panic becomes a 500.
//!
//! Authentication happens here and only here: [`needs`] says what each endpoint asks of its
//! caller, dispatch checks it once (401 without a known key, 403 without the permission) and
//! hands the authenticated [`Principal`] to the handler.
//!
//! Contract: docs/http-api.md#common-rules

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use llmgate_core::Error;
use llmgate_credits::users::team_of_account;
use tracing::Instrument;

use super::context::RequestContext;
use super::response::{Body, error_response, error_with_status, set_header};
use super::router::{Endpoint, Miss, route};
use super::{
    admin, billing, chat, credits, embeddings, health, keys, messages, models, provider_keys,
    requests, responses, stored_responses, teams, usage,
};
use crate::auth::{Permission, Principal};
use crate::request_log::{Recording, Who};
use crate::state::AppState;
use crate::telemetry::RequestTrace;

/// The request's id, echoed on every answer.
const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// Answer one request.
pub async fn handle(state: AppState, request: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut context = RequestContext {
        request_id: request_id(request.headers()),
        started,
        recording: None,
        trace: RequestTrace::default(),
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
    let outcome = AssertUnwindSafe(dispatch(&state, &mut context, request))
        .catch_unwind()
        .instrument(span.clone())
        .await;
    let mut response = outcome.unwrap_or_else(|_| {
        tracing::error!(parent: &span, "a handler panicked");
        let error = Error::internal("An internal error occurred.");
        context.trace.failed(&error);
        error_response(&error)
    });
    set_header(&mut response, REQUEST_ID, &context.request_id);
    let status = response.status().as_u16();
    context.trace.responded(status);
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

/// What an endpoint asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Anyone: probes, metrics, the UI's files, and Stripe's webhook (Stripe signs it).
    Nothing,
    /// An API key (the master key or a user's) whose role grants the permission.
    Key(Permission),
}

/// The one table of who may call what.
fn needs(endpoint: &Endpoint) -> Needs {
    match endpoint {
        Endpoint::Health
        | Endpoint::Ready
        | Endpoint::Metrics
        | Endpoint::StripeWebhook
        | Endpoint::Ui => Needs::Nothing,
        Endpoint::ChatCompletions
        | Endpoint::Embeddings
        | Endpoint::Messages
        | Endpoint::MessagesCountTokens
        | Endpoint::Responses
        | Endpoint::DeleteResponse(_)
        | Endpoint::CreditsPurchase => Needs::Key(Permission::Execute),
        Endpoint::ListModels
        | Endpoint::GetResponse(_)
        | Endpoint::ListResponseInputItems(_)
        | Endpoint::Credits
        | Endpoint::CreditsTransactions
        | Endpoint::CreditsPackages
        | Endpoint::Usage
        | Endpoint::ListRequests
        | Endpoint::GetRequest(_)
        | Endpoint::ListProviders
        | Endpoint::ListKeys => Needs::Key(Permission::Read),
        Endpoint::CreateKey | Endpoint::UpdateKey(_) | Endpoint::RevokeKey(_) => {
            Needs::Key(Permission::Execute)
        }
        Endpoint::CreditsAdd
        | Endpoint::AdminListTiers
        | Endpoint::AdminListUsers
        | Endpoint::AdminCreateUser
        | Endpoint::AdminGetUser(_)
        | Endpoint::AdminUpdateUser(_)
        | Endpoint::AdminListKeys(_)
        | Endpoint::AdminIssueKey(_)
        | Endpoint::AdminRevokeKey { .. }
        | Endpoint::AdminListTeams
        | Endpoint::AdminCreateTeam
        | Endpoint::AdminAddTeamMember(_)
        | Endpoint::AdminRemoveTeamMember { .. } => Needs::Key(Permission::Configure),
        Endpoint::PutProviderKey(_) | Endpoint::DeleteProviderKey(_) => {
            Needs::Key(Permission::ManageProviders)
        }
    }
}

async fn dispatch(
    state: &AppState,
    context: &mut RequestContext,
    request: Request<Incoming>,
) -> Response<Body> {
    let endpoint = match route(request.method(), request.uri().path()) {
        Ok(endpoint) => endpoint,
        Err(miss) => return miss_response(&miss, request.method(), request.uri().path()),
    };
    if let (Some(traces), Some(operation)) = (&state.traces, gen_ai_operation(&endpoint)) {
        context.trace = traces.request(
            request.headers(),
            request.method(),
            request.uri().path(),
            operation,
            &context.request_id,
        );
    }
    let context = &*context;
    // Anthropic's clients read errors in Anthropic's shape, the refused key's included.
    let anthropic = speaks_anthropic(request.uri().path());
    let recorded;
    let mut context = context;
    let result = match needs(&endpoint) {
        Needs::Nothing => open(state, endpoint, request).await,
        Needs::Key(permission) => match state.auth.authenticate(request.headers()).await {
            Ok(principal) => {
                // Refusals of a known caller (403 here, 402/404/429 in the pipeline) are logged.
                if let Some(path) = logged_path(&endpoint) {
                    recorded = recording(state, context, &principal, path);
                    context = &recorded;
                }
                context.trace.user(&principal.caller.user_id);
                match principal.require(permission) {
                    Ok(()) => {
                        // Boxed: the handlers' futures are large (the chat pipeline's is
                        // about 15 KB), and every future that holds one inline is copied
                        // whole each time it moves (into the tracer, the panic guard, the
                        // connection's slot): a quarter of a megabyte per request.
                        let handler =
                            Box::pin(keyed(state, context, &principal, endpoint, request));
                        traced(&context.trace, handler).await
                    }
                    Err(refused) => Err(refused),
                }
            }
            Err(refused) => Err(refused),
        },
    };
    let response = result.unwrap_or_else(|error| {
        context.trace.failed(&error);
        if error.status() >= 500 {
            tracing::warn!(request_id = %context.request_id, %error, "request failed");
        }
        context.record(|recording| recording.failed(&error));
        if anthropic {
            return messages::error_response(&error);
        }
        error_response(&error)
    });
    context.record(|recording| recording.answered(response.status().as_u16()));
    response
}

/// The endpoints with a row per request in the request log, by their documented path: the
/// ones that call upstreams (or count tokens with them). A new ingress is logged by adding
/// its line here; what it records comes from the shared chat pipeline.
fn logged_path(endpoint: &Endpoint) -> Option<&'static str> {
    match endpoint {
        Endpoint::ChatCompletions => Some("/v1/chat/completions"),
        Endpoint::Embeddings => Some("/v1/embeddings"),
        Endpoint::Messages => Some("/v1/messages"),
        Endpoint::MessagesCountTokens => Some("/v1/messages/count_tokens"),
        Endpoint::Responses => Some("/v1/responses"),
        _ => None,
    }
}

/// The context of a logged request: the same, with its row started for `principal`.
fn recording(
    state: &AppState,
    context: &RequestContext,
    principal: &Principal,
    path: &'static str,
) -> RequestContext {
    // A team key's row is its maker's and names the team, so every member sees it.
    let who = Who {
        user_id: principal.user.clone(),
        key_id: principal.key_id.clone(),
        team_id: team_of_account(&principal.caller.user_id).map(Arc::from),
    };
    RequestContext {
        recording: Recording::start(
            &state.request_log,
            context.started,
            context.request_id.clone(),
            who,
            path,
        ),
        ..context.clone()
    }
}

/// The `gen_ai.operation.name` of a model endpoint; the others get no span. Every endpoint
/// that calls a model is one (a test holds it to the `Execute` endpoints of [`needs`]).
fn gen_ai_operation(endpoint: &Endpoint) -> Option<&'static str> {
    match endpoint {
        Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::Responses => Some("chat"),
        Endpoint::Embeddings => Some("embeddings"),
        Endpoint::MessagesCountTokens => Some("count_tokens"),
        _ => None,
    }
}

/// Run a handler with the core told of its upstream attempts, when the request is traced.
async fn traced<F: Future>(trace: &RequestTrace, handler: F) -> F::Output {
    match trace.tracer() {
        Some(tracer) => llmgate_core::trace::traced(tracer, handler).await,
        None => handler.await,
    }
}

/// The endpoints [`needs`] leaves open to anyone.
async fn open(
    state: &AppState,
    endpoint: Endpoint,
    request: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    match endpoint {
        Endpoint::StripeWebhook => billing::stripe_webhook(state, request).await,
        Endpoint::Health => Ok(health::live()),
        Endpoint::Ready => Ok(health::ready(state).await),
        // With its own listener, the metrics are not served to the API's clients.
        Endpoint::Metrics if state.config.server.metrics_listen.is_some() => Ok(miss_response(
            &Miss::NotFound,
            request.method(),
            request.uri().path(),
        )),
        Endpoint::Metrics => Ok(crate::telemetry::scrape(&state.gateway)),
        Endpoint::Ui => Ok(crate::ui::serve(
            request.method(),
            request.uri().path(),
            request.headers(),
        )),
        keyed => Err(unguarded(&keyed)),
    }
}

/// The endpoints that need a key, with the caller [`needs`] authenticated.
async fn keyed(
    state: &AppState,
    context: &RequestContext,
    caller: &Principal,
    endpoint: Endpoint,
    request: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    match endpoint {
        Endpoint::ChatCompletions => chat::completions(state, context, caller, request).await,
        Endpoint::Embeddings => embeddings::create(state, context, caller, request).await,
        Endpoint::Messages => messages::create(state, context, caller, request).await,
        Endpoint::MessagesCountTokens => {
            messages::count_tokens(state, context, caller, request).await
        }
        Endpoint::Responses => responses::create(state, context, caller, request).await,
        Endpoint::GetResponse(id) => stored_responses::retrieve(state, caller, request, &id).await,
        Endpoint::DeleteResponse(id) => stored_responses::delete(state, caller, &id).await,
        Endpoint::ListResponseInputItems(id) => {
            stored_responses::input_items(state, caller, request, &id).await
        }
        Endpoint::ListModels => Ok(models::list(state, caller)),
        Endpoint::Credits => credits::balance(state, caller, request).await,
        Endpoint::CreditsAdd => credits::add(state, caller, request).await,
        Endpoint::CreditsTransactions => credits::transactions(state, caller, request).await,
        Endpoint::CreditsPackages => Ok(billing::packages(state)),
        Endpoint::CreditsPurchase => billing::purchase(state, caller, request).await,
        Endpoint::Usage => usage::usage(state, caller, request).await,
        Endpoint::ListRequests => requests::list(state, caller, request).await,
        Endpoint::GetRequest(id) => requests::get(state, caller, &id).await,
        Endpoint::AdminListTiers => Ok(admin::list_tiers(state)),
        Endpoint::AdminListUsers => admin::list_users(state, caller, request).await,
        Endpoint::AdminCreateUser => admin::create_user(state, caller, request).await,
        Endpoint::AdminGetUser(user) => admin::get_user(state, &user).await,
        Endpoint::AdminUpdateUser(user) => admin::update_user(state, caller, request, &user).await,
        Endpoint::AdminListKeys(user) => admin::list_keys(state, &user).await,
        Endpoint::AdminIssueKey(user) => admin::issue_key(state, caller, &user).await,
        Endpoint::ListKeys => keys::list(state, caller, request).await,
        Endpoint::CreateKey => keys::create(state, caller, request).await,
        Endpoint::UpdateKey(key_id) => keys::update(state, caller, request, &key_id).await,
        Endpoint::RevokeKey(key_id) => keys::revoke(state, caller, &key_id).await,
        Endpoint::AdminListTeams => teams::list(state).await,
        Endpoint::AdminCreateTeam => teams::create(state, caller, request).await,
        Endpoint::AdminAddTeamMember(team_id) => {
            teams::add_member(state, caller, request, &team_id).await
        }
        Endpoint::AdminRemoveTeamMember { team_id, user_id } => {
            teams::remove_member(state, caller, &team_id, &user_id).await
        }
        Endpoint::AdminRevokeKey { user_id, key_id } => {
            admin::revoke_key(state, caller, &user_id, &key_id).await
        }
        Endpoint::ListProviders => provider_keys::list(state, caller).await,
        Endpoint::PutProviderKey(name) => provider_keys::put(state, caller, request, &name).await,
        Endpoint::DeleteProviderKey(name) => provider_keys::delete(state, caller, &name).await,
        open => Err(unguarded(&open)),
    }
}

/// [`needs`] and the two dispatch tables disagree: a bug, answered as a 500 rather than served
/// without the check.
fn unguarded(endpoint: &Endpoint) -> Error {
    tracing::error!(
        ?endpoint,
        "an endpoint is dispatched under the wrong access"
    );
    Error::internal("An internal error occurred.")
}

/// Whether the client of `path` is an Anthropic SDK (the Messages endpoints and anything else
/// under Anthropic's paths): its errors, the router's own included, are in Anthropic's shape.
fn speaks_anthropic(path: &str) -> bool {
    path.starts_with("/v1/messages") || path.starts_with("/anthropic/")
}

fn miss_response(miss: &Miss, method: &Method, path: &str) -> Response<Body> {
    let error = miss.to_error(method, path);
    let anthropic = speaks_anthropic(path);
    match miss {
        Miss::NotFound if anthropic => messages::error_response(&error),
        Miss::NotFound => error_response(&error),
        Miss::MethodNotAllowed { allowed } => {
            let mut response = if anthropic {
                let mut response = messages::error_response(&error);
                *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                response
            } else {
                error_with_status(&error, StatusCode::METHOD_NOT_ALLOWED)
            };
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
        .map_or_else(|| new_request_id(rand::random()), Arc::from)
}

/// `req-` and `n` as 32 lowercase hex digits, written directly (through `format!` it cost
/// about 1,200 instructions and a second allocation on every request without an id).
fn new_request_id(n: u128) -> Arc<str> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut id = *b"req-00000000000000000000000000000000";
    for (i, digit) in id[4..].iter_mut().enumerate() {
        *digit = DIGITS[usize::from((n >> (124 - 4 * i)) as u8 & 15)];
    }
    // Only ASCII was written.
    Arc::from(std::str::from_utf8(&id).unwrap_or("req-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_request_id_is_req_and_32_hex_digits() {
        for n in [0, 1, 0xabc, u128::MAX, rand::random()] {
            assert_eq!(&*new_request_id(n), format!("req-{n:032x}"));
        }
    }

    #[test]
    fn only_probes_metrics_the_ui_and_stripe_are_open() {
        let open = [
            Endpoint::Health,
            Endpoint::Ready,
            Endpoint::Metrics,
            Endpoint::StripeWebhook,
            Endpoint::Ui,
        ];
        for endpoint in &open {
            assert_eq!(needs(endpoint), Needs::Nothing, "{endpoint:?}");
        }
        for (endpoint, permission) in [
            (Endpoint::ChatCompletions, Permission::Execute),
            (Endpoint::ListModels, Permission::Read),
            (Endpoint::CreditsAdd, Permission::Configure),
            (Endpoint::AdminListTiers, Permission::Configure),
            (Endpoint::AdminGetUser("ann".into()), Permission::Configure),
            (
                Endpoint::PutProviderKey("openai".into()),
                Permission::ManageProviders,
            ),
        ] {
            assert_eq!(needs(&endpoint), Needs::Key(permission), "{endpoint:?}");
        }
    }

    #[test]
    fn every_endpoint_that_calls_a_model_is_traced() {
        for (method, path) in crate::api::router::ROUTES {
            let method: Method = method.parse().unwrap();
            let endpoint = route(&method, &path.replace('{', "x").replace('}', "")).unwrap();
            // Execute endpoints that change the caller's own things instead of calling a model.
            let manages = matches!(
                endpoint,
                Endpoint::CreditsPurchase
                    | Endpoint::DeleteResponse(_)
                    | Endpoint::CreateKey
                    | Endpoint::UpdateKey(_)
                    | Endpoint::RevokeKey(_)
            );
            let calls_a_model = needs(&endpoint) == Needs::Key(Permission::Execute) && !manages;
            assert_eq!(
                gen_ai_operation(&endpoint).is_some(),
                calls_a_model,
                "{endpoint:?}"
            );
        }
    }

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
