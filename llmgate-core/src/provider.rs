//! The `Provider` trait: one upstream that answers chat requests.

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Stream;

use crate::chat::{ChatChunk, ChatRequest, ChatResponse};
use crate::embeddings::{EmbeddingRequest, EmbeddingResponse};
use crate::error::{Error, Result};
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

/// One embeddings call to an upstream.
#[derive(Debug, Clone, Copy)]
pub struct EmbedCall<'a> {
    /// The request, with `model` already set to the upstream's model id.
    pub request: &'a EmbeddingRequest,
    /// The key to authenticate with: the caller's own (BYOK) or the platform's.
    pub api_key: Option<&'a Secret>,
}

/// An upstream LLM service.
///
/// Implementations translate the provider-neutral request to their wire format and back. They
/// must never put the key in an error message or a log line.
///
/// # Implementing it
///
/// A provider that answers every request with a fixed text, whole or as a stream:
///
/// ```
/// use std::sync::Arc;
///
/// use async_trait::async_trait;
/// use futures::StreamExt;
/// use llmgate_core::catalog::Deployment;
/// use llmgate_core::chat::{ChatChunk, ChatRequest, ChatResponse, FinishReason, Message, Usage};
/// use llmgate_core::pricing::ModelPrice;
/// use llmgate_core::provider::{ChunkStream, ProviderCall};
/// use llmgate_core::{Caller, Gateway, Provider, Result, tokens};
///
/// #[derive(Debug)]
/// struct Canned {
///     text: String,
/// }
///
/// #[async_trait]
/// impl Provider for Canned {
///     fn name(&self) -> &str {
///         "canned"
///     }
///
///     fn requires_key(&self) -> bool {
///         false
///     }
///
///     async fn chat(&self, call: ProviderCall<'_>) -> Result<ChatResponse> {
///         let usage = Usage::new(tokens::estimate_prompt_tokens(call.request), 2);
///         Ok(ChatResponse::assistant(&call.request.model, &self.text)
///             .with_id("canned-1")
///             .with_usage(usage))
///     }
///
///     async fn chat_stream(&self, call: ProviderCall<'_>) -> Result<ChunkStream> {
///         let model = call.request.model.as_str();
///         let chunks = [
///             ChatChunk::start("canned-1", model, 0),
///             ChatChunk::text("canned-1", model, 0, &self.text),
///             ChatChunk::finish("canned-1", model, 0, FinishReason::Stop),
///             // The last chunk carries the usage the gateway charges by.
///             ChatChunk::empty("canned-1", model, 0)
///                 .with_usage(Usage::new(tokens::estimate_prompt_tokens(call.request), 2)),
///         ];
///         Ok(futures::stream::iter(chunks.map(Ok)).boxed())
///     }
/// }
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<()> {
///     let gateway = Gateway::builder()
///         .provider(Arc::new(Canned { text: "hi there".into() }))
///         .model(Deployment::new("canned", "canned", "canned-v1").with_price(ModelPrice::default()))
///         .build();
///     let request = ChatRequest::new("canned", vec![Message::user("hello")]);
///     let mut stream = gateway.chat_stream(&Caller::admin(), request).await?;
///     let mut text = String::new();
///     while let Some(chunk) = stream.next().await {
///         for choice in chunk?.choices {
///             text.extend(choice.delta.content);
///         }
///     }
///     assert_eq!(text, "hi there");
///     Ok(())
/// }
/// ```
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

    /// Embeddings. Vectors may come back in either encoding (the gateway converts them to the
    /// one asked for); `usage` should be filled in, counted if the upstream did not say. The
    /// default refuses: the provider has no embeddings.
    async fn embed(&self, call: EmbedCall<'_>) -> Result<EmbeddingResponse> {
        let _ = call;
        Err(Error::invalid_request(format!(
            "Provider `{}` has no embeddings endpoint.",
            self.name()
        ))
        .with_param("model")
        .with_code("embeddings_unsupported"))
    }

    /// The upstream's own count of the request's input tokens, for upstreams with a counting
    /// endpoint; `None` (the default) when there is none and the gateway estimates instead.
    /// Counting is free: the gateway holds and charges nothing for it.
    async fn count_tokens(&self, _call: ProviderCall<'_>) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// Compile-time check that the trait stays object-safe.
const _: Option<Arc<dyn Provider>> = None;
