//! The core of llmgate: provider-neutral chat types, the four extension traits and the
//! in-process [`Gateway`] pipeline.
//!
//! A gateway routes an OpenAI-shaped [`ChatRequest`](chat::ChatRequest) to one of its
//! [`Provider`]s, holds the request's maximum cost in a [`CreditStore`](credits::CreditStore)
//! first, uses the caller's own key from a [`KeyVault`](keys::KeyVault) when there is one, falls
//! back along the [`RoutingPolicy`](routing::RoutingPolicy)'s order, and settles the exact charge
//! once the answer (or stream) is complete.
//!
//! The root holds what nearly every user names: [`Gateway`], [`GatewayBuilder`], [`Caller`],
//! [`Provider`], [`Error`], [`ErrorKind`] and [`Result`]. The rest is grouped by what it is for:
//!
//! | module | what is in it |
//! | --- | --- |
//! | [`chat`] | requests, responses, stream chunks, messages, usage |
//! | [`provider`] | what a [`Provider`] is given and returns: `ProviderCall`, `EmbedCall`, `ChunkStream` |
//! | [`embeddings`] | embeddings requests and answers: inputs, vectors, encodings, usage |
//! | [`gateway`] | what a [`Gateway`] returns: `Completion`, `CompletionStream`, `Embedded`, `RouteInfo`; `ModelResolver` |
//! | [`catalog`] | the configured models: `Deployment`, `Catalog`, `ModelMode`, `Privacy`, `LatencyClass` |
//! | [`routing`] | the `RoutingPolicy` trait, its inputs and the built-in strategies; `SharedCooldowns` |
//! | [`power`] | power levels and their policies |
//! | [`pricing`] | prices, the charge in micro-credits, `CostBreakdown`, `TokenClasses`, `Decimal` |
//! | [`credits`] | the `CreditStore` trait and the ledger's values |
//! | [`keys`] | `Secret` and the `KeyVault` trait |
//! | [`caller`] | who asks: `Tier`, `Billing` beside [`Caller`] |
//! | [`limits`] | rate limits: the `RateLimiter` trait and the in-process one |
//! | [`memory`] | the in-memory `CreditStore` and `KeyVault` |
//! | [`tokens`], [`metrics`] | the gateway's own token estimates; what the pipeline reports as metrics |
//! | [`sync`] | locks that keep working after a panic elsewhere (poisoned data used as it is) |
//! | [`trace`] | distributed tracing hooks: a span per upstream attempt, the `traceparent` it sends |
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use llmgate_core::catalog::Deployment;
//! use llmgate_core::chat::{ChatRequest, ChatResponse, Message, Usage};
//! use llmgate_core::pricing::ModelPrice;
//! use llmgate_core::provider::{ChunkStream, ProviderCall};
//! use llmgate_core::{Caller, Error, Gateway, Provider, Result};
//!
//! #[derive(Debug)]
//! struct Hello;
//!
//! #[async_trait]
//! impl Provider for Hello {
//!     fn name(&self) -> &str { "hello" }
//!     fn requires_key(&self) -> bool { false }
//!     async fn chat(&self, call: ProviderCall<'_>) -> Result<ChatResponse> {
//!         Ok(ChatResponse::assistant(&call.request.model, "hi").with_usage(Usage::new(3, 1)))
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
pub mod caller;
pub mod catalog;
pub mod chat;
mod clock;
pub mod credits;
pub mod embeddings;
mod error;
pub mod gateway;
mod health;
pub mod key_limits;
pub mod limits;
pub mod memory;
pub mod metrics;
mod mix;
pub mod power;
pub mod pricing;
pub mod provider;
pub mod request_log;
pub mod routing;
mod secret;
pub mod sync;
pub mod tokens;
pub mod trace;
mod vault;

/// Secrets and the store of users' own provider keys (BYOK).
pub mod keys {
    pub use crate::secret::Secret;
    pub use crate::vault::{KeyVault, StoredKey};
}

pub use caller::Caller;
pub use error::{Error, ErrorKind, Result, with_causes};
pub use gateway::{Gateway, GatewayBuilder};
pub use provider::Provider;
