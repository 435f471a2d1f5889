//! `logging:` — the request log.

use serde::Deserialize;

/// `logging:` — one row per request on the LLM endpoints, kept for a while and readable
/// through `GET /api/v1/llm/requests` and the LLM Hub.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// Keep the request log (default true). Off, nothing is queued or written.
    pub request_log: bool,
    /// Rows older than this many days are deleted (every hour); 0 keeps them forever.
    pub request_log_days: u32,
    /// Also keep the request body and the answer's text, each cut to 16 KiB (default false:
    /// the log holds no prompt or answer text).
    pub store_bodies: bool,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            request_log: true,
            request_log_days: 30,
            store_bodies: false,
        }
    }
}
