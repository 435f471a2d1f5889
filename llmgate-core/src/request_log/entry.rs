//! A request-log row: as the server writes it ([`LogEntry`]) and as a store reads it back
//! ([`LoggedRequest`]).

use std::sync::Arc;

use serde::Serialize;

use crate::gateway::AttemptRecord;
use crate::pricing::{CostBreakdown, TokenClasses};

/// The most bytes of a prompt or an answer a row keeps (`logging.store_bodies`).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// One request, as the server logs it.
#[derive(Debug, Clone, Default)]
pub struct LogEntry {
    /// The `x-request-id` (the client's, or generated).
    pub request_id: Arc<str>,
    /// Unix milliseconds when the request arrived.
    pub created_at_ms: i64,
    /// The user whose key made the request (`admin` for the master key); for a team key, the
    /// member who made the key.
    pub user_id: Arc<str>,
    /// The API key that authenticated (`None` for the master key).
    pub key_id: Option<Arc<str>>,
    /// The team whose balance a team key spends; `None` for a user's own key.
    pub team_id: Option<Arc<str>>,
    /// The endpoint as documented (`/v1/chat/completions`), whatever alias was called.
    pub endpoint: &'static str,
    /// The model the client asked for, once the body was read.
    pub requested_model: Option<String>,
    /// The configured model that served, and its provider.
    pub model: Option<String>,
    /// The configured provider that served.
    pub provider: Option<String>,
    /// Each upstream call, in order.
    pub attempts: Vec<AttemptRecord>,
    /// The HTTP status answered.
    pub status: u16,
    /// The error's code (or type) when the request failed, also after a stream's first byte.
    pub error_code: Option<String>,
    /// From arrival to the last byte (a stream's end).
    pub latency_ms: u64,
    /// Time to the first byte of a stream's body.
    pub ttfb_ms: Option<u64>,
    /// The tokens of each class, from the upstream's usage (or the gateway's estimate).
    pub tokens: TokenClasses,
    /// Micro-credits charged.
    pub cost_micros: i64,
    /// What each token class cost.
    pub cost_breakdown: Option<CostBreakdown>,
    /// `platform` or `byok`, once an upstream answered.
    pub key_source: Option<&'static str>,
    /// Whether the answer was streamed.
    pub stream: bool,
    /// The request body, only with `logging.store_bodies`, cut to [`MAX_BODY_BYTES`].
    pub prompt: Option<String>,
    /// The answer's text, likewise.
    pub answer: Option<String>,
}

/// One upstream call of a logged request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LoggedAttempt {
    /// The configured provider called.
    pub provider: String,
    /// The configured model name called.
    pub model: String,
    /// 200 for the call that answered, else the status it failed with.
    pub status: u16,
    /// The failure's error type (`upstream_error`, `timeout_error`, ...); absent on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// From sending the call to its answer or first chunk.
    pub latency_ms: u64,
}

impl LoggedAttempt {
    /// The stored form of a call.
    pub fn of(record: &AttemptRecord) -> Self {
        Self {
            provider: record.deployment.provider.clone(),
            model: record.deployment.name.clone(),
            status: record.status(),
            error: record.failure.map(|f| f.kind.type_name().to_owned()),
            latency_ms: millis(record.latency),
        }
    }
}

/// A call as [`LoggedAttempt`] serializes, borrowed from its record: the same JSON without a
/// copy of its strings.
#[derive(Serialize)]
struct AttemptView<'a> {
    provider: &'a str,
    model: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    latency_ms: u64,
}

impl LoggedAttempt {
    /// The JSON array of `records` in their stored form, as a row's `attempts` column holds
    /// it; made for every logged request, so written from the records without copying them.
    pub fn json_of(records: &[AttemptRecord]) -> String {
        let views = records.iter().map(|record| AttemptView {
            provider: &record.deployment.provider,
            model: &record.deployment.name,
            status: record.status(),
            error: record.failure.map(|f| f.kind.type_name()),
            latency_ms: millis(record.latency),
        });
        let mut json = Vec::with_capacity(128 * records.len().max(1));
        let mut serializer = serde_json::Serializer::new(&mut json);
        if serde::Serializer::collect_seq(&mut serializer, views).is_err() {
            return "[]".into();
        }
        // serde_json writes UTF-8 only.
        String::from_utf8(json).unwrap_or_else(|_| "[]".into())
    }
}

/// Whole milliseconds, saturating.
pub fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A logged request read back: the API's shape. The fields are [`LogEntry`]'s, with the
/// tokens by class spelled out as the usage API spells them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[allow(missing_docs, reason = "the same fields as LogEntry, documented there")]
pub struct LoggedRequest {
    /// The row's id: the API's `{id}` and cursor.
    pub id: i64,
    pub request_id: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub user_id: String,
    pub key_id: Option<String>,
    pub team_id: Option<String>,
    pub endpoint: String,
    pub requested_model: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub attempts: Vec<LoggedAttempt>,
    pub status: u16,
    pub error_code: Option<String>,
    pub latency_ms: u64,
    pub ttfb_ms: Option<u64>,
    pub prompt_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub completion_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_micros: i64,
    /// What each token class cost (micro-credits as exact decimal strings).
    pub cost_breakdown: Option<serde_json::Value>,
    pub key_source: Option<String>,
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

impl LoggedRequest {
    /// The row a store keeps for `entry` under `id` (the memory store's, and the SQL stores'
    /// round-trip tests).
    pub fn from_entry(id: i64, entry: &LogEntry) -> Self {
        Self {
            id,
            request_id: entry.request_id.to_string(),
            created_at: entry.created_at_ms,
            user_id: entry.user_id.to_string(),
            key_id: entry.key_id.as_deref().map(str::to_owned),
            team_id: entry.team_id.as_deref().map(str::to_owned),
            endpoint: entry.endpoint.to_owned(),
            requested_model: entry.requested_model.clone(),
            model: entry.model.clone(),
            provider: entry.provider.clone(),
            attempts: entry.attempts.iter().map(LoggedAttempt::of).collect(),
            status: entry.status,
            error_code: entry.error_code.clone(),
            latency_ms: entry.latency_ms,
            ttfb_ms: entry.ttfb_ms,
            prompt_tokens: entry.tokens.prompt(),
            cache_read_tokens: entry.tokens.cache_read,
            cache_write_tokens: entry.tokens.cache_write,
            completion_tokens: entry.tokens.output,
            reasoning_tokens: entry.tokens.reasoning,
            cost_micros: entry.cost_micros,
            cost_breakdown: entry
                .cost_breakdown
                .and_then(|b| serde_json::to_value(b).ok()),
            key_source: entry.key_source.map(str::to_owned),
            stream: entry.stream,
            prompt: entry.prompt.clone(),
            answer: entry.answer.clone(),
        }
    }
}

/// `text` cut to at most [`MAX_BODY_BYTES`], on a character boundary.
pub fn bounded(text: &str) -> String {
    if text.len() <= MAX_BODY_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_BODY_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::catalog::Deployment;
    use crate::gateway::AttemptFailure;

    #[test]
    fn attempts_are_written_as_their_stored_form_serializes() {
        let record = |name, failure, millis| AttemptRecord {
            deployment: Arc::new(Deployment::new(name, "openai", "m")),
            failure,
            latency: std::time::Duration::from_micros(millis),
        };
        let failure = AttemptFailure {
            kind: ErrorKind::Upstream,
            status: 503,
        };
        let failed = record("a \"quoted\" name", Some(failure), 1_500_000);
        let answered = record("fast", None, 2_999);
        for records in [vec![], vec![answered.clone()], vec![failed, answered]] {
            let stored: Vec<LoggedAttempt> = records.iter().map(LoggedAttempt::of).collect();
            assert_eq!(
                LoggedAttempt::json_of(&records),
                serde_json::to_string(&stored).unwrap()
            );
        }
    }

    #[test]
    fn bodies_are_cut_on_a_character_boundary() {
        let text = "é".repeat(MAX_BODY_BYTES);
        let cut = bounded(&text);
        assert!(cut.len() <= MAX_BODY_BYTES && cut.len() >= MAX_BODY_BYTES - 1);
        assert_eq!(bounded("short"), "short");
    }
}
