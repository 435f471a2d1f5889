//! What every adapter is configured with: where its upstream is and how to reach it.

use std::collections::BTreeMap;
use std::time::Duration;

/// How long a call may take unless configured otherwise: ten minutes, since long answers from
/// large or reasoning models (and local models that must load first) take minutes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Configuration of one upstream, the same for every wire family.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The configured provider name.
    pub name: String,
    /// Base URL, as the family writes it: OpenAI-compatible up to and including the version
    /// (`https://api.openai.com/v1`), Anthropic without it (`https://api.anthropic.com`; a
    /// trailing `/v1` is accepted too), Ollama without any path (`http://127.0.0.1:11434`).
    pub api_base: String,
    /// For whole answers the limit on the whole exchange; for streams the limit until the
    /// response head, then on the silence between two network reads.
    pub timeout: Duration,
    /// Extra headers for every request (e.g. `anthropic-beta`, or for a proxy in front of the
    /// upstream).
    pub headers: BTreeMap<String, String>,
}

impl UpstreamConfig {
    /// An upstream at `api_base` with the [`DEFAULT_TIMEOUT`] and no extra headers.
    pub fn new(name: impl Into<String>, api_base: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            api_base: api_base.into(),
            timeout: DEFAULT_TIMEOUT,
            headers: BTreeMap::new(),
        }
    }
}
