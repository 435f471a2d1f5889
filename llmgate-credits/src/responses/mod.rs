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
//! - **Retention.** A store given a retention
//!   ([`SqlResponseStore::with_retention`]) no longer sees older rows: they read, walk and
//!   delete as if gone from the moment they expire. [`SqlResponseStore::prune`] then deletes
//!   them, by age and in batches; [`spawn_pruner`] runs it periodically.

mod chain;
mod prune;
mod sql;
mod types;

pub use prune::spawn_pruner;
pub use sql::SqlResponseStore;
pub use types::{MAX_CHAIN_DEPTH, StoredResponse};
