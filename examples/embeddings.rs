//! Embeddings in-process through `Gateway::embed`: a provider of your own (here a "model" that
//! maps each text to its letter frequencies) served, held for and charged exactly as a chat
//! completion is. A real adapter would send `call.request` to its upstream with `call.api_key`.
//!
//! Run: `cargo run -p llmgate-examples --example embeddings`

use std::sync::Arc;

use async_trait::async_trait;
use llmgate_core::{
    Caller, Error, Gateway, Provider, Result,
    caller::Tier,
    catalog::{Deployment, ModelMode},
    chat::ChatResponse,
    credits::{Credit, CreditKind},
    embeddings::{EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, EncodingFormat, Vector},
    pricing::{Decimal, ModelPrice},
    provider::{ChunkStream, EmbedCall, ProviderCall},
};

/// Embeds a text as the share of each letter a–z in it.
#[derive(Debug)]
struct LetterCounts;

fn letters(text: &str) -> Vec<f32> {
    let mut counts = [0f32; 26];
    let mut total = 0f32;
    for byte in text.bytes().filter(u8::is_ascii_alphabetic) {
        counts[usize::from(byte.to_ascii_lowercase() - b'a')] += 1.0;
        total += 1.0;
    }
    counts.iter().map(|c| c / total.max(1.0)).collect()
}

#[async_trait]
impl Provider for LetterCounts {
    fn name(&self) -> &str {
        "letters"
    }

    fn requires_key(&self) -> bool {
        false
    }

    async fn chat(&self, _call: ProviderCall<'_>) -> Result<ChatResponse> {
        Err(Error::invalid_request("This provider only embeds."))
    }

    async fn chat_stream(&self, _call: ProviderCall<'_>) -> Result<ChunkStream> {
        Err(Error::invalid_request("This provider only embeds."))
    }

    async fn embed(&self, call: EmbedCall<'_>) -> Result<EmbeddingResponse> {
        let texts = call
            .request
            .input
            .texts()
            .ok_or_else(|| Error::invalid_request("Send texts, not token ids."))?;
        let vectors = texts
            .iter()
            .map(|text| Vector::from_floats(&letters(text)))
            .collect::<Result<Vec<_>>>()?;
        let mut response = EmbeddingResponse::new(&call.request.model, vectors);
        // One token per word: what the gateway charges by.
        let words = texts.iter().map(|t| t.split_whitespace().count() as u64);
        response.usage = Some(EmbeddingUsage::new(words.sum()));
        Ok(response)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    // $0.02 per 1M input tokens, as OpenAI's text-embedding-3-small; no output price.
    let price = ModelPrice::new(Decimal::new(2, 5), Decimal::ZERO);
    let gateway = Gateway::builder()
        .provider(Arc::new(LetterCounts))
        .model(
            Deployment::new("letters", "letters", "letters-v1")
                .with_price(price)
                .with_mode(ModelMode::Embedding),
        )
        .build();

    let alice = Caller::user("alice", Arc::new(Tier::new("starter")));
    gateway
        .credits()
        .credit(Credit {
            user_id: "alice".into(),
            kind: CreditKind::Grant,
            amount_micros: 1_000_000,
            idempotency_key: "welcome:alice".into(),
            reason: "welcome grant".into(),
        })
        .await?;

    let request = EmbeddingRequest::new("letters", vec!["hello world", "embeddings, metered"])
        .with_encoding(EncodingFormat::Float);
    let done = gateway.embed(&alice, request).await?;
    for item in &done.response.data {
        let vector = item.embedding.to_floats()?;
        println!(
            "input {}: {} dimensions, e = {:.2}",
            item.index,
            vector.len(),
            vector[4]
        );
    }
    println!(
        "{} tokens, cost {} micro-credits, served by {}",
        done.response.usage.map_or(0, |u| u.prompt_tokens),
        done.cost_micros,
        done.route.provider
    );
    println!(
        "balance: {} micro-credits",
        gateway.credits().balance("alice").await?
    );
    Ok(())
}
