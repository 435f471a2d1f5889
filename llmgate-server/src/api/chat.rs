//! `POST /v1/chat/completions`: OpenAI chat completions, whole or streamed.
//!
//! Contract: docs/http-api.md#post-v1chatcompletions

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use llmgate_core::{
    Caller, Error,
    catalog::Privacy,
    chat::ChatRequest,
    gateway::{Completion, RouteInfo},
    power::PowerLevel,
    pricing::CostBreakdown,
};

use super::body::{decode_json, read_limited};
use super::codec::Codec;
use super::context::RequestContext;
use super::response::{Body, json, set_header};
use super::sse;
use crate::auth::Principal;
use crate::state::AppState;
use crate::telemetry::ChatWatch;

/// The header that overrides the body's `power_level`.
const POWER_LEVEL_HEADER: &str = "x-llmgate-power-level";
/// The header that asks for the least privacy a deployment must offer (`high`: local only).
/// It lives on the caller, never in the body, so it is never forwarded upstream.
const PRIVACY_HEADER: &str = "x-llmgate-privacy";
/// What each token class cost (a whole answer; a stream's last chunk carries the same).
const COST_BREAKDOWN_HEADER: HeaderName = HeaderName::from_static("x-llmgate-cost-breakdown");
const COST_MICROS_HEADER: HeaderName = HeaderName::from_static("x-llmgate-cost-micros");
const PROVIDER_HEADER: HeaderName = HeaderName::from_static("x-llmgate-provider");
const MODEL_HEADER: HeaderName = HeaderName::from_static("x-llmgate-model");
const ATTEMPTS_HEADER: HeaderName = HeaderName::from_static("x-llmgate-attempts");
const KEY_SOURCE_HEADER: HeaderName = HeaderName::from_static("x-llmgate-key-source");
const ROUTED_POWER_LEVEL_HEADER: HeaderName = HeaderName::from_static(POWER_LEVEL_HEADER);

/// OpenAI's chat completions: the core types are already its shape.
struct ChatCompletions;

impl Codec for ChatCompletions {
    fn decode(&self, body: &bytes::Bytes, _: Vec<(String, String)>) -> Result<ChatRequest, Error> {
        decode_json(body)
    }

    async fn whole(&self, answer: &llmgate_core::chat::ChatResponse) -> Response<Body> {
        json(StatusCode::OK, answer)
    }

    fn stream(&self, stream: llmgate_core::gateway::CompletionStream) -> Response<Body> {
        sse::response(stream)
    }
}

pub(crate) async fn completions(
    state: &AppState,
    context: &RequestContext,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    serve(state, context, principal, request, &ChatCompletions).await
}

/// The chat pipeline for a request in `codec`'s protocol.
pub(super) async fn serve(
    state: &AppState,
    context: &RequestContext,
    principal: &Principal,
    request: Request<Incoming>,
    codec: &impl Codec,
) -> Result<Response<Body>, Error> {
    let mut watch = ChatWatch::start();
    match answer(state, context, principal, request, codec, &mut watch).await {
        Ok((response, route)) => {
            context.trace.routed(&route);
            let span = tracing::Span::current();
            span.record("model", route.model.as_str());
            span.record("provider", route.provider.as_str());
            span.record("attempts", route.attempts);
            span.record("key_source", route.key_source.as_str());
            Ok(watch.answered(state.gateway.catalog(), &route, response))
        }
        Err(error) => {
            if let Some(model) = watch.requested() {
                tracing::Span::current().record("model", model);
            }
            watch.failed(&error);
            Err(error)
        }
    }
}

/// The request answered, with how it was routed.
async fn answer(
    state: &AppState,
    context: &RequestContext,
    principal: &Principal,
    request: Request<Incoming>,
    codec: &impl Codec,
    watch: &mut ChatWatch,
) -> Result<(Response<Body>, RouteInfo), Error> {
    let power_level = power_level_header(request.headers())?;
    let privacy = privacy_header(request.headers())?;
    let passed_on = codec.passed_on(request.headers());
    let body = read_limited(request, &state.config.server).await?;
    let mut chat = codec.decode(&body, passed_on)?;
    codec.prepare(&mut chat).await?;
    watch.parsed(state.gateway.catalog(), &chat.model, chat.is_stream());
    context.record(|recording| recording.asked(&chat.model, chat.is_stream(), &body));
    context.trace.requested(&chat.model, chat.is_stream());
    if power_level.is_some() {
        chat.power_level = power_level;
    }
    let caller = request_caller(context, principal, privacy);

    if chat.is_stream() {
        let mut stream = state.gateway.chat_stream(&caller, chat).await?;
        if let Some(recording) = &context.recording {
            recording.routed(stream.route());
            stream = recording.watch(stream);
        }
        let route = stream.route().clone();
        let mut response = codec.stream(context.trace.watch_stream(stream));
        route_headers(&mut response, &route);
        Ok((response, route))
    } else {
        let Completion {
            response: answer,
            route,
            cost_micros,
            cost_breakdown,
        } = state.gateway.chat(&caller, chat).await?;
        tracing::Span::current().record("cost_micros", cost_micros);
        context.record(|recording| {
            recording.routed(&route);
            recording.billed(answer.usage.as_ref(), &cost_breakdown);
            recording.answer(|| {
                let first = answer.choices.first();
                first.map(|c| c.message.text_content()).unwrap_or_default()
            });
        });
        if let Some(usage) = &answer.usage {
            let output = Some(usage.completion_tokens);
            context
                .trace
                .charged(usage.prompt_tokens, output, cost_micros);
        }
        let mut response = codec.whole(&answer).await;
        route_headers(&mut response, &route);
        cost_headers(&mut response, cost_micros, &cost_breakdown);
        Ok((response, route))
    }
}

/// The caller a request runs as: the key's, with the request's id and any privacy it asked
/// for, leaving a failure's upstream calls in the request's log row.
pub(super) fn request_caller(
    context: &RequestContext,
    principal: &Principal,
    privacy: Option<Privacy>,
) -> Caller {
    let mut caller = principal
        .caller
        .clone()
        .with_request_id(context.request_id.clone());
    if let Some(recording) = &context.recording {
        caller = recording.caller(caller);
    }
    match privacy {
        Some(privacy) => caller.with_privacy(privacy),
        None => caller,
    }
}

pub(super) fn power_level_header(headers: &HeaderMap) -> Result<Option<PowerLevel>, Error> {
    let Some(value) = headers.get(POWER_LEVEL_HEADER) else {
        return Ok(None);
    };
    let bad = |message: String| {
        Error::invalid_request(message)
            .with_param(POWER_LEVEL_HEADER)
            .with_code("invalid_power_level")
    };
    let text = value
        .to_str()
        .map_err(|_| bad(format!("The {POWER_LEVEL_HEADER} header is not text.")))?;
    text.parse::<PowerLevel>()
        .map(Some)
        .map_err(|message| bad(format!("The {POWER_LEVEL_HEADER} header: {message}.")))
}

pub(super) fn privacy_header(headers: &HeaderMap) -> Result<Option<Privacy>, Error> {
    let Some(value) = headers.get(PRIVACY_HEADER) else {
        return Ok(None);
    };
    let bad = || {
        Error::invalid_request(format!(
            "The {PRIVACY_HEADER} header must be `low`, `medium` or `high`."
        ))
        .with_param(PRIVACY_HEADER)
        .with_code("invalid_privacy")
    };
    match value.to_str().map_err(|_| bad())?.trim() {
        text if text.eq_ignore_ascii_case("low") => Ok(Some(Privacy::Low)),
        text if text.eq_ignore_ascii_case("medium") => Ok(Some(Privacy::Medium)),
        text if text.eq_ignore_ascii_case("high") => Ok(Some(Privacy::High)),
        _ => Err(bad()),
    }
}

/// The charge of a whole answer and what each token class cost.
pub(super) fn cost_headers(
    response: &mut Response<Body>,
    cost_micros: i64,
    breakdown: &CostBreakdown,
) {
    let cost = HeaderValue::from(cost_micros);
    response.headers_mut().insert(COST_MICROS_HEADER, cost);
    // Compact JSON of plain ASCII (keys, integers, decimal strings): a valid header value.
    set_header(response, COST_BREAKDOWN_HEADER, &breakdown.to_json());
}

pub(super) fn route_headers(response: &mut Response<Body>, route: &RouteInfo) {
    set_header(response, PROVIDER_HEADER, &route.provider);
    set_header(response, MODEL_HEADER, &route.model);
    // Numbers and the gateway's own constants need no check and no copy of their own.
    let headers = response.headers_mut();
    headers.insert(ATTEMPTS_HEADER, HeaderValue::from(route.attempts));
    let key_source = HeaderValue::from_static(route.key_source.as_str());
    headers.insert(KEY_SOURCE_HEADER, key_source);
    let power_level = HeaderValue::from_static(route.power_level.as_str());
    headers.insert(ROUTED_POWER_LEVEL_HEADER, power_level);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8]) -> Result<ChatRequest, Error> {
        super::super::body::decode_json(body)
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    http::HeaderName::from_static(name),
                    http::HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn privacy_header_is_optional_and_checked() {
        assert_eq!(privacy_header(&HeaderMap::new()).unwrap(), None);
        assert_eq!(
            privacy_header(&headers(&[(PRIVACY_HEADER, "high")])).unwrap(),
            Some(Privacy::High)
        );
        assert_eq!(
            privacy_header(&headers(&[(PRIVACY_HEADER, " Medium ")])).unwrap(),
            Some(Privacy::Medium)
        );
        let error = privacy_header(&headers(&[(PRIVACY_HEADER, "secret")])).unwrap_err();
        assert_eq!((error.status(), error.param()), (400, Some(PRIVACY_HEADER)));
    }

    #[test]
    fn wrong_types_name_the_field() {
        let error = parse(br#"{"model": 5, "messages": []}"#).unwrap_err();
        assert_eq!(error.status(), 400);
        assert_eq!(error.param(), Some("model"));
        assert!(
            error.message().contains("invalid type"),
            "{}",
            error.message()
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let error = parse(br#"{"model": "m"}"#).unwrap_err();
        assert_eq!(error.param(), Some("messages"));
    }

    #[test]
    fn nested_errors_carry_their_path() {
        let error = parse(br#"{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}"#)
            .unwrap_err();
        assert_eq!(
            error.param(),
            Some("messages[0].role"),
            "{}",
            error.message()
        );
    }

    #[test]
    fn malformed_json_and_trailing_garbage_are_refused() {
        assert_eq!(parse(b"{nope").unwrap_err().status(), 400);
        assert_eq!(
            parse(br#"{"model":"m","messages":[{"role":"user","content":"x"}]} x"#)
                .unwrap_err()
                .status(),
            400
        );
    }
}
