//! The request log: one row per request, what it asked for, how it was served and what it
//! cost, written off the response path and read back by an API.
//!
//! - [`LogEntry`] is a row as the server writes it (typed, cheap to build: the attempts
//!   borrow their deployments, nothing is formatted until the writer task stores it);
//! - [`LoggedRequest`] is a row as a store reads it back, in the API's JSON shape;
//! - [`RequestLogStore`] keeps rows (SQL in `llmgate-credits`, [`MemoryRequestLog`] here);
//! - [`RequestLogWriter`] is the bounded queue and batching task between the two.

mod entry;
mod memory;
mod query;
mod store;
mod writer;

pub use entry::{LogEntry, LoggedAttempt, LoggedRequest, MAX_BODY_BYTES, bounded, millis};
pub use memory::MemoryRequestLog;
pub use query::{Cursor, LogQuery, StatusFilter};
pub use store::RequestLogStore;
pub use writer::RequestLogWriter;
