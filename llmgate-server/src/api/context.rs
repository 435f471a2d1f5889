//! What every handler may need about a request besides its body and its caller. A leaf: the
//! dispatcher builds it, handlers read it, and it depends on neither.

use std::sync::Arc;

use crate::telemetry::RequestTrace;

/// Facts about the request being answered.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    pub request_id: Arc<str>,
    /// The request's server span (empty unless traces are on and this is a model endpoint):
    /// handlers record the model, route, tokens and cost on it.
    pub trace: RequestTrace,
}
