#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `Gateway::embed`: the hold covers the input's byte bound (token arrays their length) and no
//! output, the charge is the upstream's count at the input price with the tier's markup and
//! the power level's multiplier, a provider without a count is estimated, vectors come back in
//! the encoding asked for, a failing deployment falls back, and the planner refuses the wrong
//! mode and oversized batches before any call or hold.

mod support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use llmgate_core::caller::Tier;
use llmgate_core::catalog::{Deployment, ModelMode};
use llmgate_core::chat::{ChatRequest, ChatResponse, Message};
use llmgate_core::credits::{KeySource, UsageGroup, UsageQuery};
use llmgate_core::embeddings::{
    EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, EncodingFormat, Vector,
};
use llmgate_core::keys::{KeyVault, Secret};
use llmgate_core::memory::MemoryKeyVault;
use llmgate_core::pricing::{Decimal, ModelPrice};
use llmgate_core::provider::{ChunkStream, EmbedCall, ProviderCall};
use llmgate_core::*;
use support::{dec, fund, tier};

/// An embeddings upstream: `[index, 1]` per input, `count` as its usage, or a 500.
#[derive(Debug)]
struct Embedder {
    name: &'static str,
    count: Option<u64>,
    fail: bool,
    calls: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Provider for Embedder {
    fn name(&self) -> &str {
        self.name
    }

    fn requires_key(&self) -> bool {
        false
    }

    async fn chat(&self, _call: ProviderCall<'_>) -> Result<ChatResponse> {
        panic!("chat called on an embedding provider")
    }

    async fn chat_stream(&self, _call: ProviderCall<'_>) -> Result<ChunkStream> {
        panic!("chat_stream called on an embedding provider")
    }

    async fn embed(&self, call: EmbedCall<'_>) -> Result<EmbeddingResponse> {
        let key = call.api_key.map(|k| format!(" key={}", k.expose()));
        let record = format!("{}{}", call.request.model, key.unwrap_or_default());
        self.calls.lock().unwrap().push(record);
        if self.fail {
            return Err(Error::from_upstream_status(self.name, 500, "boom"));
        }
        let vectors = (0..call.request.input.len())
            .map(|i| Vector::from_floats(&[i as f32, 1.0]))
            .collect::<Result<Vec<_>>>()?;
        let mut response = EmbeddingResponse::new(&call.request.model, vectors);
        response.usage = self.count.map(EmbeddingUsage::new);
        Ok(response)
    }
}

#[tokio::test]
async fn a_byok_caller_uses_their_key_and_pays_nothing() {
    let vault = Arc::new(MemoryKeyVault::new());
    vault
        .put("ann", "up", &Secret::new("sk-ann-own-1234"))
        .await
        .unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let gateway = Gateway::builder()
        .provider(Arc::new(Embedder {
            name: "up",
            count: Some(40),
            fail: false,
            calls: calls.clone(),
        }))
        .key_vault(vault)
        .model(embedding("e", "up"))
        .build();
    let mut byok_tier = Tier::new("starter");
    byok_tier.byok = true;
    let caller = Caller::user("ann", Arc::new(byok_tier));
    let done = gateway
        .embed(&caller, EmbeddingRequest::new("e", "hello"))
        .await
        .unwrap();
    assert_eq!(done.route.key_source, KeySource::Byok);
    assert_eq!(done.cost_micros, 0);
    assert_eq!(
        calls.lock().unwrap().as_slice(),
        ["e@up key=sk-ann-own-1234"]
    );
}

/// $0.0001 per 1K input tokens; starter (+40 %) on balanced (× 0.25): 35 µ per token.
const PER_TOKEN: i64 = 35;

fn embedding(name: &str, provider: &str) -> Deployment {
    Deployment::new(name, provider, format!("{name}@{provider}"))
        .with_price(ModelPrice::new(dec("0.0001"), Decimal::ZERO))
        .with_mode(ModelMode::Embedding)
}

struct Setup {
    gateway: Gateway,
    calls: Arc<Mutex<Vec<String>>>,
    caller: Caller,
}

async fn setup(count: Option<u64>, models: Vec<Deployment>) -> Setup {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let provider = |name, fail| {
        Arc::new(Embedder {
            name,
            count,
            fail,
            calls: calls.clone(),
        })
    };
    let mut builder = Gateway::builder()
        .provider(provider("up", false))
        .provider(provider("down", true));
    for model in models {
        builder = builder.model(model);
    }
    let gateway = builder.build();
    fund(&gateway, "ann", 1_000_000).await;
    Setup {
        gateway,
        calls,
        caller: Caller::user("ann", tier()),
    }
}

#[tokio::test]
async fn the_charge_is_the_upstreams_count_at_the_input_price() {
    let s = setup(Some(40), vec![embedding("e", "up")]).await;
    let done = s
        .gateway
        .embed(&s.caller, EmbeddingRequest::new("e", "a".repeat(100)))
        .await
        .unwrap();
    assert_eq!(done.cost_micros, 40 * PER_TOKEN);
    assert_eq!(done.response.usage, Some(EmbeddingUsage::new(40)));
    assert_eq!(done.route.model, "e");
    let balance = s.gateway.credits().balance("ann").await.unwrap();
    assert_eq!(balance, 1_000_000 - 40 * PER_TOKEN);
    let usage = s
        .gateway
        .credits()
        .usage(&UsageQuery {
            user_id: Some("ann".into()),
            from_day: None,
            to_day: None,
            group_by: UsageGroup::Model,
        })
        .await
        .unwrap();
    assert_eq!(usage[0].prompt_tokens, 40);
    assert_eq!(usage[0].completion_tokens, 0);
    assert_eq!(usage[0].cost_micros, 40 * PER_TOKEN);
    assert_eq!(s.calls.lock().unwrap().as_slice(), ["e@up"]);
}

#[tokio::test]
async fn an_uncounted_answer_is_charged_the_estimate_and_never_more_than_the_hold() {
    let s = setup(None, vec![embedding("e", "up")]).await;
    // Nine bytes: an estimate of three tokens.
    let done = s
        .gateway
        .embed(&s.caller, EmbeddingRequest::new("e", "abcdefghi"))
        .await
        .unwrap();
    assert_eq!(done.cost_micros, 3 * PER_TOKEN);
    // An upstream claiming more tokens than the input has bytes is charged the bound.
    let s = setup(Some(1000), vec![embedding("e", "up")]).await;
    let done = s
        .gateway
        .embed(
            &s.caller,
            EmbeddingRequest::new("e", EmbeddingInput::Tokens(vec![1, 2, 3])),
        )
        .await
        .unwrap();
    assert_eq!(done.cost_micros, 3 * PER_TOKEN);
}

#[tokio::test]
async fn the_hold_is_the_byte_bound_and_a_balance_below_it_is_402() {
    let s = setup(Some(1), vec![embedding("e", "up")]).await;
    let poor = Caller::user("bob", tier());
    fund(&s.gateway, "bob", 10 * PER_TOKEN).await;
    let eleven = EmbeddingRequest::new(
        "e",
        EmbeddingInput::TokenLists(vec![vec![7; 6], vec![7; 5]]),
    );
    let error = s.gateway.embed(&poor, eleven).await.unwrap_err();
    assert_eq!(error.status(), 402);
    let ten = EmbeddingRequest::new("e", vec!["12345", "12345"]);
    assert_eq!(
        s.gateway.embed(&poor, ten).await.unwrap().cost_micros,
        PER_TOKEN
    );
    assert_eq!(s.calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn base64_is_made_from_floats_when_asked() {
    let s = setup(Some(1), vec![embedding("e", "up")]).await;
    let request = EmbeddingRequest::new("e", vec!["a", "b"]).with_encoding(EncodingFormat::Base64);
    let done = s.gateway.embed(&s.caller, request).await.unwrap();
    let second = &done.response.data[1].embedding;
    assert_eq!(second.format(), EncodingFormat::Base64);
    assert_eq!(second.to_floats().unwrap(), [1.0, 1.0]);
}

#[tokio::test]
async fn a_failing_deployment_falls_back_to_the_next() {
    let s = setup(Some(2), vec![embedding("e", "down"), embedding("e", "up")]).await;
    let done = s
        .gateway
        .embed(&s.caller, EmbeddingRequest::new("e", "hello"))
        .await
        .unwrap();
    assert_eq!(done.route.provider, "up");
    assert_eq!(done.route.attempts, 2);
    assert_eq!(done.cost_micros, 2 * PER_TOKEN);
    assert_eq!(s.calls.lock().unwrap().as_slice(), ["e@down", "e@up"]);
}

#[tokio::test]
async fn the_wrong_mode_and_oversized_batches_are_refused_before_any_call() {
    let mut bounded = embedding("small", "up");
    bounded.max_inputs = Some(2);
    let chat = Deployment::new("chat", "up", "chat@up")
        .with_price(ModelPrice::new(dec("0.002"), dec("0.002")));
    let s = setup(Some(1), vec![embedding("e", "up"), bounded, chat]).await;

    let error = s
        .gateway
        .embed(&s.caller, EmbeddingRequest::new("chat", "a"))
        .await
        .unwrap_err();
    assert_eq!(
        (error.status(), error.code()),
        (400, Some("wrong_model_mode"))
    );
    assert!(
        error.message().contains("mode `chat`"),
        "{}",
        error.message()
    );

    let error = s
        .gateway
        .embed(
            &s.caller,
            EmbeddingRequest::new("small", vec!["a", "b", "c"]),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (error.status(), error.code()),
        (400, Some("too_many_inputs"))
    );

    let chat_request = ChatRequest::new("e", vec![Message::user("hi")]);
    let error = s.gateway.chat(&s.caller, chat_request).await.unwrap_err();
    assert_eq!(
        (error.status(), error.code()),
        (400, Some("wrong_model_mode"))
    );
    assert!(
        error.message().contains("mode `embedding`"),
        "{}",
        error.message()
    );

    assert!(s.calls.lock().unwrap().is_empty());
    assert_eq!(s.gateway.credits().balance("ann").await.unwrap(), 1_000_000);
}
