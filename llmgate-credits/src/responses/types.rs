//! The store's values: a leaf the rest of the module builds on.

/// The most responses one conversation may chain through `previous_response_id`: the walk of
/// the newest one reads at most this many rows.
pub const MAX_CHAIN_DEPTH: usize = 1000;

/// One stored response: what the gateway answered, with the request's own input items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// `resp_…`, made by the gateway.
    pub id: String,
    /// The caller's user id.
    pub owner: String,
    /// Unix seconds.
    pub created_at: i64,
    /// The model as the client named it.
    pub model: String,
    /// The response this one continues, if any.
    pub previous_response_id: Option<String>,
    /// A JSON array: this request's own input items (not those of earlier responses).
    pub input_items: String,
    /// A JSON object: the whole `response` object as it was answered.
    pub response: String,
}
