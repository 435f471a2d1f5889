//! `POST /v1/messages` (and `/anthropic/v1/messages`): Anthropic's Messages API as an ingress
//! codec over the chat pipeline.
//!
//! A request is decoded into a core chat request ([`request`]), runs the same pipeline as chat
//! completions (auth, holds and settles, routing, usage, `x-llmgate-*` headers), and the core
//! answer is encoded back: whole ([`response`]) or as the Messages event stream ([`stream`]).
//! Every error, before or during a stream, is in Anthropic's shape ([`errors`]).
//!
//! The client's body rides along on the core request ([`NativeBody`]): when the pipeline picks
//! an `anthropic` provider, that provider sends it upstream as it came (the upstream model id
//! and output cap written in) and hands back the upstream's bytes, which are forwarded as they
//! are — whole, or event by event — while the usage is read on the way for the charge.

mod count;
mod errors;
mod request;
mod response;
mod stream;
mod wire;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use llmgate_core::chat::{NativeBody, WireFormat};
use llmgate_core::{ChatRequest, ChatResponse, CompletionStream, Error};
use llmgate_providers::anthropic::NATIVE_ANSWER_KEY;
use serde_json::Value;

use super::chat::{parse_json, serve};
use super::codec::Codec;
use super::response::{Body, full, json};
use super::service::RequestContext;
use crate::state::AppState;

/// The request headers an Anthropic upstream gets as the client sent them.
const PASSED_ON: [&str; 2] = ["anthropic-version", "anthropic-beta"];

/// The Messages protocol.
struct Messages;

impl Codec for Messages {
    fn passed_on(&self, headers: &HeaderMap) -> Vec<(String, String)> {
        PASSED_ON
            .iter()
            .filter_map(|name| {
                let value = headers.get(*name)?.to_str().ok()?;
                Some(((*name).to_owned(), value.to_owned()))
            })
            .collect()
    }

    fn decode(&self, body: &Bytes, passed_on: Vec<(String, String)>) -> Result<ChatRequest, Error> {
        let mut chat = request::to_chat(parse_json(body)?);
        chat.native = Some(NativeBody {
            format: WireFormat::AnthropicMessages,
            body: body.clone(),
            headers: passed_on,
        });
        Ok(chat)
    }

    fn whole(&self, answer: &ChatResponse) -> Response<Body> {
        match answer.extra.get(NATIVE_ANSWER_KEY).and_then(Value::as_str) {
            Some(upstream) => {
                let mut response = Response::new(full(upstream.to_owned()));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            None => json(StatusCode::OK, &response::from_chat(answer)),
        }
    }

    fn stream(&self, stream: CompletionStream) -> Response<Body> {
        stream::response(stream)
    }
}

/// The stream encoder's body, for the criterion benches.
#[cfg(feature = "bench-internals")]
pub(crate) fn bench_body(stream: CompletionStream) -> Body {
    stream::response(stream).into_body()
}

/// The request decoder, for the criterion benches.
#[cfg(feature = "bench-internals")]
pub(crate) fn bench_request(body: &Bytes) -> Result<ChatRequest, Error> {
    Messages.decode(body, Vec::new())
}

/// `POST /v1/messages`. Errors are answered here, in Anthropic's shape.
pub(crate) async fn create(
    state: &AppState,
    context: &RequestContext,
    request: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    Ok(serve(state, context, request, &Messages)
        .await
        .unwrap_or_else(|error| failed(context, &error)))
}

/// `POST /v1/messages/count_tokens`. Errors are answered here, in Anthropic's shape.
pub(crate) async fn count_tokens(
    state: &AppState,
    context: &RequestContext,
    request: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    Ok(count::count(state, context, request)
        .await
        .unwrap_or_else(|error| failed(context, &error)))
}

fn failed(context: &RequestContext, error: &Error) -> Response<Body> {
    if error.status() >= 500 {
        tracing::warn!(request_id = %context.request_id, %error, "request failed");
    }
    errors::response(error)
}
