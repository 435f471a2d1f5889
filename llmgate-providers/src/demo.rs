//! The `demo` provider: answers locally by echoing the last user message, so the quickstart
//! works offline and without keys. Its model `demo/echo` is free.

use async_trait::async_trait;
use llmgate_core::{
    Provider, Result,
    chat::{ChatChunk, ChatRequest, ChatResponse, FinishReason, Message, Role, Usage},
    provider::{ChunkStream, ProviderCall},
    tokens,
};

use crate::chunks::replay;

/// The upstream model id of the demo's one model.
pub const DEMO_MODEL: &str = "echo";

/// The id of every demo completion.
const DEMO_ID: &str = "chatcmpl-demo";

/// A provider that needs no network and no key.
#[derive(Debug, Clone)]
pub struct DemoProvider {
    name: String,
}

impl DemoProvider {
    /// A demo provider under this configured name (usually `demo`).
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    fn reply(request: &ChatRequest) -> String {
        let last_user = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(Message::text_content)
            .unwrap_or_default();
        // One "token" per word, so `max_tokens` visibly truncates the echo.
        let cap = request.requested_max_tokens().unwrap_or(u32::MAX) as usize;
        format!("Echo: {last_user}")
            .split_inclusive(' ')
            .take(cap)
            .collect()
    }

    fn usage(request: &ChatRequest, reply: &str) -> Usage {
        Usage::new(
            tokens::estimate_prompt_tokens(request),
            tokens::estimate_text_tokens(reply.len()),
        )
    }
}

#[async_trait]
impl Provider for DemoProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn requires_key(&self) -> bool {
        false
    }

    async fn chat(&self, call: ProviderCall<'_>) -> Result<ChatResponse> {
        let reply = Self::reply(call.request);
        let finish = finish_reason(call.request, &reply);
        let usage = Self::usage(call.request, &reply);
        Ok(ChatResponse::assistant(&call.request.model, reply)
            .with_id(DEMO_ID)
            .with_created(llmgate_core::memory::unix_now() as u64)
            .with_usage(usage)
            .with_finish_reason(finish))
    }

    async fn chat_stream(&self, call: ProviderCall<'_>) -> Result<ChunkStream> {
        let reply = Self::reply(call.request);
        let finish = finish_reason(call.request, &reply);
        let created = llmgate_core::memory::unix_now() as u64;
        let model = call.request.model.as_str();
        let mut chunks = vec![ChatChunk::start(DEMO_ID, model, created)];
        for word in reply.split_inclusive(' ') {
            chunks.push(ChatChunk::text(DEMO_ID, model, created, word));
        }
        chunks.push(ChatChunk::finish(DEMO_ID, model, created, finish));
        chunks.push(
            ChatChunk::empty(DEMO_ID, model, created).with_usage(Self::usage(call.request, &reply)),
        );
        Ok(replay(chunks))
    }
}

fn finish_reason(request: &ChatRequest, reply: &str) -> FinishReason {
    let words = reply.split_inclusive(' ').count();
    match request.requested_max_tokens() {
        Some(cap) if words >= cap as usize && !reply.is_empty() => FinishReason::Length,
        _ => FinishReason::Stop,
    }
}
