//! Plug your own routing policy into the gateway: implementing `RoutingPolicy` is all it takes.
//! This one keeps requests in the EU when it can (deployments tagged `eu` first) and, among
//! those, picks the least busy. Cooldowns, rate limits, fallbacks and retries stay the
//! gateway's job; the policy only orders the candidates it is shown.
//!
//! Run: `cargo run -p llmgate-examples --example custom_routing`

use std::sync::Arc;

use llmgate_core::{
    Caller, Gateway,
    catalog::Deployment,
    chat::{ChatRequest, Message},
    pricing::ModelPrice,
    routing::{Candidate, RouteFacts, RoutingPolicy, rank_by_key},
};
use llmgate_providers::DemoProvider;

/// EU deployments first, then fewest requests in flight, then configuration order.
#[derive(Debug)]
struct EuFirst;

impl RoutingPolicy for EuFirst {
    fn rank(&self, _facts: &RouteFacts<'_>, candidates: &[Candidate<'_>]) -> Vec<usize> {
        // `rank_by_key` already puts deployments in cooldown or at their limit last.
        rank_by_key(candidates, |candidate| {
            let in_eu = candidate.deployment.tags.iter().any(|tag| tag == "eu");
            (!in_eu, candidate.state.in_flight)
        })
    }
}

fn deployment(provider: &str, region: &str) -> Deployment {
    let mut deployment =
        Deployment::new("chat", provider, "echo").with_price(ModelPrice::default());
    deployment.tags = vec![region.to_owned()];
    deployment
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gateway = Gateway::builder()
        .provider(Arc::new(DemoProvider::new("demo-us")))
        .provider(Arc::new(DemoProvider::new("demo-eu")))
        .model(deployment("demo-us", "us"))
        .model(deployment("demo-eu", "eu"))
        .routing_policy(Arc::new(EuFirst))
        .build();

    let request = ChatRequest::new("chat", vec![Message::user("where am I served?")]);
    let order: Vec<String> = gateway
        .route_preview(&Caller::admin(), &request)?
        .iter()
        .map(|d| d.provider.clone())
        .collect();
    println!("candidates, best first: {}", order.join(", "));

    let done = gateway.chat(&Caller::admin(), request).await?;
    println!("served by {}", done.route.provider);
    assert_eq!(done.route.provider, "demo-eu");
    Ok(())
}
