//! `POST /v1/embeddings`: OpenAI embeddings, metered like chat (hold, charge, usage record)
//! and answered with the same `x-llmgate-*` headers.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use llmgate_core::{Embedded, EmbeddingRequest, Error};

use super::body::read_limited;
use super::chat::{cost_headers, parse, power_level_header, privacy_header, route_headers};
use super::response::{Body, json};
use super::service::RequestContext;
use crate::auth::Permission;
use crate::state::AppState;

pub(crate) async fn create(
    state: &AppState,
    context: &RequestContext,
    request: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let principal = state.auth.authenticate(request.headers()).await?;
    principal.require(Permission::Execute)?;
    let power_level = power_level_header(request.headers())?;
    let privacy = privacy_header(request.headers())?;
    let body = read_limited(request, &state.config.server).await?;
    let mut embedding: EmbeddingRequest = parse(&body)?;
    let span = tracing::Span::current();
    span.record("model", embedding.model.as_str());
    if power_level.is_some() {
        embedding.power_level = power_level;
    }
    let mut caller = principal.caller.with_request_id(context.request_id.clone());
    if let Some(privacy) = privacy {
        caller = caller.with_privacy(privacy);
    }
    let Embedded {
        response: answer,
        route,
        cost_micros,
        cost_breakdown,
    } = state.gateway.embed(&caller, embedding).await?;
    span.record("model", route.model.as_str());
    span.record("provider", route.provider.as_str());
    span.record("attempts", route.attempts);
    span.record("key_source", route.key_source.as_str());
    span.record("cost_micros", cost_micros);
    let mut response = json(StatusCode::OK, &answer);
    route_headers(&mut response, &route);
    cost_headers(&mut response, cost_micros, &cost_breakdown);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_without_input_names_the_field() {
        let error = parse::<EmbeddingRequest>(br#"{"model": "m"}"#).unwrap_err();
        assert_eq!((error.status(), error.param()), (400, Some("input")));
        let error = parse::<EmbeddingRequest>(br#"{"model": "m", "input": {"a": 1}}"#).unwrap_err();
        assert_eq!(error.status(), 400);
    }
}
