//! The writer task: take a batch, write it, sort out the results, repeat until every sender is
//! gone and nothing is left to retry.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt;
use metrics::Counter;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::progress::Progress;
use super::queued::{MAX_BATCH, Queued};
use crate::credits::{CreditStore, Hold, LedgerWrite, Written};
use crate::error::{Error, ErrorKind, Result};
use crate::gateway::lease::Leases;
use crate::gateway::reserve::provisional_number;

/// How long settles may wait for company before they are committed; what a process killed
/// outright loses of charges is at most this plus one commit.
pub(super) const LINGER: Duration = Duration::from_millis(2);
/// How long the usage records of uncharged requests (free models, BYOK, admin) may wait: they
/// are no money, and a busy gateway then commits them a few times per second instead of
/// hundreds (records of one user, model, provider and day become one row update). They do
/// not wake the writer; a hold, a settle, a read or a shutdown cuts the wait short.
pub(super) const USAGE_LINGER: Duration = Duration::from_millis(500);

/// A failed settle is tried again after this, doubling up to [`MAX_RETRY_WAIT`]. Settling is
/// idempotent (a closed hold is left alone), so a retry can never charge twice.
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(50);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);
/// A settle that keeps failing is given up after this many tries (about ten minutes); its
/// hold is reclaimed at expiry and the request goes uncharged.
const MAX_SETTLE_TRIES: u32 = 130;

/// Failed settles and releases, oldest first, and when to try them again.
struct Retries {
    queued: Vec<Queued>,
    /// The wait before the next try; doubles after each batch with a failed settle.
    wait: Duration,
    /// When the retries are due; `None` while there are none.
    at: Option<Instant>,
}

/// What [`WriterTask::next_batch`] found.
enum Next {
    /// A batch to write.
    Write,
    /// Nothing to write this time round.
    Again,
    /// The queue is closed and drained, and no retry is left: the task ends.
    Stop,
}

/// The writer task's state between batches.
pub(super) struct WriterTask {
    receiver: mpsc::UnboundedReceiver<Queued>,
    credits: Arc<dyn CreditStore>,
    progress: Arc<Progress>,
    failures: Counter,
    /// The writes of the batch being written.
    batch: Vec<Queued>,
    retries: Retries,
    /// The queue may still bring writes (some sender is alive).
    open: bool,
    /// The highest number taken from the queue.
    taken: u64,
    /// Writes held back for the next batch: the settle or release of a hold reserved in memory
    /// is written after the batch that placed the hold, since it needs the hold's id.
    carry: Vec<Queued>,
    /// Holds reserved in memory, by provisional number: the hold the database placed (`None`
    /// when its write failed), until its settle or release takes it.
    placed: HashMap<u64, Option<Hold>>,
    /// Balance leases: one the database says is gone is forgotten.
    leases: Option<Arc<Leases>>,
}

impl WriterTask {
    pub fn new(
        receiver: mpsc::UnboundedReceiver<Queued>,
        credits: Arc<dyn CreditStore>,
        progress: Arc<Progress>,
        failures: Counter,
        leases: Option<Arc<Leases>>,
    ) -> Self {
        Self {
            receiver,
            credits,
            progress,
            failures,
            batch: Vec::with_capacity(MAX_BATCH),
            retries: Retries {
                queued: Vec::new(),
                wait: FIRST_RETRY_WAIT,
                at: None,
            },
            open: true,
            taken: 0,
            carry: Vec::new(),
            placed: HashMap::new(),
            leases,
        }
    }

    /// Batch, write, sort out, repeat until every sender is gone and nothing is left to
    /// retry. Failed settles wait and go into a later batch; other writes do not wait for
    /// them.
    pub async fn run(mut self) {
        loop {
            match self.next_batch().await {
                Next::Stop => break,
                Next::Again => continue,
                Next::Write => {}
            }
            let skipped = self.swap_in_placed_holds();
            let results = self.commit(&skipped).await;
            let failed_settle = self.sort_out(results, skipped);
            self.schedule_retries(failed_settle);
            self.mark_finished();
        }
    }

    /// Fill the batch: writes carried over, or what the queue brings (lingering for company),
    /// and the retries once they are due.
    async fn next_batch(&mut self) -> Next {
        let room = MAX_BATCH.saturating_sub(self.retries.queued.len()).max(1);
        if !self.carry.is_empty() {
            self.batch.append(&mut self.carry);
            if self.open {
                self.open = take_queued(&mut self.receiver, &mut self.batch, room);
            }
        } else {
            let closed = match self.retries.at {
                None if !self.open => return Next::Stop,
                None => self.receiver.recv_many(&mut self.batch, room).await == 0,
                Some(at) if self.open => tokio::select! {
                    received = self.receiver.recv_many(&mut self.batch, room) => received == 0,
                    () = tokio::time::sleep_until(at) => false,
                },
                Some(at) => {
                    tokio::time::sleep_until(at).await;
                    false
                }
            };
            if closed && self.batch.is_empty() {
                // The queue is closed and drained; only retries remain, if any.
                self.open = false;
                return Next::Again;
            }
            if self.open && !self.batch.is_empty() {
                self.open = gather(&mut self.receiver, &mut self.batch, room, &self.progress).await;
            }
        }
        self.taken = self
            .batch
            .last()
            .map_or(self.taken, |queued| queued.seq.max(self.taken));
        if self.retries.at.is_some_and(|at| at <= Instant::now()) {
            self.retries.at = None;
            self.batch.splice(0..0, self.retries.queued.drain(..));
        }
        if self.batch.is_empty() {
            Next::Again
        } else {
            Next::Write
        }
    }

    /// Hold back what needs a hold placed in this batch, and put the database's ids in place
    /// of provisional ones. Returns which writes to skip: those whose hold could not be
    /// written (there is nothing to settle or release).
    fn swap_in_placed_holds(&mut self) -> Vec<bool> {
        self.carry = self.batch.split_off(first_needing_a_hold_of(&self.batch));
        with_placed_holds(&mut self.batch, &mut self.placed)
    }

    /// Hand the writes not skipped to the store, and note whether any reached the database.
    async fn commit(&self, skipped: &[bool]) -> Vec<Result<Written>> {
        let writes: Vec<LedgerWrite> = self
            .batch
            .iter()
            .zip(skipped)
            .filter(|(_, skip)| !**skip)
            .map(|(queued, _)| queued.write.clone())
            .collect();
        // A panicking store must not stop the writer (reads wait on it).
        let results = AssertUnwindSafe(self.credits.write_batch(&writes))
            .catch_unwind()
            .await
            .unwrap_or_default();
        if !writes.is_empty() {
            let reached = results.iter().any(|result| match result {
                Ok(_) => true,
                Err(error) => error.kind() == ErrorKind::InsufficientCredits,
            });
            self.progress.healthy.store(reached, Ordering::Release);
        }
        results
    }

    /// Each write's result: note the holds placed for memory reservations, keep failed settles
    /// and releases for another try, report the rest and drop their owed work. Returns whether
    /// a settle or release failed.
    fn sort_out(&mut self, results: Vec<Result<Written>>, skipped: Vec<bool>) -> bool {
        let mut results = results.into_iter();
        let mut failed_settle = false;
        for (mut queued, skip) in self.batch.drain(..).zip(skipped) {
            let result = if skip {
                Some(Ok(Written::Settled(None)))
            } else {
                results.next()
            };
            if let Some(number) = queued.provisional {
                let hold = match &result {
                    Some(Ok(Written::Held(hold))) => Some(hold.clone()),
                    _ => None,
                };
                if hold.is_none() {
                    // Its settle will find no hold: the request goes uncharged.
                    tracing::error!(
                        "a hold reserved in memory could not be written; its request goes uncharged"
                    );
                }
                self.placed.insert(number, hold);
            }
            if let (Some(leases), Some(Ok(Written::LeaseGone))) = (&self.leases, &result) {
                forget_gone_lease(leases, &queued.write);
            }
            // Lease writes carry their number, so a retry of one applied before is a no-op.
            let retry = matches!(
                queued.write,
                LedgerWrite::Settle { .. }
                    | LedgerWrite::Release(_)
                    | LedgerWrite::LeaseCharge(_)
                    | LedgerWrite::LeaseReturn(_)
            ) && worth_another_try(&result)
                && queued.tries + 1 < MAX_SETTLE_TRIES;
            if retry {
                if queued.tries == 0 {
                    tracing::warn!(error = ?result.and_then(Result::err).map(|e| e.to_string()), "settling a request failed; trying again");
                }
                queued.tries += 1;
                failed_settle = true;
                self.retries.queued.push(queued);
            } else {
                report(&queued.write, result, &self.failures);
                drop(queued.owed);
            }
        }
        failed_settle
    }

    /// After a failed settle, wait longer before the next try; once none is left, reset.
    fn schedule_retries(&mut self, failed_settle: bool) {
        let retries = &mut self.retries;
        if failed_settle {
            retries.at = Some(Instant::now() + retries.wait);
            retries.wait = (retries.wait * 2).min(MAX_RETRY_WAIT);
        } else if retries.queued.is_empty() {
            retries.wait = FIRST_RETRY_WAIT;
        }
        retries.queued.sort_unstable_by_key(|queued| queued.seq);
    }

    /// Move the written mark up to just below the oldest write not finished (a retry or a
    /// carried write), or to everything taken.
    fn mark_finished(&self) {
        let unwritten = self
            .retries
            .queued
            .iter()
            .chain(&self.carry)
            .map(|queued| queued.seq)
            .min();
        let done = unwritten.map_or(self.taken, |oldest| oldest.saturating_sub(1));
        self.progress.finished_up_to(done);
    }
}

/// The database says a lease is gone (reclaimed while this replica was silent): forget it,
/// so the next hold takes a new one.
fn forget_gone_lease(leases: &Leases, write: &LedgerWrite) {
    let lease_id = match write {
        LedgerWrite::LeaseCharge(charge) => &charge.lease_id,
        LedgerWrite::LeaseReturn(give) => &give.lease_id,
        _ => return,
    };
    tracing::warn!(
        lease_id,
        "a balance lease was reclaimed; its requests go uncharged"
    );
    leases.forget(write.user_id(), lease_id);
}

/// Where the batch must end: before the first settle or release of a hold reserved in memory
/// whose own write is in the batch (the database's id for it is not known yet).
fn first_needing_a_hold_of(batch: &[Queued]) -> usize {
    let mut reserved = Vec::new();
    for (index, queued) in batch.iter().enumerate() {
        if let Some(number) = queued.provisional {
            reserved.push(number);
        }
        let needs = match &queued.write {
            LedgerWrite::Settle { hold, .. } | LedgerWrite::Release(hold) => {
                provisional_number(hold)
            }
            _ => None,
        };
        if needs.is_some_and(|number| reserved.contains(&number)) {
            return index;
        }
    }
    batch.len()
}

/// Swap provisional hold ids for the database's. Returns which writes to skip: those whose
/// hold could not be written (there is nothing to settle or release).
fn with_placed_holds(batch: &mut [Queued], placed: &mut HashMap<u64, Option<Hold>>) -> Vec<bool> {
    batch
        .iter_mut()
        .map(|queued| {
            let hold = match &mut queued.write {
                LedgerWrite::Settle { hold, .. } | LedgerWrite::Release(hold) => hold,
                _ => return false,
            };
            let Some(number) = provisional_number(hold) else {
                return false;
            };
            match placed.remove(&number).flatten() {
                Some(real) => {
                    *hold = real;
                    false
                }
                None => true,
            }
        })
        .collect()
}

/// How long a batch holding these writes may wait for company: [`LINGER`] with a settle, a
/// release or a hold reserved in memory, [`USAGE_LINGER`] with usage records only.
fn linger_for(writes: &[Queued]) -> Duration {
    let money = |queued: &Queued| !matches!(queued.write, LedgerWrite::Usage(_));
    if writes.iter().any(money) {
        LINGER
    } else {
        USAGE_LINGER
    }
}

/// Nobody waits for settles and usage records: let more of them gather before committing,
/// so a light but steady load commits a few times per [`LINGER`] instead of once per answer.
/// The writer sleeps meanwhile; only holds, settles and flush requests wake it (through
/// `urgent`), so queueing a usage record costs no wake-up. Returns false when the queue
/// closed meanwhile.
async fn gather(
    receiver: &mut mpsc::UnboundedReceiver<Queued>,
    batch: &mut Vec<Queued>,
    room: usize,
    progress: &Progress,
) -> bool {
    let mut deadline = Instant::now() + linger_for(batch);
    loop {
        if batch.len() >= room || progress.flush_wanted.swap(false, Ordering::AcqRel) {
            return true;
        }
        if deadline <= Instant::now() {
            return true;
        }
        let slept = tokio::select! {
            () = progress.urgent.notified() => false,
            () = tokio::time::sleep_until(deadline) => true,
        };
        let seen = batch.len();
        if !take_queued(receiver, batch, room) {
            return false;
        }
        if slept {
            return true;
        }
        let newcomers = Instant::now() + linger_for(&batch[seen..]);
        deadline = deadline.min(newcomers);
    }
}

/// Move what is queued now into the batch, without waiting. False when the queue is closed
/// and empty.
fn take_queued(
    receiver: &mut mpsc::UnboundedReceiver<Queued>,
    batch: &mut Vec<Queued>,
    room: usize,
) -> bool {
    while batch.len() < room {
        match receiver.try_recv() {
            Ok(queued) => batch.push(queued),
            Err(mpsc::error::TryRecvError::Empty) => return true,
            Err(mpsc::error::TryRecvError::Disconnected) => return false,
        }
    }
    true
}

/// Whether a failed write may succeed if tried again: the database was unreachable or busy
/// (or the store gave no result). A write the database refused (`Internal`: a constraint, a
/// value out of range) fails the same way every time; retrying it would keep the queue — and
/// a shutdown — waiting forever, so it is parked instead (see [`report`]).
fn worth_another_try(result: &Option<Result<Written>>) -> bool {
    match result {
        Some(Ok(_)) => false,
        Some(Err(error)) => error.kind() != ErrorKind::Internal,
        None => true,
    }
}

/// Log a write that failed (`None`: the store gave no result for it). A write the database
/// refused is parked: logged with everything needed to settle it by hand, and counted in
/// `llmgate_ledger_parked_writes_total`; its hold stays open until a reclaim.
pub(super) fn report(write: &LedgerWrite, result: Option<Result<Written>>, failures: &Counter) {
    let error = match result {
        Some(Ok(_)) => return,
        Some(Err(error)) => error,
        None => Error::internal("the ledger write did not complete"),
    };
    if error.kind() == ErrorKind::Internal {
        metrics::counter!(crate::metrics::LEDGER_PARKED_WRITES).increment(1);
        tracing::error!(%error, ?write, "the database refused a ledger write; it is parked");
    }
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
        LedgerWrite::Release(hold) => {
            // The hold stays open until it expires and is reclaimed.
            tracing::warn!(%error, hold = %hold.id, "releasing a hold failed");
        }
        LedgerWrite::LeaseCharge(charge) => {
            // The lease keeps the charge; its close gives it back: the request goes uncharged.
            tracing::error!(%error, lease = %charge.lease_id, request_id = %charge.usage.request_id, "charging a balance lease failed");
        }
        LedgerWrite::LeaseReturn(give) => {
            // The lease keeps it until its close (or its reclaim).
            tracing::warn!(%error, lease = %give.lease_id, "returning part of a balance lease failed");
        }
    }
}
