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
use llmgate_core::Error;
use llmgate_core::chat::{ChatRequest, ChatResponse};
use llmgate_core::chat::{NativeBody, WireFormat};
use llmgate_core::gateway::CompletionStream;

use super::body::decode_json;
use super::chat::serve;
use super::codec::Codec;
use super::context::RequestContext;
use super::response::{Body, json};
use crate::auth::Principal;
use crate::response_body::full;
use crate::state::AppState;

/// The Messages protocol.
struct Messages;

impl Codec for Messages {
    fn passed_on(&self, headers: &HeaderMap) -> Vec<(String, String)> {
        request::passed_on(headers)
    }

    fn decode(&self, body: &Bytes, passed_on: Vec<(String, String)>) -> Result<ChatRequest, Error> {
        let mut chat = request::to_chat(decode_json(body)?);
        chat.native = Some(NativeBody {
            format: WireFormat::AnthropicMessages,
            body: body.clone(),
            headers: passed_on,
        });
        Ok(chat)
    }

    async fn whole(&self, answer: &ChatResponse) -> Response<Body> {
        match answer.wire.get_as(WireFormat::AnthropicMessages) {
            Some(upstream) => {
                let mut response = Response::new(full(upstream.clone()));
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

/// `POST /v1/messages`; dispatch answers its errors in Anthropic's shape ([`error_response`]).
pub(crate) async fn create(
    state: &AppState,
    context: &RequestContext,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    serve(state, context, principal, request, &Messages).await
}

/// `POST /v1/messages/count_tokens`; errors as for [`create`].
pub(crate) async fn count_tokens(
    state: &AppState,
    context: &RequestContext,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    count::count(state, context, principal, request).await
}

/// An error in Anthropic's shape, with the gateway's status and `retry-after`.
pub(crate) fn error_response(error: &Error) -> Response<Body> {
    errors::response(error)
}
