//! One routing decision — resolve the model, walk its candidate chain, snapshot deployment
//! state, rank with the policy — over a catalog of 1,000 models. No keys, holds or calls.
//!
//! Run: `cargo bench -p llmgate-benches --bench routing`

use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use llmgate_core::{
    Caller, Gateway,
    catalog::Deployment,
    chat::{ChatRequest, Message},
    power::PowerLevel,
    pricing::{Decimal, ModelPrice},
    routing::Strategy,
};
use llmgate_providers::DemoProvider;

const PROVIDERS: [&str; 8] = [
    "together",
    "fireworks",
    "openrouter",
    "groq",
    "huggingface",
    "anthropic",
    "openai",
    "vllm",
];

/// 1,000 models on 8 providers with spread-out prices and qualities; every tenth model has a
/// second deployment, every model two fallbacks.
fn gateway(strategy: Strategy) -> Gateway {
    let mut builder = Gateway::builder().routing_strategy(strategy);
    for provider in PROVIDERS {
        builder = builder.provider(Arc::new(DemoProvider::new(provider)));
    }
    for i in 0..1000usize {
        let provider = PROVIDERS[i % PROVIDERS.len()];
        let price = Decimal::from_str(&format!("0.{:04}", 1 + i % 97)).unwrap_or_default();
        let mut deployment = Deployment::new(format!("model-{i}"), provider, format!("up-{i}"))
            .with_price(ModelPrice::new(price, price));
        deployment.quality = Some(0.5 + (i % 50) as f64 / 100.0);
        deployment.context_window = Some(128_000);
        deployment.local = provider == "vllm";
        deployment.fallbacks = vec![
            format!("model-{}", (i + 1) % 1000),
            format!("model-{}", (i + 2) % 1000),
        ];
        if i % 10 == 0 {
            let mut second = deployment.clone();
            second.provider = PROVIDERS[(i + 1) % PROVIDERS.len()].to_owned();
            builder = builder.model(second);
        }
        builder = builder.model(deployment);
    }
    builder.build()
}

fn request(model: &str, level: PowerLevel) -> ChatRequest {
    let mut request = ChatRequest::new(
        model,
        vec![
            Message::system("You are terse."),
            Message::user("Summarise the plot of Hamlet in one line."),
        ],
    );
    request.max_tokens = Some(256);
    request.power_level = Some(level);
    request
}

fn routing(c: &mut Criterion) {
    let admin = Caller::admin();
    for strategy in [Strategy::Cost, Strategy::Weighted] {
        let gateway = gateway(strategy);
        let named = request("model-500", PowerLevel::Balanced);
        assert_eq!(
            gateway.route_preview(&admin, &named).map(|r| r.len()).ok(),
            Some(4)
        );
        c.bench_function(&format!("route/named/{strategy}/1000-models"), |b| {
            b.iter(|| gateway.route_preview(black_box(&admin), black_box(&named)))
        });
    }
    let gateway = gateway(Strategy::Cost);
    for level in [PowerLevel::Eco, PowerLevel::Precision] {
        let auto = request("auto", level);
        assert!(gateway.route_preview(&admin, &auto).is_ok());
        c.bench_function(&format!("route/auto/{level}/1000-models"), |b| {
            b.iter(|| gateway.route_preview(black_box(&admin), black_box(&auto)))
        });
    }
}

criterion_group!(benches, routing);
criterion_main!(benches);
