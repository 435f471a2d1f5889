//! Stored Responses: the answers of OpenAI's Responses API (`POST /v1/responses` with `store`
//! on) kept in the ledger's database, so that `previous_response_id` rebuilds a conversation on
//! any replica (table `stored_responses`, migration 0400).
//!
//! What the store keeps:
//! - **Owners.** Every row belongs to the user who created it; every read, delete and chain
//!   walk is filtered by that owner. Another user's id reads exactly like an unknown one.
//! - **Bounded walks.** [`SqlResponseStore::conversation`] follows `previous_response_id` in one
//!   recursive query, at most [`MAX_CHAIN_DEPTH`] responses deep; a longer chain is refused
//!   (400 `conversation_too_long`) rather than cut short without a word. A link that is gone
//!   (deleted, expired, or another owner's) ends the chain there: the conversation continues
//!   from the oldest response still stored.
//! - **Retention.** [`SqlResponseStore::prune`] deletes rows by age, in batches;
//!   [`spawn_pruner`] runs it periodically.

mod chain;
mod prune;
mod sql;

pub use prune::spawn_pruner;
pub use sql::SqlResponseStore;

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
