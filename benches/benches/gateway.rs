//! Pure gateway overhead: one `Gateway::chat` / `Gateway::chat_stream` against an in-process
//! provider that answers at once from canned values. Free model with the master caller (usage
//! recorded, nothing held) and a priced model with a charged user (hold, settle and usage on the
//! in-memory ledger). The stream has 100 content chunks plus role, finish and usage.
//!
//! Run: `cargo bench -p llmgate-benches --bench gateway`

use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use futures::StreamExt;
use llmgate_core::{
    Caller, Gateway, Provider, Result,
    caller::Tier,
    catalog::Deployment,
    chat::{ChatChunk, ChatRequest, ChatResponse, FinishReason, Message, Usage},
    credits::{Credit, CreditKind},
    memory::MemoryCreditStore,
    pricing::{Decimal, ModelPrice},
    provider::{ChunkStream, ProviderCall},
};

const CHUNKS: usize = 100;

/// Answers every call at once with the same response or chunks.
#[derive(Debug)]
struct Canned {
    response: ChatResponse,
    chunks: Vec<ChatChunk>,
}

impl Canned {
    fn new() -> Self {
        const ID: &str = "chatcmpl-bench";
        const CREATED: u64 = 1_700_000_000;
        let response = ChatResponse::assistant("up", "Hello from the in-process provider.")
            .with_id(ID)
            .with_created(CREATED)
            .with_usage(Usage::new(14, 10));
        let mut chunks = vec![ChatChunk::start(ID, "up", CREATED)];
        for i in 0..CHUNKS {
            chunks.push(ChatChunk::text(ID, "up", CREATED, format!("tok{i} ")));
        }
        chunks.push(ChatChunk::finish(ID, "up", CREATED, FinishReason::Stop));
        chunks.push(ChatChunk::empty(ID, "up", CREATED).with_usage(Usage::new(14, CHUNKS as u64)));
        Self { response, chunks }
    }
}

#[async_trait]
impl Provider for Canned {
    fn name(&self) -> &str {
        "canned"
    }

    fn requires_key(&self) -> bool {
        false
    }

    async fn chat(&self, _call: ProviderCall<'_>) -> Result<ChatResponse> {
        Ok(self.response.clone())
    }

    async fn chat_stream(&self, _call: ProviderCall<'_>) -> Result<ChunkStream> {
        let chunks = self.chunks.clone().into_iter().map(Ok);
        Ok(Box::pin(futures::stream::iter(chunks)))
    }
}

/// A gateway with a free and a priced model on the canned provider, and a funded user.
async fn gateway() -> (Gateway, Caller) {
    let price = Decimal::from_str("0.001").unwrap_or_default();
    let gateway = Gateway::builder()
        .provider(Arc::new(Canned::new()))
        .model(Deployment::new("free", "canned", "up").with_price(ModelPrice::default()))
        .model(Deployment::new("paid", "canned", "up").with_price(ModelPrice::new(price, price)))
        .credit_store(Arc::new(MemoryCreditStore::new()))
        .build();
    let user = Caller::user("bench-user", Arc::new(Tier::new("bench")));
    let funded = gateway
        .credits()
        .credit(Credit {
            user_id: "bench-user".into(),
            kind: CreditKind::TopUp,
            amount_micros: llmgate_core::credits::MAX_BALANCE_MICROS,
            idempotency_key: "bench".into(),
            reason: "bench".into(),
        })
        .await;
    assert!(funded.is_ok(), "funding the bench user failed");
    (gateway, user)
}

fn request(model: &str) -> ChatRequest {
    let mut request = ChatRequest::new(
        model,
        vec![Message::user("Say hello to the benchmark, briefly.")],
    );
    request.max_tokens = Some(64);
    request
}

/// Time `iters` calls on a fresh gateway, so the in-memory ledger (which keeps every entry)
/// never grows past one sample's worth.
fn timed<F>(runtime: &tokio::runtime::Runtime, iters: u64, call: F) -> Duration
where
    F: AsyncFn(&Gateway, &Caller, &Caller) -> usize,
{
    runtime.block_on(async {
        let (gateway, user) = gateway().await;
        let admin = Caller::admin();
        let started = Instant::now();
        for _ in 0..iters {
            black_box(call(&gateway, &admin, &user).await);
        }
        let took = started.elapsed();
        // Settles of streams run on their own tasks; let them land before the next sample.
        gateway.settled().await;
        took
    })
}

fn pipeline(c: &mut Criterion) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let free = request("free");
    let paid = request("paid");
    let mut group = c.benchmark_group("gateway");
    group.bench_function("json/free-master", |b| {
        b.iter_custom(|iters| {
            timed(
                &runtime,
                iters,
                async |g: &Gateway, admin: &Caller, _: &Caller| {
                    let done = g.chat(admin, free.clone()).await;
                    done.map_or(0, |d| d.response.choices.len())
                },
            )
        })
    });
    group.bench_function("json/paid-user", |b| {
        b.iter_custom(|iters| {
            timed(
                &runtime,
                iters,
                async |g: &Gateway, _: &Caller, user: &Caller| {
                    let done = g.chat(user, paid.clone()).await;
                    assert!(done.as_ref().is_ok_and(|d| d.cost_micros > 0));
                    done.map_or(0, |d| d.response.choices.len())
                },
            )
        })
    });
    let streamed = async |g: &Gateway, caller: &Caller, request: &ChatRequest| {
        let Ok(mut stream) = g.chat_stream(caller, request.clone()).await else {
            return 0;
        };
        let mut items = 0;
        while let Some(item) = stream.next().await {
            items += usize::from(item.is_ok());
        }
        items
    };
    group.bench_function(format!("stream-{CHUNKS}/free-master"), |b| {
        b.iter_custom(|iters| {
            timed(
                &runtime,
                iters,
                async |g: &Gateway, admin: &Caller, _: &Caller| streamed(g, admin, &free).await,
            )
        })
    });
    group.bench_function(format!("stream-{CHUNKS}/paid-user"), |b| {
        b.iter_custom(|iters| {
            timed(
                &runtime,
                iters,
                async |g: &Gateway, _: &Caller, user: &Caller| {
                    let items = streamed(g, user, &paid).await;
                    assert_eq!(
                        items,
                        CHUNKS + 3,
                        "role, content, finish and the usage chunk"
                    );
                    items
                },
            )
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
