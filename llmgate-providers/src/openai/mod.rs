//! The OpenAI chat completions wire family: OpenAI itself and every compatible vendor.

use std::collections::BTreeMap;
use std::time::Duration;

/// Configuration of one OpenAI-compatible upstream.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The configured provider name.
    pub name: String,
    /// Base URL up to and including the version, e.g. `https://api.openai.com/v1`.
    pub api_base: String,
    /// Whole-request timeout (for streams: until the first byte, then between events).
    pub timeout: Duration,
    /// Extra headers for every request.
    pub headers: BTreeMap<String, String>,
}

/// A provider speaking OpenAI's chat completions protocol.
#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    config: OpenAiConfig,
}

impl OpenAiCompatible {
    pub fn new(config: OpenAiConfig) -> Result<Self, std::io::Error> {
        Ok(Self { config })
    }
}

// Placeholder until the adapter lands (the helper replaces this whole impl).
#[async_trait::async_trait]
impl llmgate_core::Provider for OpenAiCompatible {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn chat(
        &self,
        _call: llmgate_core::ProviderCall<'_>,
    ) -> llmgate_core::Result<llmgate_core::ChatResponse> {
        Err(llmgate_core::Error::internal(
            "openai adapter not implemented",
        ))
    }

    async fn chat_stream(
        &self,
        _call: llmgate_core::ProviderCall<'_>,
    ) -> llmgate_core::Result<llmgate_core::ChunkStream> {
        Err(llmgate_core::Error::internal(
            "openai adapter not implemented",
        ))
    }
}
