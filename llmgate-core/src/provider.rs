//! The `Provider` trait: one upstream that answers chat requests.

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Stream;

use crate::chat::{ChatChunk, ChatRequest, ChatResponse};
use crate::error::Result;
use crate::secret::Secret;

/// A stream of completion chunks. It ends after the last chunk of a good stream; an `Err` item
/// means the upstream failed mid-way and nothing more follows.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<ChatChunk>> + Send>>;

/// One call to an upstream.
#[derive(Debug, Clone, Copy)]
pub struct ProviderCall<'a> {
    /// The request, with `model` already set to the upstream's model id and the output cap
    /// applied. For streams, `stream` and `stream_options.include_usage` are set.
    pub request: &'a ChatRequest,
    /// The key to authenticate with: the caller's own (BYOK) or the platform's.
    pub api_key: Option<&'a Secret>,
}

/// An upstream LLM service.
///
/// Implementations translate the provider-neutral request to their wire format and back. They
/// must never put the key in an error message or a log line.
#[async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug + 'static {
    /// The configured name of this provider (`together`, `my-vllm`).
    fn name(&self) -> &str;

    /// Whether a key is needed to call it.
    fn requires_key(&self) -> bool {
        true
    }

    /// A whole completion.
    async fn chat(&self, call: ProviderCall<'_>) -> Result<ChatResponse>;

    /// A streamed completion. Returns once the upstream accepted the request (status 2xx);
    /// failures after that arrive as an `Err` item.
    async fn chat_stream(&self, call: ProviderCall<'_>) -> Result<ChunkStream>;
}

/// Compile-time check that the trait stays object-safe.
const _: Option<Arc<dyn Provider>> = None;
