//! The wire families providers speak, and the default base URLs of the families that have one.
//! A leaf: the presets, the adapters and the builder all name these.

/// The wire family a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFamily {
    /// OpenAI's chat completions API, spoken by OpenAI and most vendors (`/v1/chat/completions`).
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// Ollama's native chat API (`/api/chat`, NDJSON streams).
    Ollama,
    /// HuggingFace's OpenAI-compatible router; the OpenAI adapter with HuggingFace's base URL.
    HuggingFace,
    /// The offline echo provider; needs no network and no key.
    Demo,
}

/// Where Anthropic's API lives.
pub(crate) const ANTHROPIC_API_BASE: &str = "https://api.anthropic.com";
/// Where a local Ollama listens by default.
pub(crate) const OLLAMA_API_BASE: &str = "http://127.0.0.1:11434";
