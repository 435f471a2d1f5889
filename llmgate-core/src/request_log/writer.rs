//! The queue between requests and the request-log store, and the task that writes it in
//! batches.
//!
//! A sibling of the ledger's queue (`gateway/writer/`), built the same way — a bounded queue,
//! one task taking whatever is queued and writing it in one statement batch — but with the
//! opposite answer to a full queue: a log row is never worth a wait, so when the queue is
//! full (the database is slow or down) the row is dropped and counted in
//! `llmgate_request_log_dropped_total`, and the request goes on. Nothing here touches the
//! ledger, so a slow log can never hold up a settle, and the response never waits for a row.
//!
//! Rows linger up to [`LINGER`] for company, so a busy gateway writes a few batches per
//! second. A batch that fails is counted in `llmgate_request_log_write_failures_total` and
//! not retried: a log row is an observation, not money.

use std::sync::Arc;
use std::time::Duration;

use metrics::Counter;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::entry::LogEntry;
use super::store::RequestLogStore;
use crate::metrics::{REQUEST_LOG_DROPPED, REQUEST_LOG_WRITE_FAILURES};

/// How long a row may wait for others before its batch is written.
pub const LINGER: Duration = Duration::from_millis(100);
/// The most rows written together.
const MAX_BATCH: usize = 512;
/// The longest a flush waits (a database that keeps failing must not stall a reader).
const FLUSH_WAIT: Duration = Duration::from_secs(2);

enum Message {
    Row(Box<LogEntry>),
    /// Write what is queued now, then answer.
    Flush(oneshot::Sender<()>),
}

/// The sending side of the request log. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RequestLogWriter {
    sender: mpsc::Sender<Message>,
    dropped: Counter,
}

impl RequestLogWriter {
    /// A queue of at most `capacity` rows to `store`, its writer task on the current runtime.
    /// `None` outside a runtime.
    pub fn spawn(store: Arc<dyn RequestLogStore>, capacity: usize) -> Option<Self> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let failures = metrics::counter!(REQUEST_LOG_WRITE_FAILURES);
        runtime.spawn(write_batches(receiver, store, failures));
        Some(Self {
            sender,
            dropped: metrics::counter!(REQUEST_LOG_DROPPED),
        })
    }

    /// Queue a row; never waits. A full queue drops it (and counts it).
    pub fn log(&self, entry: LogEntry) {
        if self.sender.try_send(Message::Row(Box::new(entry))).is_err() {
            self.dropped.increment(1);
        }
    }

    /// Completes once the rows queued before this call are written (or failed), or after two
    /// seconds.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        let asked = async {
            if self.sender.send(Message::Flush(done)).await.is_ok() {
                let _ = written.await;
            }
        };
        let _ = tokio::time::timeout(FLUSH_WAIT, asked).await;
    }
}

/// Take rows as they come, linger for company, write each batch; ends once every sender is
/// gone and the queue is drained.
async fn write_batches(
    mut receiver: mpsc::Receiver<Message>,
    store: Arc<dyn RequestLogStore>,
    failures: Counter,
) {
    let mut batch: Vec<LogEntry> = Vec::with_capacity(MAX_BATCH);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = receiver.recv().await {
        let mut deadline = None;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Row(entry) => {
                    batch.push(*entry);
                    deadline.get_or_insert_with(|| Instant::now() + LINGER);
                }
                Message::Flush(done) => {
                    waiting.push(done);
                    deadline = Some(Instant::now());
                }
            }
            if batch.len() >= MAX_BATCH {
                break;
            }
            next = match receiver.try_recv() {
                Ok(message) => Some(message),
                Err(_) => match deadline {
                    Some(at) => tokio::time::timeout_at(at, receiver.recv())
                        .await
                        .ok()
                        .flatten(),
                    None => None,
                },
            };
        }
        if !batch.is_empty() {
            if let Err(error) = store.append(&batch).await {
                failures.increment(batch.len() as u64);
                tracing::warn!(%error, rows = batch.len(), "writing request-log rows failed; they are lost");
            }
            batch.clear();
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_log::{LogQuery, MemoryRequestLog};

    fn entry(user: &str) -> LogEntry {
        LogEntry {
            request_id: Arc::from("r"),
            user_id: Arc::from(user),
            endpoint: "/v1/chat/completions",
            status: 200,
            ..LogEntry::default()
        }
    }

    #[tokio::test]
    async fn rows_are_written_in_order_and_a_flush_waits_for_them() {
        let store = Arc::new(MemoryRequestLog::new());
        let writer = RequestLogWriter::spawn(store.clone(), 16).unwrap();
        for user in ["a", "b", "c"] {
            writer.log(entry(user));
        }
        writer.flush().await;
        let query = LogQuery {
            limit: 10,
            ..LogQuery::default()
        };
        let rows = store.list(&query).await.unwrap();
        let users: Vec<&str> = rows.iter().map(|r| r.user_id.as_str()).collect();
        assert_eq!(users, ["c", "b", "a"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_drops_rows_instead_of_waiting() {
        let store = Arc::new(MemoryRequestLog::new());
        let writer = RequestLogWriter::spawn(store.clone(), 2).unwrap();
        // The writer task has not run yet (one thread, no await): the queue holds two.
        for _ in 0..5 {
            writer.log(entry("a"));
        }
        writer.flush().await;
        let query = LogQuery {
            limit: 10,
            ..LogQuery::default()
        };
        assert_eq!(store.list(&query).await.unwrap().len(), 2);
    }
}
