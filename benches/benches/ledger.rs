//! Money on the hot path: pricing one request (`PriceTerms::charge_micros`, exact decimals),
//! one hold + settle on the in-memory ledger, and the SQLite ledger writer's batch of leased
//! charges (what bounds paid requests on the embedded database).
//!
//! Run: `cargo bench -p llmgate-benches --bench ledger`

use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use criterion::Throughput;
use criterion::{Criterion, criterion_group, criterion_main};
use llmgate_core::{
    credits::{
        Credit, CreditKind, CreditStore, HoldRequest, KeySource, LeaseCharge, LeaseOutcome,
        LeaseRequest, LedgerWrite, UsageRecord,
    },
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
                    let record = usage("u", &request_id);
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

/// A request's usage: 14 prompt and 10 completion tokens for 42 micro-credits.
fn usage(user_id: &str, request_id: &str) -> UsageRecord {
    UsageRecord {
        user_id: user_id.into(),
        request_id: request_id.into(),
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
    }
}

/// Charges per batch: the ledger queue's largest batch, what a busy writer commits.
const CHARGES_PER_BATCH: u64 = 512;
/// Accounts the charges of a batch are spread over (one lease each).
const LEASED_ACCOUNTS: usize = 4;

/// A SQLite ledger in a file (as served: WAL, the writer's own connection) with one open lease
/// per account; returns the store and the leases.
async fn leased_sqlite(
    path: &std::path::Path,
) -> Option<(llmgate_credits::SqliteCreditStore, Vec<String>)> {
    let _ = std::fs::remove_file(path);
    let url = format!("sqlite://{}", path.display());
    let store = llmgate_credits::SqliteCreditStore::connect(&url)
        .await
        .ok()?;
    let mut leases = Vec::new();
    for account in 0..LEASED_ACCOUNTS {
        let user_id = format!("u{account}");
        store
            .credit(Credit {
                user_id: user_id.clone(),
                kind: CreditKind::TopUp,
                amount_micros: llmgate_core::credits::MAX_BALANCE_MICROS / 8,
                idempotency_key: user_id.clone(),
                reason: "bench".into(),
            })
            .await
            .ok()?;
        let taken = store
            .take_lease(LeaseRequest {
                user_id,
                lease_id: None,
                need_micros: 1_000_000_000_000,
                want_micros: 1_000_000_000_000_000,
                floor_micros: 0,
                ttl_secs: 86_400,
            })
            .await
            .ok()?;
        let LeaseOutcome::Taken { lease_id, .. } = taken else {
            return None;
        };
        leases.push(lease_id);
    }
    Some((store, leases))
}

/// The ledger writer's work for leased paid requests: a batch of charges, round robin over a
/// few accounts' leases, in one transaction.
fn sqlite_lease_charges(c: &mut Criterion) {
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    else {
        return;
    };
    let path = std::env::temp_dir().join(format!("llmgate-bench-ledger-{}.db", std::process::id()));
    let Some((store, leases)) = runtime.block_on(leased_sqlite(&path)) else {
        return;
    };
    let mut seq = 0_i64;
    let mut group = c.benchmark_group("ledger/sqlite");
    group.throughput(Throughput::Elements(CHARGES_PER_BATCH));
    group.bench_function("lease-charge batch of 512", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                let batch: Vec<LedgerWrite> = (0..CHARGES_PER_BATCH)
                    .map(|i| {
                        seq += 1;
                        let account = usize::try_from(i).unwrap_or(0) % leases.len();
                        LedgerWrite::LeaseCharge(LeaseCharge {
                            lease_id: leases[account].clone(),
                            seq,
                            usage: usage(&format!("u{account}"), &format!("req-{seq}")),
                            ttl_secs: 86_400,
                        })
                    })
                    .collect();
                let started = Instant::now();
                let written = runtime.block_on(store.write_batch(&batch));
                took += started.elapsed();
                let charged = |w: &llmgate_core::Result<_>| {
                    matches!(w, Ok(llmgate_core::credits::Written::LeaseCharged(Some(_))))
                };
                assert!(written.iter().all(charged));
            }
            took
        })
    });
    group.finish();
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

criterion_group!(benches, pricing, hold_and_settle, sqlite_lease_charges);
criterion_main!(benches);
