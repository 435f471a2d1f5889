//! Money on the hot path: pricing one request (`PriceTerms::charge_micros`, exact decimals) and
//! one hold + settle on the in-memory ledger.
//!
//! Run: `cargo bench -p llmgate-benches --bench ledger`

use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use llmgate_core::{
    credits::{Credit, CreditKind, CreditStore, HoldRequest, KeySource, UsageRecord},
    memory::MemoryCreditStore,
    pricing::{Decimal, ModelPrice, PriceTerms, TokenClasses},
};

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap_or_default()
}

fn pricing(c: &mut Criterion) {
    let terms = PriceTerms {
        price: ModelPrice::new(dec("0.002"), dec("0.006")),
        markup: dec("0.4"),
        multiplier: dec("0.25"),
        credits_per_usd: dec("1000"),
    };
    assert_eq!(
        PriceTerms {
            price: ModelPrice::new(dec("0.002"), dec("0.002")),
            ..terms
        }
        .charge_micros(&TokenClasses {
            uncached_prompt: 400,
            output: 600,
            ..TokenClasses::default()
        })
        .ok(),
        Some(700_000),
        "the SPEC's worked example"
    );
    c.bench_function("pricing/charge_micros", |b| {
        // An agent's turn: most of the prompt read from the cache.
        let tokens = TokenClasses {
            uncached_prompt: 234,
            cache_read: 1_000,
            cache_write: 0,
            output: 567,
            reasoning: 100,
        };
        b.iter(|| black_box(&terms).charge_micros(black_box(&tokens)))
    });
}

fn hold_and_settle(c: &mut Criterion) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    c.bench_function("ledger/memory/hold+settle", |b| {
        // A fresh store per sample: the in-memory ledger keeps every entry.
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let store = MemoryCreditStore::new();
                let funded = store
                    .credit(Credit {
                        user_id: "u".into(),
                        kind: CreditKind::TopUp,
                        amount_micros: llmgate_core::credits::MAX_BALANCE_MICROS,
                        idempotency_key: "k".into(),
                        reason: "bench".into(),
                    })
                    .await;
                assert!(funded.is_ok());
                let mut took = Duration::ZERO;
                for i in 0..iters {
                    let request_id = format!("req-{i}");
                    let record = UsageRecord {
                        user_id: "u".into(),
                        request_id: request_id.clone(),
                        model: "m".into(),
                        provider: "p".into(),
                        key_source: KeySource::Platform,
                        prompt_tokens: 14,
                        completion_tokens: 10,
                        cache_read_tokens: 0,
                        cache_write_tokens: 0,
                        reasoning_tokens: 0,
                        cost_micros: 42,
                        at: 1_700_000_000,
                    };
                    let started = Instant::now();
                    let hold = store
                        .hold(HoldRequest {
                            user_id: "u".into(),
                            request_id,
                            amount_micros: 1_000,
                            ttl_secs: 600,
                            budget: None,
                        })
                        .await;
                    if let Ok(hold) = hold {
                        black_box(store.settle(&hold, &record).await.ok());
                    }
                    took += started.elapsed();
                }
                took
            })
        })
    });
}

criterion_group!(benches, pricing, hold_and_settle);
criterion_main!(benches);
