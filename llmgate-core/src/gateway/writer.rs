//! The ledger queue: write-behind for the work that follows an answer, group commit for all.
//!
//! Holds, settles and usage records go on one bounded queue; one background task takes
//! whatever is queued (up to [`MAX_BATCH`]) and hands it to [`CreditStore::write_batch`] — one
//! transaction and one commit for the lot where the backend supports it (group commit). The
//! answer does not wait for its settle or usage record, and a busy gateway commits many
//! requests at once.
//!
//! A request still waits for its hold, which is what keeps a balance from going below zero:
//! the hold is answered only once committed, after every write queued before it (so it sees
//! the settles of earlier answers). Credits (top-ups, grants) do not use the queue. A queued
//! write is owed work ([`Owed`]) until it is written,
//! so a clean shutdown ([`Gateway::settled`](super::Gateway::settled)) flushes the queue. A
//! process killed outright loses the queued writes: each queued settle leaves its hold open
//! until it expires and is reclaimed (the request is not charged); each queued usage record of
//! an uncharged request is missing from usage. Nothing can be charged twice or overspent.
//!
//! Reads and credits through [`Flushed`] (what [`Gateway::credits`](super::Gateway::credits)
//! hands out) first wait for the writes queued before them, so a client that asks for its
//! balance after an answer sees that answer's charge, and a top-up is ordered after it.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use metrics::Counter;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use super::owed::{Owed, detached};
use crate::credits::{
    Credit, CreditOutcome, CreditStore, Hold, HoldRequest, LedgerWrite, Page, Transaction,
    UsageQuery, UsageRecord, UsageRow, Written,
};
use crate::error::{Error, Result};

/// The most writes committed together.
pub(super) const MAX_BATCH: usize = 512;
/// How long settles and usage records may wait for company before they are committed; what a
/// process killed outright loses is at most this plus one commit.
const LINGER: Duration = Duration::from_millis(2);

/// A failed settle is tried again after this, doubling up to [`MAX_RETRY_WAIT`]. Settling is
/// idempotent (a closed hold is left alone), so a retry can never charge twice.
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(50);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);
/// A settle that keeps failing is given up after this many tries (about ten minutes); its
/// hold is reclaimed at expiry and the request goes uncharged.
const MAX_SETTLE_TRIES: u32 = 130;

/// One queued write, with the work it settles and its place in the queue.
struct Queued {
    /// Its number in the queue, from 1.
    seq: u64,
    write: LedgerWrite,
    owed: Option<Owed>,
    tries: u32,
    /// Where a hold's outcome goes (the request waits for it).
    reply: Option<oneshot::Sender<Result<Hold>>>,
    _slot: OwnedSemaphorePermit,
}

/// Counts shared by the queue, the writer task and the read barrier.
#[derive(Debug)]
struct Progress {
    /// Writes sent to the writer, numbered in queue order (incremented under `order`).
    queued: AtomicU64,
    /// Every write numbered up to this is finished (written, or failed for good).
    written: watch::Sender<u64>,
    /// Makes "number, send" one step, so numbers follow the queue's order.
    order: Mutex<()>,
}

/// The longest a read waits for queued writes. Longer means the database is failing (a settle
/// is being retried); the read then goes ahead and answers (or fails) as the database does.
const MAX_FLUSH_WAIT: Duration = Duration::from_secs(2);

impl Progress {
    /// Completes once every write queued before this call is finished, or after
    /// [`MAX_FLUSH_WAIT`].
    async fn flushed(&self) {
        let target = self.queued.load(Ordering::Acquire);
        let mut written = self.written.subscribe();
        // Err: the writer is gone, and nothing more will be written.
        let _ =
            tokio::time::timeout(MAX_FLUSH_WAIT, written.wait_for(|&done| done >= target)).await;
    }
}

/// The queue and its writer task (started on first use, on the runtime of that use).
pub(super) struct LedgerWriter {
    credits: Arc<dyn CreditStore>,
    slots: Arc<Semaphore>,
    progress: Arc<Progress>,
    sender: OnceLock<mpsc::UnboundedSender<Queued>>,
    failures: Counter,
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
            progress: Arc::new(Progress {
                queued: AtomicU64::new(0),
                written: watch::Sender::new(0),
                order: Mutex::new(()),
            }),
            sender: OnceLock::new(),
            failures,
        }
    }

    /// A view of the store whose reads wait for the writes queued before them.
    pub fn flushed_view(&self) -> Arc<dyn CreditStore> {
        Arc::new(Flushed {
            inner: self.credits.clone(),
            progress: self.progress.clone(),
        })
    }

    /// Queue a write; it is done (and `owed` dropped) once written. Waits only when the queue
    /// is full, and then on a task of its own, so a caller that goes away cannot lose the
    /// write. Outside a runtime the write is made before this returns.
    pub async fn write(&self, write: LedgerWrite, owed: Option<Owed>) {
        let Some(sender) = self.sender() else {
            write_directly(self.credits.clone(), self.failures.clone(), write, owed).await;
            return;
        };
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            let queued = Queued {
                seq: 0,
                write,
                owed,
                tries: 0,
                reply: None,
                _slot: slot,
            };
            if let Some(refused) = enqueue(&self.progress, sender, queued) {
                // The writer is gone (its runtime is shutting down): write it ourselves.
                let credits = self.credits.clone();
                let failures = self.failures.clone();
                detached(write_directly(
                    credits,
                    failures,
                    refused.write,
                    refused.owed,
                ))
                .await;
            }
            return;
        }
        // The queue is full: wait for room on a task that finishes whatever happens to us.
        let slots = self.slots.clone();
        let progress = self.progress.clone();
        let sender = sender.clone();
        let credits = self.credits.clone();
        let failures = self.failures.clone();
        detached(async move {
            let Ok(slot) = slots.acquire_owned().await else {
                write_directly(credits, failures, write, owed).await;
                return;
            };
            let queued = Queued {
                seq: 0,
                write,
                owed,
                tries: 0,
                reply: None,
                _slot: slot,
            };
            if let Some(refused) = enqueue(&progress, &sender, queued) {
                write_directly(credits, failures, refused.write, refused.owed).await;
            }
        })
        .await;
    }

    /// Place a hold through the queue: it is committed after every write queued before it
    /// (so it sees their settles) and, under load, together with other holds. Returns once
    /// it is committed; a hold whose request went away meanwhile is released at once.
    pub async fn hold(&self, request: HoldRequest) -> Result<Hold> {
        let Some(sender) = self.sender() else {
            return self.credits.hold(request).await;
        };
        // Waiting for room may be abandoned safely: nothing is queued until it ends.
        let Ok(slot) = self.slots.clone().acquire_owned().await else {
            return self.credits.hold(request).await;
        };
        let (reply, answer) = oneshot::channel();
        let queued = Queued {
            seq: 0,
            write: LedgerWrite::Hold(request),
            owed: None,
            tries: 0,
            reply: Some(reply),
            _slot: slot,
        };
        if let Some(refused) = enqueue(&self.progress, sender, queued) {
            return match refused.write {
                LedgerWrite::Hold(request) => self.credits.hold(request).await,
                _ => Err(Error::internal("The ledger writer stopped.")),
            };
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Error::internal("The ledger writer stopped.")))
    }

    /// Completes once every write queued before this call is written.
    #[cfg(test)]
    pub async fn flushed(&self) {
        self.progress.flushed().await;
    }

    fn sender(&self) -> Option<&mpsc::UnboundedSender<Queued>> {
        if let Some(sender) = self.sender.get() {
            return Some(sender);
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            runtime.spawn(run(
                receiver,
                self.credits.clone(),
                self.progress.clone(),
                self.failures.clone(),
            ));
            sender
        }))
    }
}

/// Send a write to the writer and count it, as one step; gives it back when the writer is gone.
fn enqueue(
    progress: &Progress,
    sender: &mpsc::UnboundedSender<Queued>,
    mut queued: Queued,
) -> Option<Queued> {
    let _order = progress
        .order
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    queued.seq = progress.queued.load(Ordering::Acquire) + 1;
    match sender.send(queued) {
        Ok(()) => {
            progress.queued.fetch_add(1, Ordering::AcqRel);
            None
        }
        Err(mpsc::error::SendError(queued)) => Some(queued),
    }
}

/// Write one write now, without the queue.
async fn write_directly(
    credits: Arc<dyn CreditStore>,
    failures: Counter,
    write: LedgerWrite,
    owed: Option<Owed>,
) {
    let results = credits.write_batch(std::slice::from_ref(&write)).await;
    report(&write, results.into_iter().next(), &failures);
    drop(owed);
}

/// The writer task: batch, write, report, repeat until every sender is gone and nothing is
/// left to retry. Failed settles wait and go into a later batch; other writes do not wait
/// for them.
async fn run(
    mut receiver: mpsc::UnboundedReceiver<Queued>,
    credits: Arc<dyn CreditStore>,
    progress: Arc<Progress>,
    failures: Counter,
) {
    let mut batch: Vec<Queued> = Vec::with_capacity(MAX_BATCH);
    let mut writes: Vec<LedgerWrite> = Vec::with_capacity(MAX_BATCH);
    // Failed settles, oldest first, and when to try them again.
    let mut retries: Vec<Queued> = Vec::new();
    let mut retry_wait = FIRST_RETRY_WAIT;
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut open = true;
    // The highest number taken from the queue.
    let mut taken = 0u64;
    loop {
        let room = MAX_BATCH.saturating_sub(retries.len()).max(1);
        let due = match retry_at {
            None if !open => break,
            None => receiver.recv_many(&mut batch, room).await == 0,
            Some(at) if open => tokio::select! {
                received = receiver.recv_many(&mut batch, room) => received == 0,
                () = tokio::time::sleep_until(at) => false,
            },
            Some(at) => {
                tokio::time::sleep_until(at).await;
                false
            }
        };
        if due && batch.is_empty() {
            // The queue is closed and drained; only retries remain, if any.
            open = false;
            continue;
        }
        if open && !batch.is_empty() {
            open = gather(&mut receiver, &mut batch, room).await;
        }
        taken = batch.last().map_or(taken, |queued| queued.seq.max(taken));
        if retry_at.is_some_and(|at| at <= tokio::time::Instant::now()) {
            retry_at = None;
            batch.splice(0..0, retries.drain(..));
        }
        if batch.is_empty() {
            continue;
        }
        writes.clear();
        writes.extend(batch.iter().map(|queued| queued.write.clone()));
        // A panicking store must not stop the writer (reads wait on it).
        let results = AssertUnwindSafe(credits.write_batch(&writes))
            .catch_unwind()
            .await
            .unwrap_or_default();
        let mut results = results.into_iter();
        let mut failed_settle = false;
        for mut queued in batch.drain(..) {
            let result = results.next();
            if let Some(reply) = queued.reply.take() {
                answer_hold(reply, result, &credits);
                continue;
            }
            let retry = matches!(queued.write, LedgerWrite::Settle { .. })
                && !matches!(result, Some(Ok(_)))
                && queued.tries + 1 < MAX_SETTLE_TRIES;
            if retry {
                if queued.tries == 0 {
                    tracing::warn!(error = ?result.and_then(Result::err).map(|e| e.to_string()), "settling a request failed; trying again");
                }
                queued.tries += 1;
                failed_settle = true;
                retries.push(queued);
            } else {
                report(&queued.write, result, &failures);
                drop(queued.owed);
            }
        }
        if failed_settle {
            retry_at = Some(tokio::time::Instant::now() + retry_wait);
            retry_wait = (retry_wait * 2).min(MAX_RETRY_WAIT);
        } else if retries.is_empty() {
            retry_wait = FIRST_RETRY_WAIT;
        }
        retries.sort_unstable_by_key(|queued| queued.seq);
        let done = retries
            .first()
            .map_or(taken, |oldest| oldest.seq.saturating_sub(1));
        progress.written.send_if_modified(|written| {
            let moved = done > *written;
            *written = (*written).max(done);
            moved
        });
    }
}

/// Nobody waits for settles and usage records: let more of them gather for up to [`LINGER`]
/// before committing, so a light but steady load commits a few times per [`LINGER`] instead
/// of once per answer. A hold (a request waiting for it) ends the wait at once. Returns false
/// when the queue closed meanwhile.
async fn gather(
    receiver: &mut mpsc::UnboundedReceiver<Queued>,
    batch: &mut Vec<Queued>,
    room: usize,
) -> bool {
    let waiting = |batch: &[Queued]| batch.iter().any(|queued| queued.reply.is_some());
    if waiting(batch) {
        return true;
    }
    let deadline = tokio::time::Instant::now() + LINGER;
    while batch.len() < room {
        let seen = batch.len();
        match tokio::time::timeout_at(deadline, receiver.recv_many(batch, room - seen)).await {
            Ok(0) => return false,
            Ok(_) if waiting(&batch[seen..]) => return true,
            Ok(_) => {}
            Err(_) => return true,
        }
    }
    true
}

/// Hand a hold's outcome to its request; release the hold if the request is gone.
fn answer_hold(
    reply: oneshot::Sender<Result<Hold>>,
    result: Option<Result<Written>>,
    credits: &Arc<dyn CreditStore>,
) {
    let answer = match result {
        Some(Ok(Written::Held(hold))) => Ok(hold),
        Some(Err(error)) => Err(error),
        Some(Ok(_)) | None => Err(Error::internal("The hold was not written.")),
    };
    if let Err(Ok(hold)) = reply.send(answer) {
        // The request went away while its hold was written: give the hold back now.
        let credits = credits.clone();
        tokio::spawn(async move {
            if let Err(error) = credits.release(&hold).await {
                tracing::warn!(%error, hold = %hold.id, "releasing an abandoned hold failed");
            }
        });
    }
}

/// Log a write that failed (`None`: the store gave no result for it).
fn report(write: &LedgerWrite, result: Option<Result<Written>>, failures: &Counter) {
    let error = match result {
        Some(Ok(_)) => return,
        Some(Err(error)) => error,
        None => Error::internal("the ledger write did not complete"),
    };
    match write {
        LedgerWrite::Hold(request) => {
            tracing::warn!(%error, request_id = %request.request_id, "placing a hold failed");
        }
        LedgerWrite::Settle { hold, usage } => {
            // The hold stays open until it expires and is reclaimed: nothing is charged.
            tracing::error!(%error, hold = %hold.id, request_id = %usage.request_id, "settling a request failed");
        }
        LedgerWrite::Usage(usage) => {
            failures.increment(1);
            tracing::warn!(%error, request_id = %usage.request_id, "recording usage failed; the request was served");
        }
    }
}

/// The store as the gateway's users see it: reads first wait for queued writes.
struct Flushed {
    inner: Arc<dyn CreditStore>,
    progress: Arc<Progress>,
}

impl std::fmt::Debug for Flushed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flushed")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl CreditStore for Flushed {
    async fn hold(&self, request: HoldRequest) -> Result<Hold> {
        self.inner.hold(request).await
    }

    async fn settle(&self, hold: &Hold, usage: &UsageRecord) -> Result<i64> {
        self.inner.settle(hold, usage).await
    }

    async fn release(&self, hold: &Hold) -> Result<()> {
        self.inner.release(hold).await
    }

    async fn record_usage(&self, usage: &UsageRecord) -> Result<()> {
        self.inner.record_usage(usage).await
    }

    async fn credit(&self, credit: Credit) -> Result<CreditOutcome> {
        // A top-up lands after the charges of the answers given before it, as it would if
        // they had been written at once (the ledger's order, low-balance alerts).
        self.progress.flushed().await;
        self.inner.credit(credit).await
    }

    async fn balance(&self, user_id: &str) -> Result<i64> {
        self.progress.flushed().await;
        self.inner.balance(user_id).await
    }

    async fn transactions(&self, user_id: &str, page: Page) -> Result<Vec<Transaction>> {
        self.progress.flushed().await;
        self.inner.transactions(user_id, page).await
    }

    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>> {
        self.progress.flushed().await;
        self.inner.usage(query).await
    }

    async fn reclaim_expired(&self) -> Result<u64> {
        self.inner.reclaim_expired().await
    }

    async fn write_batch(&self, writes: &[LedgerWrite]) -> Vec<Result<Written>> {
        self.inner.write_batch(writes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credits::{CreditKind, KeySource};
    use crate::memory::MemoryCreditStore;
    use std::time::Duration;

    fn usage(request_id: &str) -> UsageRecord {
        UsageRecord {
            user_id: "u".into(),
            request_id: request_id.into(),
            model: "m".into(),
            provider: "p".into(),
            key_source: KeySource::Platform,
            prompt_tokens: 1,
            completion_tokens: 1,
            cost_micros: 7,
            at: 1_700_000_000,
        }
    }

    /// Counts batch sizes; the first batch waits until released.
    #[derive(Debug)]
    struct Gated {
        inner: MemoryCreditStore,
        batches: Mutex<Vec<usize>>,
        gate: tokio::sync::Semaphore,
    }

    #[async_trait]
    impl CreditStore for Gated {
        async fn hold(&self, request: HoldRequest) -> Result<Hold> {
            self.inner.hold(request).await
        }
        async fn settle(&self, hold: &Hold, usage: &UsageRecord) -> Result<i64> {
            self.inner.settle(hold, usage).await
        }
        async fn release(&self, hold: &Hold) -> Result<()> {
            self.inner.release(hold).await
        }
        async fn record_usage(&self, usage: &UsageRecord) -> Result<()> {
            self.inner.record_usage(usage).await
        }
        async fn credit(&self, credit: Credit) -> Result<CreditOutcome> {
            self.inner.credit(credit).await
        }
        async fn balance(&self, user_id: &str) -> Result<i64> {
            self.inner.balance(user_id).await
        }
        async fn transactions(&self, user_id: &str, page: Page) -> Result<Vec<Transaction>> {
            self.inner.transactions(user_id, page).await
        }
        async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>> {
            self.inner.usage(query).await
        }
        async fn reclaim_expired(&self) -> Result<u64> {
            self.inner.reclaim_expired().await
        }
        async fn write_batch(&self, writes: &[LedgerWrite]) -> Vec<Result<Written>> {
            let _pass = self.gate.acquire().await;
            self.batches.lock().unwrap().push(writes.len());
            self.inner.write_batch(writes).await
        }
    }

    fn gated() -> Arc<Gated> {
        Arc::new(Gated {
            inner: MemoryCreditStore::new(),
            batches: Mutex::new(Vec::new()),
            gate: tokio::sync::Semaphore::new(0),
        })
    }

    #[tokio::test]
    async fn writes_queued_while_one_is_written_are_committed_together() {
        let store = gated();
        let writer = LedgerWriter::new(store.clone(), 100, Counter::noop());
        writer.write(LedgerWrite::Usage(usage("r0")), None).await;
        // Past the linger: the first batch is taken (and held at the gate) alone.
        tokio::time::sleep(LINGER * 10).await;
        for i in 1..=5 {
            writer
                .write(LedgerWrite::Usage(usage(&format!("r{i}"))), None)
                .await;
        }
        store.gate.add_permits(10);
        writer.flushed().await;
        assert_eq!(*store.batches.lock().unwrap(), vec![1, 5]);
    }

    #[tokio::test]
    async fn writes_arriving_within_the_linger_share_a_commit_but_a_hold_does_not_wait() {
        let store = gated();
        store.gate.add_permits(100);
        store
            .inner
            .credit(Credit {
                user_id: "u".into(),
                kind: CreditKind::TopUp,
                amount_micros: 100,
                idempotency_key: "k".into(),
                reason: "test".into(),
            })
            .await
            .unwrap();
        let writer = LedgerWriter::new(store.clone(), 100, Counter::noop());
        for i in 0..3 {
            writer
                .write(LedgerWrite::Usage(usage(&format!("r{i}"))), None)
                .await;
        }
        writer.flushed().await;
        assert_eq!(*store.batches.lock().unwrap(), vec![3]);
        // A hold is committed with what is queued, without lingering for more.
        writer.write(LedgerWrite::Usage(usage("r3")), None).await;
        let hold = writer
            .hold(HoldRequest {
                user_id: "u".into(),
                request_id: "h".into(),
                amount_micros: 10,
                ttl_secs: 60,
            })
            .await
            .unwrap();
        assert_eq!(hold.amount_micros, 10);
        assert_eq!(*store.batches.lock().unwrap(), vec![3, 2]);
    }

    #[tokio::test]
    async fn reads_wait_for_the_writes_queued_before_them() {
        let store = gated();
        store
            .inner
            .credit(Credit {
                user_id: "u".into(),
                kind: CreditKind::TopUp,
                amount_micros: 100,
                idempotency_key: "k".into(),
                reason: "test".into(),
            })
            .await
            .unwrap();
        let hold = store
            .inner
            .hold(HoldRequest {
                user_id: "u".into(),
                request_id: "r".into(),
                amount_micros: 50,
                ttl_secs: 60,
            })
            .await
            .unwrap();
        let writer = LedgerWriter::new(store.clone(), 100, Counter::noop());
        let view = writer.flushed_view();
        writer
            .write(
                LedgerWrite::Settle {
                    hold,
                    usage: usage("r"),
                },
                None,
            )
            .await;
        let read = tokio::spawn(async move { view.balance("u").await.unwrap() });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!read.is_finished(), "the read waits for the queued settle");
        store.gate.add_permits(1);
        // 100 − 50 held + 43 given back = 93.
        assert_eq!(read.await.unwrap(), 93);
    }

    #[tokio::test]
    async fn a_full_queue_makes_writers_wait_and_loses_nothing() {
        let store = gated();
        let writer = Arc::new(LedgerWriter::new(store.clone(), 2, Counter::noop()));
        let mut tasks = Vec::new();
        for i in 0..6 {
            let writer = writer.clone();
            tasks.push(tokio::spawn(async move {
                writer
                    .write(LedgerWrite::Usage(usage(&format!("r{i}"))), None)
                    .await;
            }));
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(
            tasks.iter().filter(|t| t.is_finished()).count() <= 2,
            "only two fit in the queue"
        );
        store.gate.add_permits(100);
        for task in tasks {
            task.await.unwrap();
        }
        writer.flushed().await;
        assert_eq!(store.batches.lock().unwrap().iter().sum::<usize>(), 6);
    }

    /// Fails its first `failures` settles, like a database that comes back.
    #[derive(Debug)]
    struct Recovering {
        inner: MemoryCreditStore,
        failures: std::sync::atomic::AtomicU32,
    }

    #[async_trait]
    impl CreditStore for Recovering {
        async fn hold(&self, request: HoldRequest) -> Result<Hold> {
            self.inner.hold(request).await
        }
        async fn settle(&self, hold: &Hold, usage: &UsageRecord) -> Result<i64> {
            let left = self.failures.load(Ordering::SeqCst);
            if left > 0 {
                self.failures.store(left - 1, Ordering::SeqCst);
                return Err(Error::unavailable("database unavailable"));
            }
            self.inner.settle(hold, usage).await
        }
        async fn release(&self, hold: &Hold) -> Result<()> {
            self.inner.release(hold).await
        }
        async fn record_usage(&self, usage: &UsageRecord) -> Result<()> {
            self.inner.record_usage(usage).await
        }
        async fn credit(&self, credit: Credit) -> Result<CreditOutcome> {
            self.inner.credit(credit).await
        }
        async fn balance(&self, user_id: &str) -> Result<i64> {
            self.inner.balance(user_id).await
        }
        async fn transactions(&self, user_id: &str, page: Page) -> Result<Vec<Transaction>> {
            self.inner.transactions(user_id, page).await
        }
        async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>> {
            self.inner.usage(query).await
        }
        async fn reclaim_expired(&self) -> Result<u64> {
            self.inner.reclaim_expired().await
        }
    }

    #[tokio::test]
    async fn a_failed_settle_is_tried_again_without_holding_up_other_writes() {
        let store = Arc::new(Recovering {
            inner: MemoryCreditStore::new(),
            failures: std::sync::atomic::AtomicU32::new(2),
        });
        store
            .inner
            .credit(Credit {
                user_id: "u".into(),
                kind: CreditKind::TopUp,
                amount_micros: 100,
                idempotency_key: "k".into(),
                reason: "test".into(),
            })
            .await
            .unwrap();
        let hold = store
            .inner
            .hold(HoldRequest {
                user_id: "u".into(),
                request_id: "r".into(),
                amount_micros: 50,
                ttl_secs: 60,
            })
            .await
            .unwrap();
        let settlements = Arc::new(super::super::owed::Settlements::default());
        let writer = LedgerWriter::new(store.clone(), 100, Counter::noop());
        writer
            .write(
                LedgerWrite::Settle {
                    hold,
                    usage: usage("r"),
                },
                Some(settlements.begin()),
            )
            .await;
        writer
            .write(LedgerWrite::Usage(usage("free")), Some(settlements.begin()))
            .await;
        // The usage record does not wait for the failing settle.
        tokio::time::timeout(Duration::from_secs(5), async {
            while settlements.open() > 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        settlements.idle().await;
        assert_eq!(store.failures.load(Ordering::SeqCst), 0);
        assert_eq!(store.inner.balance("u").await.unwrap(), 93);
        writer.flushed().await;
    }

    /// Poll a future that never waits (the in-memory store) to its end, with no runtime.
    fn at_once<T>(future: impl std::future::Future<Output = T>) -> T {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(value) => value,
            std::task::Poll::Pending => panic!("the future waited"),
        }
    }

    #[test]
    fn outside_a_runtime_the_write_is_made_at_once() {
        let store = Arc::new(MemoryCreditStore::new());
        let writer = LedgerWriter::new(store.clone(), 10, Counter::noop());
        at_once(writer.write(LedgerWrite::Usage(usage("r")), None));
        let rows = at_once(store.usage(&UsageQuery {
            user_id: Some("u".into()),
            from_day: None,
            to_day: None,
            group_by: crate::credits::UsageGroup::Model,
        }))
        .unwrap();
        assert_eq!(rows.len(), 1);
    }
}
