//! Token classes through the gateway on the in-memory ledger: cache reads, cache writes and
//! reasoning tokens are charged at their own prices (the two worked examples of
//! docs/credits.md), whole and streamed, and kept on the ledger entry and in usage.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use llmgate_core::*;
use llmgate_core::{
    catalog::Deployment,
    chat::{ChatChunk, ChatResponse, FinishReason, Usage},
    credits::{Page, Transaction, TransactionKind, UsageGroup, UsageQuery, UsageRow},
    pricing::{ModelPrice, PriceTerms},
    provider::{ChunkStream, ProviderCall},
};
use support::{dec, fund, request, text_chunk, tier};

/// Answers "ok" reporting a fixed usage, whole or as a stream ending in a usage-only chunk.
#[derive(Debug)]
struct Reports(Usage);

#[async_trait]
impl Provider for Reports {
    fn name(&self) -> &str {
        "up"
    }

    fn requires_key(&self) -> bool {
        false
    }

    async fn chat(&self, call: ProviderCall<'_>) -> Result<ChatResponse> {
        Ok(ChatResponse::assistant(&call.request.model, "ok")
            .with_id("r1")
            .with_created(1)
            .with_usage(self.0.clone()))
    }

    async fn chat_stream(&self, _call: ProviderCall<'_>) -> Result<ChunkStream> {
        let last = ChatChunk::empty("c1", "up", 1).with_usage(self.0.clone());
        let items = vec![
            Ok(text_chunk(Some("ok"), None)),
            Ok(text_chunk(None, Some(FinishReason::Stop))),
            Ok(last),
        ];
        Ok(Box::pin(futures::stream::iter(items)))
    }
}

/// Anthropic's report: input 100, cache read 2000, cache write 1000, output 500, as the
/// adapter normalises it (the prompt counts every class).
fn anthropic_usage() -> Usage {
    Usage::new(3100, 500)
        .with_cached_tokens(2000)
        .with_cache_creation_tokens(1000)
}

/// $0.003 in, $0.0003 cache read, $0.00375 cache write, $0.015 out per 1K.
fn anthropic_price() -> ModelPrice {
    ModelPrice::new(dec("0.003"), dec("0.015")).with_cache_prices(dec("0.0003"), dec("0.00375"))
}

/// OpenAI's report: prompt 3000 of which 2000 cached, completion 500 of which 300 reasoning.
fn openai_usage() -> Usage {
    Usage::new(3000, 500)
        .with_cached_tokens(2000)
        .with_reasoning_tokens(300)
}

/// $0.002 in, $0.0005 cache read, $0.008 out per 1K (cache writes at the input price).
fn openai_price() -> ModelPrice {
    ModelPrice::new(dec("0.002"), dec("0.008")).with_cache_prices(dec("0.0005"), dec("0.002"))
}

fn gateway(usage: Usage, price: ModelPrice) -> Gateway {
    Gateway::builder()
        .provider(Arc::new(Reports(usage)))
        .model(Deployment::new("m", "up", "up-model").with_price(price))
        .build()
}

fn caller() -> Caller {
    Caller::user("u", tier())
}

/// The usage record of the request, as the ledger's charge entry and the usage rollup keep it.
async fn recorded(gateway: &Gateway) -> (Transaction, UsageRow) {
    let ledger = gateway
        .credits()
        .transactions(
            "u",
            Page {
                limit: 10,
                before_id: None,
            },
        )
        .await
        .unwrap();
    let charge = ledger
        .into_iter()
        .find(|t| t.kind == TransactionKind::Charge)
        .expect("a charge entry");
    let usage = gateway
        .credits()
        .usage(&UsageQuery {
            user_id: Some("u".into()),
            from_day: None,
            to_day: None,
            group_by: UsageGroup::Model,
        })
        .await
        .unwrap();
    (charge, usage.into_iter().next().expect("a usage row"))
}

#[tokio::test]
async fn anthropic_cache_example_is_charged_4252500_micros() {
    let gateway = gateway(anthropic_usage(), anthropic_price());
    fund(&gateway, "u", 100_000_000).await;
    let done = gateway.chat(&caller(), request("m")).await.unwrap();
    assert_eq!(done.cost_micros, 4_252_500);
    let breakdown = &done.cost_breakdown;
    assert_eq!(
        (
            breakdown.uncached_prompt.tokens,
            breakdown.cache_read.tokens,
            breakdown.cache_write.tokens,
            breakdown.output.tokens
        ),
        (100, 2000, 1000, 500)
    );
    assert_eq!(breakdown.cache_write.micros, dec("1312500"));
    let usage = done.response.usage.unwrap();
    assert_eq!(usage.prompt_tokens, 3100);
    assert_eq!(
        usage.prompt_tokens_details.unwrap().cached_tokens,
        Some(2000)
    );

    let (charge, row) = recorded(&gateway).await;
    assert_eq!(charge.amount_micros, -4_252_500);
    assert_eq!(
        (
            charge.prompt_tokens,
            charge.cache_read_tokens,
            charge.cache_write_tokens
        ),
        (Some(3100), Some(2000), Some(1000))
    );
    assert_eq!(
        (
            row.prompt_tokens,
            row.cache_read_tokens,
            row.cache_write_tokens
        ),
        (3100, 2000, 1000)
    );
    assert_eq!(row.cost_micros, 4_252_500);
}

#[tokio::test]
async fn openai_cache_and_reasoning_example_is_charged_2450000_micros() {
    let gateway = gateway(openai_usage(), openai_price());
    fund(&gateway, "u", 100_000_000).await;
    let done = gateway.chat(&caller(), request("m")).await.unwrap();
    assert_eq!(done.cost_micros, 2_450_000);
    let usage = done.response.usage.unwrap();
    assert_eq!(
        usage.completion_tokens_details.unwrap().reasoning_tokens,
        Some(300)
    );
    let (charge, row) = recorded(&gateway).await;
    assert_eq!(charge.amount_micros, -2_450_000);
    assert_eq!(
        (charge.cache_read_tokens, charge.reasoning_tokens),
        (Some(2000), Some(300))
    );
    assert_eq!(
        (row.cache_read_tokens, row.reasoning_tokens, row.cost_micros),
        (2000, 300, 2_450_000)
    );
}

#[tokio::test]
async fn streamed_examples_are_charged_the_same_and_end_with_the_breakdown() {
    for (usage, price, expected) in [
        (anthropic_usage(), anthropic_price(), 4_252_500),
        (openai_usage(), openai_price(), 2_450_000),
    ] {
        let gateway = gateway(usage, price);
        fund(&gateway, "u", 100_000_000).await;
        let mut stream_request = request("m");
        stream_request.stream = Some(true);
        let stream = gateway
            .chat_stream(&caller(), stream_request)
            .await
            .unwrap();
        let chunks: Vec<ChatChunk> = stream.map(|c| c.unwrap()).collect().await;
        let last = chunks.last().unwrap();
        let llmgate = &last.extra["llmgate"];
        assert_eq!(llmgate["cost_micros"], expected);
        assert_eq!(llmgate["cost_breakdown"]["cost_micros"], expected);
        assert_eq!(llmgate["cost_breakdown"]["cache_read"]["tokens"], 2000);
        // The typed cost is the one the JSON was made from.
        let cost = last.cost().expect("the last chunk carries the cost");
        assert_eq!(cost.cost_micros, expected);
        assert_eq!(cost.cache_read.tokens, 2000);
        assert_eq!(
            llmgate["cost_breakdown"],
            serde_json::to_value(cost).unwrap()
        );
        let usage = last.usage.as_ref().unwrap();
        assert_eq!(
            usage.prompt_tokens_details.as_ref().unwrap().cached_tokens,
            Some(2000)
        );
        assert!(usage.completion_tokens_details.is_some());
        let (charge, _) = recorded(&gateway).await;
        assert_eq!(charge.amount_micros, -expected);
        assert_eq!(charge.cache_read_tokens, Some(2000));
    }
}

#[tokio::test]
async fn the_hold_covers_prompt_tokens_at_the_dearest_class() {
    // Cache writes cost 1.25 × input: a balance that covers the prompt at the input price
    // but not at the write price is refused before any upstream call.
    let gateway = gateway(anthropic_usage(), anthropic_price());
    let prompt = tokens::prompt_upper_bound(&request("m"));
    let terms = PriceTerms {
        price: anthropic_price(),
        markup: dec("0.4"),
        multiplier: dec("0.25"),
        credits_per_usd: dec("1000"),
    };
    let at_input = PriceTerms {
        price: ModelPrice::new(dec("0.003"), dec("0.015")),
        ..terms
    }
    .max_charge_micros(prompt, 1000)
    .unwrap();
    let hold = terms.max_charge_micros(prompt, 1000).unwrap();
    assert!(hold > at_input);
    fund(&gateway, "u", at_input).await;
    let refused = gateway.chat(&caller(), request("m")).await.unwrap_err();
    assert_eq!(refused.status(), 402);
    fund(&gateway, "u", hold - at_input).await;
    gateway.chat(&caller(), request("m")).await.unwrap();
}
