//! `POST /v1/messages/count_tokens`: how many input tokens a Messages request would be, free
//! of charge (no hold, no ledger entry).
//!
//! The upstream the request would go to first counts when it can (an Anthropic upstream, which
//! gets the client's body with the model id written in). Otherwise the count is the gateway's
//! own, with the tokenizer of `llmgate_providers::tokenizer`, over the prompt's text: system,
//! message text, tool calls (names and inputs), tool results and the tool definitions (names,
//! descriptions, schemas); images and documents are not counted. The model must be one the
//! caller could send the request to: an unknown or refused model is answered as `/v1/messages`
//! would answer it (404, 403).

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use llmgate_core::Error;
use llmgate_core::chat::{ChatRequest, NativeBody, WireFormat};
use llmgate_providers::tokenizer;

use super::request::{custom_tools, passed_on, prompt_messages};
use super::wire::{CountTokensRequest, TokenCount};
use crate::api::body::{decode_json, read_limited};
use crate::api::context::RequestContext;
use crate::api::response::{Body, json};
use crate::auth::Principal;
use crate::state::AppState;

pub(super) async fn count(
    state: &AppState,
    context: &RequestContext,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let headers = passed_on(request.headers());
    let body = read_limited(request, &state.config.server).await?;
    let ask: CountTokensRequest = decode_json(&body)?;
    context.record(|recording| recording.asked(&ask.model, false, &body));
    context.trace.requested(&ask.model, false);
    let mut chat = ChatRequest::new(ask.model, prompt_messages(ask.system, ask.messages));
    chat.tools = ask.tools.and_then(custom_tools);
    chat.native = Some(NativeBody {
        format: WireFormat::AnthropicMessages,
        body,
        headers,
    });
    let caller = principal
        .caller
        .clone()
        .with_request_id(context.request_id.clone());
    // Planned as `/v1/messages` plans it, so it refuses what that would refuse.
    let upstream = state.gateway.count_tokens(&caller, &chat).await?;
    let input_tokens = upstream.unwrap_or_else(|| input_tokens(&chat));
    // Free: the row has the tokens counted and no cost.
    context.record(|recording| {
        let usage = llmgate_core::chat::Usage::new(input_tokens, 0);
        recording.billed(Some(&usage), &Default::default());
    });
    Ok(json(StatusCode::OK, &TokenCount { input_tokens }))
}

/// The tokens of the prompt's text.
fn input_tokens(chat: &ChatRequest) -> u64 {
    let messages = chat.messages.iter().map(|message| {
        let calls: u64 = message
            .tool_calls
            .iter()
            .flatten()
            .map(|call| {
                tokenizer::count_tokens(&call.function.name)
                    + tokenizer::count_tokens(&call.function.arguments)
            })
            .sum();
        tokenizer::count_tokens(&message.text_content()) + calls
    });
    let tools = chat.tools.iter().flatten().map(|tool| {
        let function = &tool.function;
        let schema = function
            .parameters
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        tokenizer::count_tokens(&function.name)
            + tokenizer::count_tokens(function.description.as_deref().unwrap_or_default())
            + tokenizer::count_tokens(&schema)
    });
    messages.chain(tools).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::messages::wire::CountTokensRequest;
    use serde_json::json;

    fn count_of(body: serde_json::Value) -> u64 {
        let ask: CountTokensRequest = serde_json::from_value(body).unwrap();
        let mut chat = ChatRequest::new(ask.model, prompt_messages(ask.system, ask.messages));
        chat.tools = ask.tools.and_then(custom_tools);
        input_tokens(&chat)
    }

    #[test]
    fn every_text_of_the_prompt_counts() {
        let hello = count_of(
            json!({"model": "m", "messages": [{"role": "user", "content": "hello world"}]}),
        );
        assert_eq!(hello, 2);
        let more = count_of(json!({
            "model": "m", "system": "be brief",
            "messages": [
                {"role": "user", "content": "hello world"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "look", "input": {"q": "x"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "found it"}]}
            ],
            "tools": [{"name": "look", "description": "Looks things up", "input_schema": {"type": "object"}}]
        }));
        let parts = [
            "be brief",
            "hello world",
            "look",
            "{\"q\":\"x\"}",
            "found it",
            "look",
            "Looks things up",
            "{\"type\":\"object\"}",
        ];
        let expected: u64 = parts.iter().map(|p| tokenizer::count_tokens(p)).sum();
        assert_eq!(more, expected);
    }
}
