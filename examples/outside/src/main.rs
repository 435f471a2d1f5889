//! An application that embeds llmgate in-process: a gateway with the offline demo provider and
//! a priced model, one user with credits, one chat request, the charge and the new balance.

use std::sync::Arc;

use llmgate_core::{
    Caller, Gateway,
    caller::Tier,
    catalog::Deployment,
    chat::{ChatRequest, Message},
    credits::{Credit, CreditKind},
    pricing::{Decimal, ModelPrice},
};
use llmgate_providers::DemoProvider;

const GRANT_MICROS: i64 = 10_000_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // USD 0.001 per 1K prompt tokens and 0.002 per 1K output tokens, at 1000 credits per USD.
    let price = ModelPrice::new(Decimal::new(1, 3), Decimal::new(2, 3));
    let gateway = Gateway::builder()
        .provider(Arc::new(DemoProvider::new("demo")))
        .model(Deployment::new("demo/echo", "demo", "echo").with_price(price))
        .build();

    gateway
        .credits()
        .credit(Credit {
            user_id: "ann".into(),
            kind: CreditKind::Grant,
            amount_micros: GRANT_MICROS,
            idempotency_key: "welcome:ann".into(),
            reason: "welcome grant".into(),
        })
        .await?;

    let ann = Caller::user("ann", Arc::new(Tier::new("starter")));
    let request = ChatRequest::new("demo/echo", vec![Message::user("hello from outside")]);
    let done = gateway.chat(&ann, request).await?;
    // Settles may be written behind the answer; wait for them before reading the balance.
    gateway.settled().await;
    let balance = gateway.credits().balance("ann").await?;

    println!("reply: {}", done.response.choices[0].message.text_content());
    println!("served by: {}/{}", done.route.provider, done.route.model);
    println!("charged: {} micro-credits", done.cost_micros);
    println!("balance: {balance} micro-credits");
    if done.cost_micros <= 0 || balance != GRANT_MICROS - done.cost_micros {
        return Err("the charge and the balance disagree".into());
    }
    Ok(())
}
