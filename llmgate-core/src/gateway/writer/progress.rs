//! How far the queue is written, and the read barrier built on it.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, watch};

use crate::credits::forwarding::ForwardingCreditStore;
use crate::credits::{Credit, CreditOutcome, CreditStore, Page, Transaction, UsageQuery, UsageRow};
use crate::error::Result;
use crate::gateway::lease::Leases;

/// The longest a read waits for queued writes. Longer means the database is failing (a settle
/// is being retried); the read then goes ahead and answers (or fails) as the database does.
const MAX_FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Counts shared by the queue, the writer task and the read barrier.
#[derive(Debug)]
pub(super) struct Progress {
    /// Writes sent to the writer, numbered in queue order (incremented under `order`).
    pub queued: AtomicU64,
    /// Every write numbered up to this is finished (written, or failed for good).
    pub written: watch::Sender<u64>,
    /// Makes "number, send" one step, so numbers follow the queue's order.
    pub order: Mutex<()>,
    /// Wakes a lingering writer: a hold, a settle or a flush was queued or asked for.
    pub urgent: Notify,
    /// Someone waits for the queue to be written (a read, a credit, a shutdown): stop lingering.
    pub flush_wanted: AtomicBool,
    /// The last batch reached the database. While it does not, holds are awaited again, so a
    /// paid request is refused rather than served with nothing written.
    pub healthy: AtomicBool,
}

impl Progress {
    /// Nothing queued yet, and healthy.
    pub fn new() -> Self {
        Self {
            queued: AtomicU64::new(0),
            written: watch::Sender::new(0),
            order: Mutex::new(()),
            urgent: Notify::new(),
            flush_wanted: AtomicBool::new(false),
            healthy: AtomicBool::new(true),
        }
    }

    /// Whether writes are queued and not yet written.
    pub fn pending(&self) -> bool {
        self.queued.load(Ordering::Acquire) > *self.written.borrow()
    }

    /// Ask the writer to commit what is queued now instead of lingering.
    pub fn hurry(&self) {
        self.flush_wanted.store(true, Ordering::Release);
        self.urgent.notify_one();
    }

    /// Completes once every write queued before this call is finished, or after
    /// [`MAX_FLUSH_WAIT`].
    pub async fn flushed(&self) {
        let target = self.queued.load(Ordering::Acquire);
        let mut written = self.written.subscribe();
        if *written.borrow() < target {
            self.hurry();
        }
        // Err: the writer is gone, and nothing more will be written.
        let _ =
            tokio::time::timeout(MAX_FLUSH_WAIT, written.wait_for(|&done| done >= target)).await;
    }

    /// Every write numbered up to `done` is finished (the mark never moves back).
    pub fn finished_up_to(&self, done: u64) {
        self.written.send_if_modified(|written| {
            let moved = done > *written;
            *written = (*written).max(done);
            moved
        });
    }
}

/// The store as the gateway's users see it: reads and credits first wait for queued writes.
pub(super) struct Flushed {
    inner: Arc<dyn CreditStore>,
    progress: Arc<Progress>,
    leases: Option<Arc<Leases>>,
}

impl Flushed {
    /// `inner`, read after the writes `progress` counts; a balance less what this replica's
    /// requests in flight hold from `leases`.
    pub fn new(
        inner: Arc<dyn CreditStore>,
        progress: Arc<Progress>,
        leases: Option<Arc<Leases>>,
    ) -> Self {
        Self {
            inner,
            progress,
            leases,
        }
    }
}

impl std::fmt::Debug for Flushed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flushed")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ForwardingCreditStore for Flushed {
    fn inner(&self) -> &dyn CreditStore {
        &*self.inner
    }

    async fn credit(&self, credit: Credit) -> Result<CreditOutcome> {
        // A top-up lands after the charges of the answers given before it, as it would if
        // they had been written at once (the ledger's order, low-balance alerts).
        self.progress.flushed().await;
        self.inner.credit(credit).await
    }

    async fn balance(&self, user_id: &str) -> Result<i64> {
        self.progress.flushed().await;
        // The store counts leases as spendable; what requests in flight hold from them is not.
        let held = self
            .leases
            .as_ref()
            .map_or(0, |leases| leases.in_flight_micros(user_id));
        Ok(self.inner.balance(user_id).await? - held)
    }

    async fn transactions(&self, user_id: &str, page: Page) -> Result<Vec<Transaction>> {
        self.progress.flushed().await;
        self.inner.transactions(user_id, page).await
    }

    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>> {
        self.progress.flushed().await;
        self.inner.usage(query).await
    }
}
