//! A provider of your own, plugged into a `Gateway` through the `Provider` trait alone: here a
//! "model" that answers in upper case, whole or streamed word by word, and reports no token
//! counts for streams, so the gateway estimates them.
//!
//! Run: `cargo run -p llmgate-examples --example custom_provider`

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use llmgate_core::{
    Caller, Error, Gateway, Provider, Result,
    catalog::Deployment,
    chat::{ChatChunk, ChatRequest, ChatResponse, FinishReason, Message, Role, Usage},
    pricing::ModelPrice,
    provider::{ChunkStream, ProviderCall},
};

/// Shouts the last user message back. A real adapter would translate `call.request` to its
/// upstream's wire format here and send it with `call.api_key`.
#[derive(Debug)]
struct Shouter;

impl Shouter {
    fn answer(request: &ChatRequest) -> Result<String> {
        let last = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .ok_or_else(|| Error::invalid_request("Say something first."))?;
        Ok(last.text_content().to_uppercase())
    }
}

#[async_trait]
impl Provider for Shouter {
    fn name(&self) -> &str {
        "shouter"
    }

    fn requires_key(&self) -> bool {
        false
    }

    async fn chat(&self, call: ProviderCall<'_>) -> Result<ChatResponse> {
        let text = Self::answer(call.request)?;
        let words = text.split_whitespace().count() as u64;
        // Report real counts when the upstream gives them; the gateway bills these.
        Ok(ChatResponse::assistant(&call.request.model, text)
            .with_id("shout-1")
            .with_usage(Usage::new(5, words)))
    }

    async fn chat_stream(&self, call: ProviderCall<'_>) -> Result<ChunkStream> {
        let text = Self::answer(call.request)?;
        let model = call.request.model.as_str();
        let mut chunks = vec![ChatChunk::start("shout-2", model, 0)];
        for word in text.split_inclusive(' ') {
            chunks.push(ChatChunk::text("shout-2", model, 0, word));
        }
        chunks.push(ChatChunk::finish("shout-2", model, 0, FinishReason::Stop));
        // No usage-only chunk at the end: the gateway will estimate and mark it `estimated`.
        Ok(futures::stream::iter(chunks.into_iter().map(Ok)).boxed())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let gateway = Gateway::builder()
        .provider(Arc::new(Shouter))
        .model(Deployment::new("shout", "shouter", "v1").with_price(ModelPrice::default()))
        .build();
    let request = || ChatRequest::new("shout", vec![Message::user("hello from my own provider")]);

    let whole = gateway.chat(&Caller::admin(), request()).await?;
    println!(
        "whole:    {} ({} via {})",
        whole.response.choices[0].message.text_content(),
        whole.route.model,
        whole.route.provider
    );

    let mut stream = gateway.chat_stream(&Caller::admin(), request()).await?;
    print!("streamed: ");
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        for choice in &chunk.choices {
            print!("{}", choice.delta.content.as_deref().unwrap_or_default());
        }
        if let Some(usage) = &chunk.usage {
            println!(
                "\n          {} prompt + {} completion tokens (estimated: {})",
                usage.prompt_tokens, usage.completion_tokens, usage.estimated
            );
        }
    }
    Ok(())
}
