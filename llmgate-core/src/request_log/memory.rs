//! Request-log rows in memory: for tests and embedders without a database.

use std::sync::Mutex;

use async_trait::async_trait;

use super::entry::{LogEntry, LoggedRequest};
use super::query::LogQuery;
use super::store::RequestLogStore;
use crate::error::Result;

/// A [`RequestLogStore`] in a `Vec`, ids from 1.
#[derive(Debug, Default)]
pub struct MemoryRequestLog {
    rows: Mutex<Vec<LoggedRequest>>,
}

impl MemoryRequestLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, Vec<LoggedRequest>> {
        crate::sync::lock(&self.rows)
    }
}

#[async_trait]
impl RequestLogStore for MemoryRequestLog {
    async fn append(&self, entries: &[LogEntry]) -> Result<()> {
        let mut rows = self.rows();
        for entry in entries {
            let id = rows.last().map_or(1, |row| row.id + 1);
            rows.push(LoggedRequest::from_entry(id, entry));
        }
        Ok(())
    }

    async fn list(&self, query: &LogQuery) -> Result<Vec<LoggedRequest>> {
        let mut rows: Vec<LoggedRequest> = self
            .rows()
            .iter()
            .filter(|row| query.admits(row))
            .cloned()
            .collect();
        rows.sort_unstable_by_key(|row| std::cmp::Reverse((row.created_at, row.id)));
        rows.truncate(query.page_size() as usize);
        Ok(rows)
    }

    async fn get(&self, id: i64) -> Result<Option<LoggedRequest>> {
        Ok(self.rows().iter().find(|row| row.id == id).cloned())
    }

    async fn prune(&self, before_ms: i64) -> Result<u64> {
        let mut rows = self.rows();
        let before = rows.len();
        rows.retain(|row| row.created_at >= before_ms);
        Ok((before - rows.len()) as u64)
    }
}
