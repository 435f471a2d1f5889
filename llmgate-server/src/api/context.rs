//! What every handler may need about a request besides its body and its caller. A leaf: the
//! dispatcher builds it, handlers read it, and it depends on neither.

use std::sync::Arc;
use std::time::Instant;

use crate::request_log::Recording;
use crate::telemetry::RequestTrace;

/// Facts about the request being answered.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    pub request_id: Arc<str>,
    /// When the request arrived.
    pub started: Instant,
    /// The request's row in the request log, on the LLM endpoints once the caller is known
    /// (and the log is on).
    pub recording: Option<Recording>,
    /// The request's server span (empty unless traces are on and this is a model endpoint):
    /// handlers record the model, route, tokens and cost on it.
    pub trace: RequestTrace,
}

impl RequestContext {
    /// Note something on the request's row, when it has one.
    pub fn record(&self, note: impl FnOnce(&Recording)) {
        if let Some(recording) = &self.recording {
            note(recording);
        }
    }
}
