//! `POST /v1/responses`: OpenAI's Responses API as an ingress codec over the chat pipeline.
//!
//! A request is decoded into a core chat request ([`request`]), runs the same pipeline as chat
//! completions (auth, holds and settles, routing, usage, `x-llmgate-*` headers), and the core
//! answer is encoded back: whole ([`response`]) or as the Responses event stream ([`stream`]).
//! Errors before the first byte are OpenAI's usual error bodies; after it, `response.failed`.
//!
//! The client's body rides along on the core request ([`NativeBody`]): when the pipeline picks
//! an `openai` provider configured with `responses_api: true`, that provider sends it to the
//! upstream's `/responses` as it came (model id and output cap written in) and hands back the
//! upstream's bytes, which are forwarded as they are, whole or event by event.
//!
//! What the answer needs from the request (the response id, the settings echoed back, the
//! namespace functions to name back, the dropped hosted tools) travels in an [`Exchange`].
//! Stored responses ([`keep`]): `previous_response_id` puts the caller's earlier conversation
//! before this request's input, and the answer is kept unless `store` is false.

mod exchange;
mod keep;
mod request;
mod response;
mod stream;
mod wire;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use llmgate_core::Error;
use llmgate_core::chat::{ChatRequest, ChatResponse, NativeBody, WireFormat};
use llmgate_core::gateway::CompletionStream;
use serde_json::Value;

use super::body::decode_json;
use super::chat::serve;
use super::codec::Codec;
use super::context::RequestContext;
use super::response::{Body, json, set_header};
use crate::auth::Principal;
use crate::response_body::full;
use crate::state::AppState;
use exchange::Exchange;
use keep::Keeper;

/// The header naming the tools dropped because the upstream cannot run them.
const DROPPED_TOOLS_HEADER: &str = "x-llmgate-dropped-tools";

/// The Responses protocol, for one request.
struct Responses {
    /// Set by `decode`.
    exchange: OnceLock<Arc<Exchange>>,
    keeper: Keeper,
    /// The providers that get the body as sent (`responses_api: true`): nothing is dropped on
    /// the way to them.
    passing_through: Vec<String>,
}

impl Responses {
    fn new(keeper: Keeper, passing_through: Vec<String>) -> Responses {
        Responses {
            exchange: OnceLock::new(),
            keeper,
            passing_through,
        }
    }

    fn exchange(&self) -> Arc<Exchange> {
        self.exchange.get().cloned().unwrap_or_default()
    }

    /// A Responses upstream's whole answer, kept, then sent as it was written.
    async fn passed_through(&self, exchange: &Exchange, upstream: &Bytes) -> Response<Body> {
        if let Ok(value) = serde_json::from_slice::<Value>(upstream) {
            self.keeper.keep(exchange, &value).await;
        }
        let mut response = Response::new(full(upstream.clone()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }

    /// The headers of an answer that was translated (`x-llmgate-dropped-tools`).
    fn headers(&self, response: &mut Response<Body>) {
        let exchange = self.exchange();
        if !exchange.dropped.is_empty() {
            set_header(response, DROPPED_TOOLS_HEADER, &exchange.dropped.join(", "));
        }
    }
}

impl Codec for Responses {
    fn decode(&self, body: &Bytes, _: Vec<(String, String)>) -> Result<ChatRequest, Error> {
        // Typed first, so that a bad field is named by its path; the value keeps the settings
        // echoed back as the client wrote them.
        let typed = decode_json(body)?;
        let value: Value = decode_json(body)?;
        let mut exchange = Exchange::new("");
        let mut chat = request::to_chat(typed, &value, &mut exchange)?;
        chat.native = Some(NativeBody {
            format: WireFormat::OpenAiResponses,
            body: body.clone(),
            headers: Vec::new(),
        });
        if !exchange.dropped.is_empty() {
            tracing::info!(dropped_tools = %exchange.dropped.join(", "), "hosted tools dropped");
        }
        let _ = self.exchange.set(Arc::new(exchange));
        Ok(chat)
    }

    async fn prepare(&self, chat: &mut ChatRequest) -> Result<(), Error> {
        let exchange = self.exchange();
        let Some(previous) = &exchange.previous_response_id else {
            return Ok(());
        };
        let history = self.keeper.conversation(previous).await?;
        request::prepend_history(chat, &exchange, &history)
    }

    async fn whole(&self, answer: &ChatResponse) -> Response<Body> {
        let exchange = self.exchange();
        if let Some(upstream) = answer.wire.get_as(WireFormat::OpenAiResponses) {
            return self.passed_through(&exchange, upstream).await;
        }
        let answer = response::from_chat(answer, &exchange);
        if let Ok(value) = serde_json::to_value(&answer) {
            self.keeper.keep(&exchange, &value).await;
        }
        let mut response = json(StatusCode::OK, &answer);
        self.headers(&mut response);
        response
    }

    fn stream(&self, stream: CompletionStream) -> Response<Body> {
        let (exchange, keeper) = (self.exchange(), self.keeper.clone());
        let kept = exchange.clone();
        let after: stream::AfterDone =
            Box::new(move |response| Box::pin(async move { keeper.keep(&kept, &response).await }));
        let passed_through = self.passing_through.contains(&stream.route().provider);
        let mut response = stream::response(stream, exchange, Some(after));
        if !passed_through {
            self.headers(&mut response);
        }
        response
    }
}

/// `POST /v1/responses`.
pub(crate) async fn create(
    state: &AppState,
    context: &RequestContext,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let keeper = Keeper::new(
        state.storage.responses.clone(),
        principal.caller.user_id.clone(),
    );
    let passing_through = state
        .config
        .providers
        .iter()
        .filter(|provider| provider.responses_api)
        .map(|provider| provider.name.clone())
        .collect();
    let codec = Responses::new(keeper, passing_through);
    serve(state, context, principal, request, &codec).await
}
