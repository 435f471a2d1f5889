//! The core of llmgate: provider-neutral chat types, the four extension traits and the
//! in-process [`Gateway`] pipeline.
//!
//! A gateway routes an OpenAI-shaped [`ChatRequest`] to one of its [`Provider`]s, holds the
//! request's maximum cost in a [`CreditStore`] first, uses the caller's own key from a
//! [`KeyVault`] when there is one, falls back along the [`RoutingPolicy`]'s order, and settles
//! the exact charge once the answer (or stream) is complete.
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use llmgate_core::*;
//!
//! #[derive(Debug)]
//! struct Hello;
//!
//! #[async_trait]
//! impl Provider for Hello {
//!     fn name(&self) -> &str { "hello" }
//!     fn requires_key(&self) -> bool { false }
//!     async fn chat(&self, call: ProviderCall<'_>) -> Result<ChatResponse> {
//!         Ok(ChatResponse {
//!             id: "1".into(), object: "chat.completion".into(), created: 0,
//!             model: call.request.model.clone(),
//!             choices: vec![Choice { index: 0, message: Message::assistant("hi"),
//!                                    finish_reason: Some(FinishReason::Stop), logprobs: None }],
//!             usage: Some(Usage::new(3, 1)), system_fingerprint: None, extra: Default::default(),
//!         })
//!     }
//!     async fn chat_stream(&self, _call: ProviderCall<'_>) -> Result<ChunkStream> {
//!         Err(Error::invalid_request("no streams here"))
//!     }
//! }
//!
//! # tokio_test();
//! # fn tokio_test() {
//! # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # rt.block_on(async {
//! let gateway = Gateway::builder()
//!     .provider(Arc::new(Hello))
//!     .model(Deployment::new("hello", "hello", "hello-1").with_price(ModelPrice::default()))
//!     .build();
//! let request = ChatRequest::new("hello", vec![Message::user("hi?")]);
//! let done = gateway.chat(&Caller::admin(), request).await.unwrap();
//! assert_eq!(done.response.choices[0].message.text_content(), "hi");
//! assert_eq!(done.cost_micros, 0);
//! # });
//! # }
//! ```

#![warn(missing_docs)]

mod backoff;
mod caller;
mod catalog;
pub mod chat;
mod clock;
mod credits;
mod embeddings;
mod error;
mod gateway;
mod health;
mod limits;
pub mod memory;
pub mod metrics;
mod mix;
mod power;
mod pricing;
mod provider;
pub mod routing;
mod secret;
pub mod tokens;
mod vault;

pub use caller::{Billing, Caller, Tier};
pub use catalog::{Catalog, Deployment, LatencyClass, ModelMode, Privacy};
pub use chat::{
    ChatChunk, ChatRequest, ChatResponse, Choice, ChunkChoice, Content, ContentPart, Delta,
    FinishReason, Message, Role, TokenClasses, Usage, WireJson,
};
pub use credits::forwarding::ForwardingCreditStore;
pub use credits::{
    Credit, CreditKind, CreditOutcome, CreditStore, Hold, HoldRequest, KeySource, LedgerWrite,
    MAX_BALANCE_MICROS, Page, Transaction, TransactionKind, UsageGroup, UsageQuery, UsageRecord,
    UsageRow, Written, balance_limit_exceeded, write_one_by_one,
};
pub use embeddings::{
    Embedding, EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, EncodingFormat,
    Vector,
};
pub use error::{Error, ErrorKind, Result};
pub use gateway::embed::Embedded;
pub use gateway::{
    Completion, CompletionStream, Gateway, GatewayBuilder, ModelResolver, RouteInfo,
};
pub use health::SharedCooldowns;
pub use limits::{Admission, InProcessRateLimiter, Quota, RateLimiter};
pub use memory::{MemoryCreditStore, MemoryKeyVault};
pub use power::{PowerLevel, PowerLevelPolicy};
pub use pricing::{
    ClassCost, CostBreakdown, MICROS_PER_CREDIT, ModelPrice, PriceTerms, credits_to_micros,
    micros_to_credits,
};
pub use provider::{ChunkStream, EmbedCall, Provider, ProviderCall};
pub use routing::{
    Candidate, CandidateState, InOrder, RouteFacts, RoutingPolicy, Strategy, rank_by_key,
};
pub use rust_decimal::Decimal;
pub use secret::Secret;
pub use vault::{KeyVault, StoredKey};
