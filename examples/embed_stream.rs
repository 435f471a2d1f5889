//! Embed llmgate in-process: build a `Gateway` with the offline demo provider, give a user some
//! credits, and stream a reply — no HTTP hop, no server crate.
//!
//! Run: `cargo run -p llmgate-examples --example embed_stream`

use std::io::Write;
use std::sync::Arc;

use futures::StreamExt;
use llmgate_core::{
    Caller, Gateway,
    caller::Tier,
    catalog::Deployment,
    chat::{ChatRequest, Message},
    credits::{Credit, CreditKind},
    pricing::ModelPrice,
};
use llmgate_providers::DemoProvider;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gateway = Gateway::builder()
        .provider(Arc::new(DemoProvider::new("demo")))
        .model(Deployment::new("demo/echo", "demo", "echo").with_price(ModelPrice::default()))
        .build();

    let tier = Arc::new(Tier::new("starter"));
    let alice = Caller::user("alice", tier);
    gateway
        .credits()
        .credit(Credit {
            user_id: "alice".into(),
            kind: CreditKind::Grant,
            amount_micros: 1_000_000_000,
            idempotency_key: "welcome:alice".into(),
            reason: "welcome grant".into(),
        })
        .await?;

    let request = ChatRequest::new(
        "demo/echo",
        vec![Message::user("streaming from inside my app")],
    );
    let mut stream = gateway.chat_stream(&alice, request).await?;
    println!(
        "served by {} ({})",
        stream.route().model,
        stream.route().provider
    );

    let mut stdout = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        for choice in &chunk.choices {
            if let Some(text) = &choice.delta.content {
                write!(stdout, "{text}")?;
                stdout.flush()?;
            }
        }
        if let (Some(usage), Some(cost)) = (&chunk.usage, chunk.cost()) {
            println!(
                "\n{} prompt + {} completion tokens, cost {} micro-credits",
                usage.prompt_tokens, usage.completion_tokens, cost.cost_micros
            );
        }
    }
    println!(
        "balance: {} micro-credits",
        gateway.credits().balance("alice").await?
    );
    Ok(())
}
