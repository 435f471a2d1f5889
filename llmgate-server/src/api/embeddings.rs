//! `POST /v1/embeddings`: OpenAI embeddings, metered like chat (hold, charge, usage record)
//! and answered with the same `x-llmgate-*` headers.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use llmgate_core::{Error, chat::Usage, embeddings::EmbeddingRequest, gateway::Embedded};

use super::body::{decode_json, read_limited};
use super::chat::{
    cost_headers, power_level_header, privacy_header, request_caller, route_headers,
};
use super::context::RequestContext;
use super::response::{Body, json};
use crate::auth::Principal;
use crate::state::AppState;

pub(crate) async fn create(
    state: &AppState,
    context: &RequestContext,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let power_level = power_level_header(request.headers())?;
    let privacy = privacy_header(request.headers())?;
    let body = read_limited(request, &state.config.server).await?;
    let mut embedding: EmbeddingRequest = decode_json(&body)?;
    context.record(|recording| recording.asked(&embedding.model, false, &body));
    let span = tracing::Span::current();
    span.record("model", embedding.model.as_str());
    context.trace.requested(&embedding.model, false);
    if power_level.is_some() {
        embedding.power_level = power_level;
    }
    let caller = request_caller(context, principal, privacy);
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
    context.record(|recording| {
        recording.routed(&route);
        let usage = answer.usage.map(|u| Usage::new(u.prompt_tokens, 0));
        recording.billed(usage.as_ref(), &cost_breakdown);
    });
    context.trace.routed(&route);
    if let Some(usage) = &answer.usage {
        context
            .trace
            .charged(usage.prompt_tokens, None, cost_micros);
    }
    let mut response = json(StatusCode::OK, &answer);
    route_headers(&mut response, &route);
    cost_headers(&mut response, cost_micros, &cost_breakdown);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::body::decode_json;

    #[test]
    fn a_body_without_input_names_the_field() {
        let error = decode_json::<EmbeddingRequest>(br#"{"model": "m"}"#).unwrap_err();
        assert_eq!((error.status(), error.param()), (400, Some("input")));
        let error =
            decode_json::<EmbeddingRequest>(br#"{"model": "m", "input": {"a": 1}}"#).unwrap_err();
        assert_eq!(error.status(), 400);
    }
}
