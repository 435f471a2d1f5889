//! One request's row, filled in as the request goes: who (at dispatch, once the key is
//! known), what was asked (the handler), how it was routed and what it cost (the pipeline's
//! answer, or a stream's last chunk), the status (dispatch). The row is queued when the last
//! holder lets go: at the end of dispatch for a whole answer, when the body ends (or the
//! client leaves) for a stream. Queueing never waits (see `llmgate_core::request_log`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use llmgate_core::chat::{ChatChunk, Usage};
use llmgate_core::gateway::{AttemptLog, CompletionStream, RouteInfo};
use llmgate_core::pricing::CostBreakdown;
use llmgate_core::request_log::{LogEntry, RequestLogWriter, bounded, millis};
use llmgate_core::sync;
use llmgate_core::{Caller, Error};

use super::log::RequestLog;

/// A request being recorded. Cheap to clone; the row is queued when the last clone drops.
#[derive(Debug, Clone)]
pub(crate) struct Recording(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    entry: Mutex<LogEntry>,
    started: Instant,
    writer: RequestLogWriter,
    /// Where the gateway leaves the upstream calls of a failed request.
    attempts: AttemptLog,
    store_bodies: bool,
}

/// Who a recorded request is from.
pub(crate) struct Who {
    pub user_id: Arc<str>,
    pub key_id: Option<Arc<str>>,
    /// The team a team key spends for.
    pub team_id: Option<Arc<str>>,
}

impl Recording {
    /// Start recording a request to `endpoint` that arrived at `started`; `None` when the
    /// request log is off.
    pub fn start(
        log: &RequestLog,
        started: Instant,
        request_id: Arc<str>,
        who: Who,
        endpoint: &'static str,
    ) -> Option<Self> {
        let writer = log.writer.clone()?;
        let created_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |now| i64::try_from(now.as_millis()).unwrap_or(i64::MAX))
            - i64::try_from(started.elapsed().as_millis()).unwrap_or(0);
        let entry = LogEntry {
            request_id,
            created_at_ms,
            user_id: who.user_id,
            key_id: who.key_id,
            team_id: who.team_id,
            endpoint,
            ..LogEntry::default()
        };
        Some(Self(Arc::new(Shared {
            entry: Mutex::new(entry),
            started,
            writer,
            attempts: AttemptLog::new(),
            store_bodies: log.store_bodies,
        })))
    }

    fn entry(&self) -> MutexGuard<'_, LogEntry> {
        sync::lock(&self.0.entry)
    }

    /// The caller the pipeline runs as, leaving a failure's upstream calls in this row.
    pub fn caller(&self, caller: Caller) -> Caller {
        caller.with_attempt_log(self.0.attempts.clone())
    }

    /// The body was read: the model asked for, whether it streams, and (with
    /// `logging.store_bodies`) the body itself.
    pub fn asked(&self, model: &str, stream: bool, body: &[u8]) {
        let prompt = self
            .0
            .store_bodies
            .then(|| bounded(&String::from_utf8_lossy(body)));
        let mut entry = self.entry();
        entry.requested_model = Some(model.to_owned());
        entry.stream = stream;
        entry.prompt = prompt;
    }

    /// How the request was served.
    pub fn routed(&self, route: &RouteInfo) {
        let mut entry = self.entry();
        entry.model = Some(route.model.clone());
        entry.provider = Some(route.provider.clone());
        entry.attempts.clone_from(&route.attempt_log);
        entry.key_source = Some(route.key_source.as_str());
    }

    /// What an answer used and cost.
    pub fn billed(&self, usage: Option<&Usage>, cost: &CostBreakdown) {
        let mut entry = self.entry();
        if let Some(usage) = usage {
            entry.tokens = usage.classes();
        }
        entry.cost_micros = cost.cost_micros;
        entry.cost_breakdown = Some(*cost);
    }

    /// A whole answer's text, kept with `logging.store_bodies` only (and only then made).
    pub fn answer(&self, text: impl FnOnce() -> String) {
        if self.0.store_bodies {
            self.entry().answer = Some(bounded(&text()));
        }
    }

    /// The request failed with `error` (before or after the first byte).
    pub fn failed(&self, error: &Error) {
        let code = error.code().unwrap_or(error.kind().type_name());
        self.entry().error_code = Some(code.to_owned());
    }

    /// The status answered.
    pub fn answered(&self, status: u16) {
        self.entry().status = status;
    }

    /// Watch a stream: time to its first chunk, the usage and cost its last chunk carries, a
    /// failure after the first byte, and (with `logging.store_bodies`) its text. The row is
    /// queued once the stream is dropped.
    pub fn watch(&self, stream: CompletionStream) -> CompletionStream {
        let recording = self.clone();
        let mut first = true;
        stream.inspect(move |item| {
            if std::mem::take(&mut first) {
                recording.entry().ttfb_ms = Some(millis(recording.0.started.elapsed()));
            }
            match item {
                Ok(chunk) => recording.chunk(chunk),
                Err(error) => recording.failed(error),
            }
        })
    }

    fn chunk(&self, chunk: &ChatChunk) {
        if let (Some(cost), Some(usage)) = (chunk.cost(), &chunk.usage) {
            self.billed(Some(usage), cost);
        }
        if self.0.store_bodies {
            let mut entry = self.entry();
            for choice in &chunk.choices {
                if let Some(text) = &choice.delta.content {
                    let answer = entry.answer.get_or_insert_with(String::new);
                    if answer.len() + text.len() <= llmgate_core::request_log::MAX_BODY_BYTES {
                        answer.push_str(text);
                    }
                }
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let mut entry = std::mem::take(sync::get_mut(&mut self.entry));
        entry.latency_ms = millis(self.started.elapsed());
        if entry.attempts.is_empty() {
            entry.attempts = self.attempts.take();
        }
        if entry.status == 0 {
            // Dispatch never got to answer: the handler panicked (a 500).
            entry.status = 500;
            entry
                .error_code
                .get_or_insert_with(|| "internal_error".to_owned());
        }
        self.writer.log(entry);
    }
}
