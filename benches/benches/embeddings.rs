// A bench whose setup fails has nothing to measure: it stops there, as a test would.
#![allow(clippy::expect_used)]
//! The latency llmgate adds to an embeddings call: the same request with 1 and with 64 inputs
//! (1,536-dimension float vectors, as `text-embedding-3-small` answers: about 6 KB and 400 KB
//! of JSON), sent straight to a local fake OpenAI upstream that answers from canned bytes and
//! through an in-process `llmgate` server (in-memory SQLite, a charged user: hold, settle and
//! usage record) in front of it, over keep-alive HTTP/1.1. The difference of the two is the
//! gateway's share. A chat completion through the same rig gives the scale.
//!
//! Run: `cargo bench -p llmgate-benches --bench embeddings`

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use llmgate_benches::load::client::{Connection, Keys, Target};
use llmgate_testkit::{FakeUpstream, Recorded, Reply, embeddings, openai};
use tokio::runtime::Runtime;

const DIMENSIONS: usize = 1536;

/// The fake upstream, and the gateway in front of it with a funded user's key.
struct Rig {
    upstream: FakeUpstream,
    gateway: common::Gateway,
}

async fn rig() -> Rig {
    // Both answers are built once, so the fake's own work is the same small copy per request
    // whichever way the request came (a 64-input request is the only one over 1 KiB).
    let upstream = FakeUpstream::start().await;
    let one = canned(1);
    let many = canned(64);
    let chat = Reply::json(200, openai::completion("gpt-up", "Hello there.", 14, 10));
    upstream.respond_with(move |request| {
        if request.path.ends_with("/chat/completions") {
            chat.clone()
        } else if request.body.len() > 1024 {
            many.clone()
        } else {
            one.clone()
        }
    });
    let yaml = r#"
providers:
  - { name: fake, kind: openai, api_base: "${UPSTREAM}/v1", api_key: sk-bench-0000 }
models:
  - { name: embed, provider: fake, upstream_model: text-embedding-3-small, mode: embedding, input_cost_per_1k: 0.00002 }
  - { name: chat, provider: fake, upstream_model: gpt-up, input_cost_per_1k: 0.002, output_cost_per_1k: 0.002 }
"#;
    let gateway = common::start(yaml, &upstream.url()).await;
    Rig { upstream, gateway }
}

/// The upstream's answer to a request of `inputs` inputs, as the testkit fake would make it.
fn canned(inputs: usize) -> Reply {
    let request = serde_json::from_slice::<serde_json::Value>(&body(inputs)).expect("body");
    let recorded = Recorded {
        method: "POST".into(),
        path: "/v1/embeddings".into(),
        query: None,
        headers: Vec::new(),
        body: Bytes::from(request.to_string()),
    };
    embeddings::openai(true)(&recorded)
}

fn body(inputs: usize) -> Bytes {
    let texts: Vec<String> = (0..inputs)
        .map(|i| format!("document {i}: the quick brown fox jumps over the lazy dog"))
        .collect();
    let request = serde_json::json!({
        "model": "embed", "input": texts, "encoding_format": "float", "dimensions": DIMENSIONS,
    });
    Bytes::from(request.to_string())
}

fn embeddings_latency(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let rig = runtime.block_on(rig());
    let upstream_addr = common::address(&rig.upstream.url());
    let direct = Target {
        addr: upstream_addr,
        path: "/v1/embeddings",
        keys: Keys::one("Bearer sk-bench-0000".to_owned()),
    };
    let through = Target {
        addr: rig.gateway.addr,
        path: "/v1/embeddings",
        keys: Keys::one(format!("Bearer {}", rig.gateway.key)),
    };
    let chat_body = Bytes::from(
        serde_json::json!({"model": "chat", "max_tokens": 64,
                           "messages": [{"role": "user", "content": "hello"}]})
        .to_string(),
    );
    let mut group = c.benchmark_group("embeddings");
    group.measurement_time(Duration::from_secs(8));
    // A chat completion through the same rig, for scale.
    let chat_direct = Target {
        path: "/v1/chat/completions",
        ..direct.clone()
    };
    let chat_through = Target {
        path: "/v1/chat/completions",
        ..through.clone()
    };
    let cases = [
        ("1-input", body(1), &direct, &through),
        ("64-inputs", body(64), &direct, &through),
        ("chat", chat_body, &chat_direct, &chat_through),
    ];
    for (case, body, direct, through) in cases {
        for (name, target) in [("direct", direct), ("gateway", through)] {
            let mut connection = runtime
                .block_on(Connection::open(target.addr))
                .expect("connect");
            group.bench_function(format!("{name}/{case}"), |b| {
                b.iter_custom(|iterations| {
                    let started = Instant::now();
                    for _ in 0..iterations {
                        let timing = runtime
                            .block_on(connection.post(target.path, target.keys.pick(0), &body))
                            .expect("request");
                        black_box(timing);
                    }
                    started.elapsed()
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, embeddings_latency);
criterion_main!(benches);
