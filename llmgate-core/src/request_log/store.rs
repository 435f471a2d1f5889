//! Where request-log rows are kept: the trait every backend implements.

use async_trait::async_trait;

use super::entry::{LogEntry, LoggedRequest};
use super::query::LogQuery;
use crate::error::Result;

/// Where request-log rows are kept.
#[async_trait]
pub trait RequestLogStore: Send + Sync + std::fmt::Debug {
    /// Append rows, in one transaction where the backend has them.
    async fn append(&self, entries: &[LogEntry]) -> Result<()>;

    /// The rows matching `query`, newest first, at most `query.limit`.
    async fn list(&self, query: &LogQuery) -> Result<Vec<LoggedRequest>>;

    /// One row by id.
    async fn get(&self, id: i64) -> Result<Option<LoggedRequest>>;

    /// Delete rows created before `before_ms` (unix milliseconds); returns how many.
    async fn prune(&self, before_ms: i64) -> Result<u64>;
}

// The backend is chosen from configuration at run time.
const _: Option<&dyn RequestLogStore> = None;
