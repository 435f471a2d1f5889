//! The ledger writer: write-behind for the work that follows an answer, group commit for all.
//!
//! Settles, releases and usage records go on one bounded queue; one background task takes
//! whatever is queued (up to [`MAX_BATCH`](queued::MAX_BATCH)) and hands it to
//! [`CreditStore::write_batch`] — one transaction and one commit for the lot where the backend
//! supports it (group commit). The answer does not wait for its settle or usage record, and a
//! busy gateway commits many requests at once.
//!
//! A request still waits for its hold, which is what keeps a balance from going below zero:
//! the hold is written at once, beside the queue (not behind settles that linger for company);
//! refused while writes are queued, it is tried again once they are written, since a queued
//! settle may give back what it needs. With balances kept in memory ([`super::reserve`]) a
//! hold is a subtraction there and its write joins the queue instead. Credits (top-ups,
//! grants) do not use the queue.
//!
//! One job per file ([`queued`] holds the queued write itself):
//! - [`queue`]: putting a write on the queue (and writing it directly when there is no
//!   writer task), with the give-back of balances kept in memory;
//! - [`holds`]: placing holds, awaited beside the queue or reserved in memory;
//! - [`task`]: the writer task, which batches, writes, retries and reports;
//! - [`progress`]: how far the queue is written, and the read barrier built on it
//!   ([`LedgerWriter::flushed_view`]).
//!
//! # What it guarantees
//!
//! - **Each write takes effect at most once, and a queued write reaches the store.** A write
//!   handed to [`LedgerWriter::write`] is queued, or written directly when the writer task is
//!   gone or there is no runtime; a full queue makes the caller wait for room on a task of its
//!   own, so a caller that goes away loses nothing. The writer task hands each queued write to
//!   the store once; only settles and releases are tried again after a failure, and both leave
//!   a hold that is already closed alone, so a retry can never charge twice.
//! - **Order.** Writes are numbered in the order they are queued (numbering and sending are one
//!   step) and a batch keeps that order. A settle or release of a hold reserved in memory is
//!   written in a later batch than the hold itself, with the database's hold id in place of
//!   the provisional one; if the hold could not be written, its settle or release is skipped
//!   (there is nothing to close, and the request goes uncharged). A failed settle does not hold
//!   up later writes: it is retried at the front of a later batch, oldest first.
//! - **What a flush waits for.** [`Progress::flushed`] waits until every write queued before
//!   the call is finished: written, or failed for good. A write being retried keeps every later
//!   number unfinished. The wait is capped at two seconds (a store that keeps failing must not
//!   stall reads). Reads and credits through the flushed view, a hold refused while writes are
//!   queued, and the load of a balance kept in memory use it. A shutdown
//!   ([`Gateway::settled`](super::Gateway::settled)) does not: it cuts the linger short and
//!   waits, without a cap, for the owed work each queued write carries.
//! - **A store error.** A settle or release that failed with an error worth another try (the
//!   database unreachable or busy, no result, a panicking store) is retried with a doubling
//!   wait from 50 ms to 5 s, up to about ten minutes; then its hold stays open until it is
//!   reclaimed at expiry and the request goes uncharged. A write the database refused
//!   (`Internal`) is not retried but parked: logged with everything needed to settle it by
//!   hand and counted in `llmgate_ledger_parked_writes_total`. A failed usage record is
//!   counted in the gateway's usage failures. A batch of which nothing reached the database
//!   marks the writer unhealthy: holds are then awaited even with balances kept in memory, so
//!   a paid request is refused rather than served with nothing written.
//! - **Owed work.** A queued write carries the request's [`Owed`](super::owed::Owed) until it
//!   is finished, so a clean shutdown flushes the queue. A process killed outright loses the
//!   queued writes: each queued settle leaves its hold open until it expires and is reclaimed
//!   (the request is not charged); a queued hold reserved in memory is lost with its request;
//!   each queued usage record of an uncharged request is missing from usage. Nothing can be
//!   charged twice or overspent.
//!
//! Reads and credits through the flushed view (what
//! [`Gateway::credits`](super::Gateway::credits) hands out) first wait for the writes queued
//! before them, so a client that asks for its balance after an answer sees that answer's
//! charge, and a top-up is ordered after it.

mod holds;
mod leased;
mod progress;
mod queue;
mod queued;
mod task;
#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock};

use metrics::Counter;
use tokio::sync::{Semaphore, mpsc};

use super::lease::Leases;
use super::reserve::Reservations;
use crate::credits::CreditStore;
use progress::{Flushed, Progress};
use queued::Queued;
use task::WriterTask;

/// The queue and its writer task (started on first use, on the runtime of that use).
pub(super) struct LedgerWriter {
    credits: Arc<dyn CreditStore>,
    slots: Arc<Semaphore>,
    progress: Arc<Progress>,
    sender: OnceLock<mpsc::UnboundedSender<Queued>>,
    failures: Counter,
    /// Balances kept in memory (`reserve_in_memory`): holds are not waited for.
    reservations: Option<Arc<Reservations>>,
    /// Balance leases (`with_leases`): holds are served from memory against a lease.
    leases: Option<Arc<Leases>>,
    /// The task that gives idle leases back, started with the first lease.
    sweeper: OnceLock<()>,
}

impl std::fmt::Debug for LedgerWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerWriter")
            .field("free_slots", &self.slots.available_permits())
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

impl LedgerWriter {
    /// A writer to `credits` holding at most `capacity` queued writes; beyond that, requests
    /// wait for room (backpressure) rather than lose a write.
    pub fn new(credits: Arc<dyn CreditStore>, capacity: usize, failures: Counter) -> Self {
        Self {
            credits,
            slots: Arc::new(Semaphore::new(capacity.max(1))),
            progress: Arc::new(Progress::new()),
            sender: OnceLock::new(),
            failures,
            reservations: None,
            leases: None,
            sweeper: OnceLock::new(),
        }
    }

    /// Serve holds from balance leases (see [`super::lease`]); a lease with no hold in flight
    /// for `idle` is given back. Only for a store with leases ([`CreditStore::leases`]).
    pub fn with_leases(mut self, idle: std::time::Duration) -> Self {
        self.leases = Some(Arc::new(Leases::new(idle)));
        self
    }

    /// Keep balances in memory and queue holds like settles (see [`super::reserve`]): only
    /// for a ledger no other process writes.
    pub fn reserve_in_memory(mut self) -> Self {
        self.reservations = Some(Arc::new(Reservations::default()));
        self
    }

    /// A view of the store whose reads wait for the writes queued before them.
    pub fn flushed_view(&self) -> Arc<dyn CreditStore> {
        Arc::new(Flushed::new(
            self.credits.clone(),
            self.progress.clone(),
            self.leases.clone(),
        ))
    }

    /// Commit what is queued now instead of lingering (a shutdown is waiting for it).
    pub fn hurry(&self) {
        self.progress.hurry();
    }

    /// Completes once every write queued before this call is written.
    #[cfg(test)]
    pub async fn flushed(&self) {
        self.progress.flushed().await;
    }

    /// The queue's sending end, starting the writer task on the current runtime on first use;
    /// `None` outside a runtime.
    fn sender(&self) -> Option<&mpsc::UnboundedSender<Queued>> {
        if let Some(sender) = self.sender.get() {
            return Some(sender);
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            let task = WriterTask::new(
                receiver,
                self.credits.clone(),
                self.progress.clone(),
                self.failures.clone(),
                self.leases.clone(),
            );
            runtime.spawn(task.run());
            sender
        }))
    }
}
