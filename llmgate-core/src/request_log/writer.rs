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
//! second. While they linger the task sleeps: a row queued then does not wake it (on a
//! two-core machine a wake per request is a context switch on the other core); only a flush,
//! a queue holding a full batch, or the end of the linger does. A batch that fails is counted
//! in `llmgate_request_log_write_failures_total` and not retried: a log row is an
//! observation, not money.

use std::sync::Arc;
use std::time::Duration;

use metrics::Counter;
use tokio::sync::{Notify, mpsc, oneshot};

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
    /// Cuts the writer's linger short: a flush, or a full batch queued.
    hurry: Arc<Notify>,
    /// Queued rows that make a full batch (the queue's capacity if that is smaller).
    full: usize,
    dropped: Counter,
}

impl RequestLogWriter {
    /// A queue of at most `capacity` rows to `store`, its writer task on the current runtime.
    /// `None` outside a runtime.
    pub fn spawn(store: Arc<dyn RequestLogStore>, capacity: usize) -> Option<Self> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let capacity = capacity.max(1);
        let (sender, receiver) = mpsc::channel(capacity);
        let hurry = Arc::new(Notify::new());
        let failures = metrics::counter!(REQUEST_LOG_WRITE_FAILURES);
        runtime.spawn(write_batches(receiver, hurry.clone(), store, failures));
        Some(Self {
            sender,
            hurry,
            full: MAX_BATCH.min(capacity),
            dropped: metrics::counter!(REQUEST_LOG_DROPPED),
        })
    }

    /// Queue a row; never waits. A full queue drops it (and counts it).
    pub fn log(&self, entry: LogEntry) {
        if self.sender.try_send(Message::Row(Box::new(entry))).is_err() {
            self.dropped.increment(1);
            return;
        }
        if self.sender.max_capacity() - self.sender.capacity() >= self.full {
            self.hurry.notify_one();
        }
    }

    /// Completes once the rows queued before this call are written (or failed), or after two
    /// seconds.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        let asked = async {
            if self.sender.send(Message::Flush(done)).await.is_ok() {
                self.hurry.notify_one();
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
    hurry: Arc<Notify>,
    store: Arc<dyn RequestLogStore>,
    failures: Counter,
) {
    let mut batch: Vec<LogEntry> = Vec::with_capacity(MAX_BATCH);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    // Idle, the first message wakes the task; it then sleeps out the linger (unless that
    // message was a flush) and takes what came meanwhile without being woken for it.
    while let Some(first) = receiver.recv().await {
        let mut next = Some(first);
        let mut lingered = false;
        loop {
            match next.take() {
                Some(Message::Row(entry)) => batch.push(*entry),
                Some(Message::Flush(done)) => {
                    waiting.push(done);
                    lingered = true;
                }
                None if lingered => break,
                None => {
                    linger(&hurry).await;
                    lingered = true;
                }
            }
            if batch.len() >= MAX_BATCH {
                break;
            }
            next = receiver.try_recv().ok();
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

/// Sleep [`LINGER`], or less if a flush or a full batch hurries the writer.
async fn linger(hurry: &Notify) {
    let _ = tokio::time::timeout(LINGER, hurry.notified()).await;
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

    async fn rows_in(store: &MemoryRequestLog) -> usize {
        let query = LogQuery {
            limit: 100,
            ..LogQuery::default()
        };
        store.list(&query).await.unwrap().len()
    }

    #[tokio::test(start_paused = true)]
    async fn rows_linger_for_company_then_are_written_without_a_flush() {
        let store = Arc::new(MemoryRequestLog::new());
        let writer = RequestLogWriter::spawn(store.clone(), 16).unwrap();
        writer.log(entry("a"));
        tokio::time::sleep(LINGER / 2).await;
        writer.log(entry("b"));
        assert_eq!(rows_in(&store).await, 0, "still lingering");
        tokio::time::sleep(LINGER).await;
        assert_eq!(
            rows_in(&store).await,
            2,
            "both written in one batch at the linger's end"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_is_written_without_waiting_out_the_linger() {
        let store = Arc::new(MemoryRequestLog::new());
        // A queue of four: four rows make a full batch.
        let writer = RequestLogWriter::spawn(store.clone(), 4).unwrap();
        for _ in 0..4 {
            writer.log(entry("a"));
        }
        tokio::time::sleep(LINGER / 10).await;
        assert_eq!(rows_in(&store).await, 4);
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
