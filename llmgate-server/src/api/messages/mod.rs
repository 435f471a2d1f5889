//! `POST /v1/messages` (and `/anthropic/v1/messages`): Anthropic's Messages API as an ingress
//! codec over the chat pipeline.
//!
//! A request is decoded into a core chat request ([`request`]), runs the same pipeline as chat
//! completions (auth, holds and settles, routing, usage, `x-llmgate-*` headers), and the core
//! answer is encoded back: whole ([`response`]) or as the Messages event stream ([`stream`]).
//! Every error, before or during a stream, is in Anthropic's shape ([`errors`]).

mod errors;
mod request;
mod response;
mod stream;
mod wire;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use llmgate_core::{ChatRequest, ChatResponse, CompletionStream, Error};

use super::chat::{parse_json, serve};
use super::codec::Codec;
use super::response::{Body, json};
use super::service::RequestContext;
use crate::state::AppState;

/// The Messages protocol.
struct Messages;

impl Codec for Messages {
    fn decode(&self, body: &[u8]) -> Result<ChatRequest, Error> {
        parse_json(body).map(request::to_chat)
    }

    fn whole(&self, answer: &ChatResponse) -> Response<Body> {
        json(StatusCode::OK, &response::from_chat(answer))
    }

    fn stream(&self, stream: CompletionStream) -> Response<Body> {
        stream::response(stream)
    }
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

fn failed(context: &RequestContext, error: &Error) -> Response<Body> {
    if error.status() >= 500 {
        tracing::warn!(request_id = %context.request_id, %error, "request failed");
    }
    errors::response(error)
}
