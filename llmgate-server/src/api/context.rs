//! What every handler may need about a request besides its body and its caller. A leaf: the
//! dispatcher builds it, handlers read it, and it depends on neither.

use std::sync::Arc;

/// Facts about the request being answered.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    pub request_id: Arc<str>,
}
