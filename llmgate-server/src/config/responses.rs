//! `responses:` — the answers of `POST /v1/responses` kept for `previous_response_id`.

use serde::Deserialize;

/// `responses:` — how long stored responses are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponsesConfig {
    /// Days a stored response is kept (they hold users' prompts); 0 keeps them until their
    /// owner deletes them.
    pub retention_days: u32,
    /// How often each replica deletes the expired ones (also once at start).
    pub prune_every_secs: u64,
}

impl Default for ResponsesConfig {
    fn default() -> Self {
        Self {
            retention_days: 30,
            prune_every_secs: 3600,
        }
    }
}

impl ResponsesConfig {
    /// The longest retention accepted: a hundred years (beyond it, use 0: keep forever).
    pub const MAX_RETENTION_DAYS: u32 = 36_500;

    /// How long a stored response is kept; `None` when forever.
    pub fn retention(&self) -> Option<std::time::Duration> {
        (self.retention_days > 0)
            .then(|| std::time::Duration::from_secs(u64::from(self.retention_days) * 86_400))
    }
}
