//! The ledger queue: write-behind for the work that follows an answer, group commit for all.
//!
//! Settles, releases and usage records go on one bounded queue; one background task takes
//! whatever is queued (up to [`MAX_BATCH`]) and hands it to [`CreditStore::write_batch`] — one
//! transaction and one commit for the lot where the backend supports it (group commit). The
//! answer does not wait for its settle or usage record, and a busy gateway commits many
//! requests at once.
//!
//! A request still waits for its hold, which is what keeps a balance from going below zero:
//! the hold is written at once, beside the queue (not behind settles that linger for company);
//! refused while writes are queued, it is tried again once they are written, since a queued
//! settle may give back what it needs. With balances kept in memory ([`super::reserve`]) a
//! hold is a subtraction there and its write joins the queue instead. Credits (top-ups,
//! grants) do not use the queue. A queued write is owed work ([`Owed`]) until it is written,
//! so a clean shutdown ([`Gateway::settled`](super::Gateway::settled)) flushes the queue. A
//! process killed outright loses the queued writes: each queued settle leaves its hold open
//! until it expires and is reclaimed (the request is not charged); a queued hold reserved in
//! memory is lost with its request; each queued usage record of an uncharged request is
//! missing from usage. Nothing can be charged twice or overspent.
//!
//! Reads and credits through [`Flushed`] (what [`Gateway::credits`](super::Gateway::credits)
//! hands out) first wait for the writes queued before them, so a client that asks for its
//! balance after an answer sees that answer's charge, and a top-up is ordered after it.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use metrics::Counter;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use super::owed::{Owed, detached};
use super::reserve::{Account, Reservations, provisional_number};
use crate::credits::{
    Credit, CreditOutcome, CreditStore, Hold, HoldRequest, LedgerWrite, Page, Transaction,
    UsageQuery, UsageRecord, UsageRow, Written,
};
use crate::error::{Error, ErrorKind, Result};

/// The most writes committed together.
pub(super) const MAX_BATCH: usize = 512;
/// How long settles may wait for company before they are committed; what a process killed
/// outright loses of charges is at most this plus one commit.
const LINGER: Duration = Duration::from_millis(2);
/// How long the usage records of uncharged requests (free models, BYOK, admin) may wait: they
/// are no money, and a busy gateway then commits them a few times per second instead of
/// hundreds (records of one user, model, provider and day become one row update). They do
/// not wake the writer; a hold, a settle, a read or a shutdown cuts the wait short.
const USAGE_LINGER: Duration = Duration::from_millis(500);

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
    /// A hold reserved in memory: the number of its provisional id.
    provisional: Option<u64>,
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
    /// Wakes a lingering writer: a hold, a settle or a flush was queued or asked for.
    urgent: Notify,
    /// Someone waits for the queue to be written (a read, a credit, a shutdown): stop lingering.
    flush_wanted: AtomicBool,
    /// The last batch reached the database. While it does not, holds are awaited again, so a
    /// paid request is refused rather than served with nothing written.
    healthy: AtomicBool,
}

/// The longest a read waits for queued writes. Longer means the database is failing (a settle
/// is being retried); the read then goes ahead and answers (or fails) as the database does.
const MAX_FLUSH_WAIT: Duration = Duration::from_secs(2);

impl Progress {
    /// Whether writes are queued and not yet written.
    fn pending(&self) -> bool {
        self.queued.load(Ordering::Acquire) > *self.written.borrow()
    }

    /// Ask the writer to commit what is queued now instead of lingering.
    fn hurry(&self) {
        self.flush_wanted.store(true, Ordering::Release);
        self.urgent.notify_one();
    }

    /// Completes once every write queued before this call is finished, or after
    /// [`MAX_FLUSH_WAIT`].
    async fn flushed(&self) {
        let target = self.queued.load(Ordering::Acquire);
        let mut written = self.written.subscribe();
        if *written.borrow() < target {
            self.hurry();
        }
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
    /// Balances kept in memory (`reserve_in_memory`): holds are not waited for.
    reservations: Option<Arc<Reservations>>,
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
                urgent: Notify::new(),
                flush_wanted: AtomicBool::new(false),
                healthy: AtomicBool::new(true),
            }),
            sender: OnceLock::new(),
            failures,
            reservations: None,
        }
    }

    /// Keep balances in memory and queue holds like settles (see [`super::reserve`]): only
    /// for a ledger no other process writes.
    pub fn reserve_in_memory(mut self) -> Self {
        self.reservations = Some(Arc::new(Reservations::default()));
        self
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
        let (write, owed) = match (&self.reservations, self.sender()) {
            (Some(reservations), Some(sender))
                if matches!(write, LedgerWrite::Settle { .. } | LedgerWrite::Release(_)) =>
            {
                // On a task of its own: waiting for the account's lock must not lose the write.
                let queue = (
                    reservations.clone(),
                    self.slots.clone(),
                    self.progress.clone(),
                );
                let sender = sender.clone();
                match detached(give_back(queue, sender, write, owed)).await {
                    Some(Some(refused)) => refused,
                    Some(None) | None => return,
                }
            }
            _ => (write, owed),
        };
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
                provisional: None,
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
                provisional: None,
                _slot: slot,
            };
            if let Some(refused) = enqueue(&progress, &sender, queued) {
                write_directly(credits, failures, refused.write, refused.owed).await;
            }
        })
        .await;
    }

    /// Place a hold. With balances in memory it is reserved there and its write queued (see
    /// [`super::reserve`]); otherwise, or while the database is failing, it is awaited.
    pub async fn hold(&self, request: HoldRequest) -> Result<Hold> {
        let Some(reservations) = &self.reservations else {
            return self.hold_awaited(request).await;
        };
        let amount = request.amount_micros;
        let account = reservations.account(&request.user_id);
        // Until the write is queued nothing is reserved, so this may be abandoned at any await.
        let mut account = account.lock().await;
        let spendable = match account.spendable {
            Some(spendable) if spendable >= amount || account.open > 0 => spendable,
            // Not loaded yet, or short of money that may have arrived outside the queue (a
            // top-up, a monthly grant, a reclaimed hold): read the database once the queue is
            // written.
            _ => self.load(&mut account, &request.user_id).await?,
        };
        if spendable < amount {
            return Err(Error::insufficient_credits(amount, spendable.max(0)));
        }
        let healthy = self.progress.healthy.load(Ordering::Acquire);
        let (Some(sender), true) = (self.sender(), healthy) else {
            let hold = self.hold_awaited(request).await?;
            account.spendable = Some(spendable - hold.amount_micros);
            return Ok(hold);
        };
        let Ok(slot) = self.slots.clone().acquire_owned().await else {
            return Err(Error::internal("The ledger writer stopped."));
        };
        let (number, id) = reservations.provisional_id();
        let hold = Hold {
            id,
            user_id: request.user_id.clone(),
            amount_micros: amount,
        };
        let queued = Queued {
            seq: 0,
            write: LedgerWrite::Hold(request),
            owed: None,
            tries: 0,
            provisional: Some(number),
            _slot: slot,
        };
        if enqueue(&self.progress, sender, queued).is_some() {
            return Err(Error::internal("The ledger writer stopped."));
        }
        account.spendable = Some(spendable - amount);
        account.open += 1;
        Ok(hold)
    }

    /// The account's balance read from the database, after the writes queued so far.
    async fn load(&self, account: &mut Account, user_id: &str) -> Result<i64> {
        self.progress.flushed().await;
        let balance = self.credits.balance(user_id).await?;
        account.spendable = Some(balance);
        Ok(balance)
    }

    /// Place a hold now, beside the queue: it does not wait behind queued settles and usage
    /// records (a lone hold is one statement on PostgreSQL). A refusal while writes are still
    /// queued is tried again once they are written, since a queued settle or release may give
    /// back what the hold needs. It runs on a task of its own: a hold whose request went away
    /// meanwhile is released at once.
    async fn hold_awaited(&self, request: HoldRequest) -> Result<Hold> {
        let (reply, answer) = oneshot::channel();
        let credits = self.credits.clone();
        let progress = self.progress.clone();
        let placing = async move {
            let mut placed = hold_now(&credits, &request).await;
            let refused =
                matches!(&placed, Err(error) if error.kind() == ErrorKind::InsufficientCredits);
            if refused && progress.pending() {
                progress.flushed().await;
                placed = hold_now(&credits, &request).await;
            }
            answer_hold(reply, placed, &credits);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(placing)),
            Err(_) => placing.await,
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Error::internal("The hold was not written.")))
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

/// Queue a settle or release and give back in memory what it returns, as one step under the
/// account's lock (see [`super::reserve`]). Gives the write back when the writer is gone.
async fn give_back(
    (reservations, slots, progress): (Arc<Reservations>, Arc<Semaphore>, Arc<Progress>),
    sender: mpsc::UnboundedSender<Queued>,
    write: LedgerWrite,
    owed: Option<Owed>,
) -> Option<(LedgerWrite, Option<Owed>)> {
    let (hold, returned) = match &write {
        LedgerWrite::Settle { hold, usage } => (
            hold,
            hold.amount_micros - usage.cost_micros.clamp(0, hold.amount_micros),
        ),
        LedgerWrite::Release(hold) => (hold, hold.amount_micros),
        LedgerWrite::Hold(_) | LedgerWrite::Usage(_) => return Some((write, owed)),
    };
    let provisional = provisional_number(hold).is_some();
    let account = reservations.account(&hold.user_id);
    let mut account = account.lock().await;
    let Ok(slot) = slots.acquire_owned().await else {
        return Some((write, owed));
    };
    let queued = Queued {
        seq: 0,
        write,
        owed,
        tries: 0,
        provisional: None,
        _slot: slot,
    };
    if let Some(refused) = enqueue(&progress, &sender, queued) {
        return Some((refused.write, refused.owed));
    }
    if let Some(spendable) = account.spendable.as_mut() {
        *spendable += returned;
    }
    if provisional {
        account.open = account.open.saturating_sub(1);
    }
    None
}

/// Send a write to the writer and count it, as one step; gives it back when the writer is gone.
/// A hold or a settle wakes a lingering writer; a usage record waits for the next commit.
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
    let urgent = !matches!(queued.write, LedgerWrite::Usage(_));
    match sender.send(queued) {
        Ok(()) => {
            progress.queued.fetch_add(1, Ordering::AcqRel);
            if urgent {
                progress.urgent.notify_one();
            }
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
    // Writes held back for the next batch: the settle or release of a hold reserved in memory
    // is written after the batch that placed the hold, since it needs the hold's id.
    let mut carry: Vec<Queued> = Vec::new();
    // Holds reserved in memory, by provisional number: the hold the database placed (`None`
    // when its write failed), until its settle or release takes it.
    let mut placed: HashMap<u64, Option<Hold>> = HashMap::new();
    loop {
        let room = MAX_BATCH.saturating_sub(retries.len()).max(1);
        if !carry.is_empty() {
            batch.append(&mut carry);
            if open {
                open = take_queued(&mut receiver, &mut batch, room);
            }
        } else {
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
                open = gather(&mut receiver, &mut batch, room, &progress).await;
            }
        }
        taken = batch.last().map_or(taken, |queued| queued.seq.max(taken));
        if retry_at.is_some_and(|at| at <= tokio::time::Instant::now()) {
            retry_at = None;
            batch.splice(0..0, retries.drain(..));
        }
        if batch.is_empty() {
            continue;
        }
        carry = batch.split_off(first_needing_a_hold_of(&batch));
        let skipped = with_placed_holds(&mut batch, &mut placed);
        writes.clear();
        writes.extend(
            batch
                .iter()
                .zip(&skipped)
                .filter(|(_, skip)| !**skip)
                .map(|(queued, _)| queued.write.clone()),
        );
        // A panicking store must not stop the writer (reads wait on it).
        let results = AssertUnwindSafe(credits.write_batch(&writes))
            .catch_unwind()
            .await
            .unwrap_or_default();
        if !writes.is_empty() {
            let reached = results.iter().any(|result| match result {
                Ok(_) => true,
                Err(error) => error.kind() == ErrorKind::InsufficientCredits,
            });
            progress.healthy.store(reached, Ordering::Release);
        }
        let mut results = results.into_iter();
        let mut failed_settle = false;
        for (mut queued, skip) in batch.drain(..).zip(skipped) {
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
                placed.insert(number, hold);
            }
            let retry = matches!(
                queued.write,
                LedgerWrite::Settle { .. } | LedgerWrite::Release(_)
            ) && worth_another_try(&result)
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
        let unwritten = retries.iter().chain(&carry).map(|queued| queued.seq).min();
        let done = unwritten.map_or(taken, |oldest| oldest.saturating_sub(1));
        progress.written.send_if_modified(|written| {
            let moved = done > *written;
            *written = (*written).max(done);
            moved
        });
    }
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
            LedgerWrite::Hold(_) | LedgerWrite::Usage(_) => None,
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
                LedgerWrite::Hold(_) | LedgerWrite::Usage(_) => return false,
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
    let mut deadline = tokio::time::Instant::now() + linger_for(batch);
    loop {
        if batch.len() >= room || progress.flush_wanted.swap(false, Ordering::AcqRel) {
            return true;
        }
        if deadline <= tokio::time::Instant::now() {
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
        let newcomers = tokio::time::Instant::now() + linger_for(&batch[seen..]);
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

/// One hold, written through [`CreditStore::write_batch`] (the batch path: one statement on
/// PostgreSQL, no cache invalidation to wait for).
async fn hold_now(credits: &Arc<dyn CreditStore>, request: &HoldRequest) -> Result<Hold> {
    let write = LedgerWrite::Hold(request.clone());
    let written = credits.write_batch(std::slice::from_ref(&write)).await;
    match written.into_iter().next() {
        Some(Ok(Written::Held(hold))) => Ok(hold),
        Some(Err(error)) => Err(error),
        Some(Ok(_)) | None => Err(Error::internal("The hold was not written.")),
    }
}

/// Hand a hold's outcome to its request; release the hold if the request is gone.
fn answer_hold(
    reply: oneshot::Sender<Result<Hold>>,
    answer: Result<Hold>,
    credits: &Arc<dyn CreditStore>,
) {
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
fn report(write: &LedgerWrite, result: Option<Result<Written>>, failures: &Counter) {
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
    use crate::credits::{CreditKind, KeySource, TransactionKind};
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
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
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
        tokio::time::sleep(USAGE_LINGER + LINGER * 10).await;
        for i in 1..=5 {
            writer
                .write(LedgerWrite::Usage(usage(&format!("r{i}"))), None)
                .await;
        }
        store.gate.add_permits(10);
        writer.flushed().await;
        assert_eq!(*store.batches.lock().unwrap(), vec![1, 5]);
    }

    /// Usage records wait up to [`USAGE_LINGER`] for company, a settle only [`LINGER`], and a
    /// read stops the wait. The clock is paused: it moves only while every task sleeps.
    #[tokio::test(start_paused = true)]
    async fn usage_records_linger_longest_and_settles_or_reads_cut_the_wait() {
        let store = gated();
        store.gate.add_permits(100);
        let writer = LedgerWriter::new(store.clone(), 100, Counter::noop());
        writer.write(LedgerWrite::Usage(usage("r0")), None).await;
        tokio::time::sleep(USAGE_LINGER / 2).await;
        assert!(store.batches.lock().unwrap().is_empty());
        let asked = tokio::time::Instant::now();
        writer.flushed().await;
        assert!(
            asked.elapsed() < LINGER,
            "a read waited {:?}",
            asked.elapsed()
        );
        assert_eq!(*store.batches.lock().unwrap(), vec![1]);

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
                request_id: "h".into(),
                amount_micros: 10,
                ttl_secs: 60,
            })
            .await
            .unwrap();
        writer.write(LedgerWrite::Usage(usage("r1")), None).await;
        tokio::time::sleep(USAGE_LINGER / 2).await;
        let queued = tokio::time::Instant::now();
        let settle = LedgerWrite::Settle {
            hold,
            usage: usage("h"),
        };
        writer.write(settle, None).await;
        while store.batches.lock().unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        assert!(queued.elapsed() <= LINGER + Duration::from_millis(1));
        assert_eq!(*store.batches.lock().unwrap(), vec![1, 2]);
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
        // A hold does not linger: it is written at once, beside what lingers.
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
        writer.flushed().await;
        assert_eq!(*store.batches.lock().unwrap(), vec![3, 1, 1]);
        let holds = store.inner.transactions(
            "u",
            Page {
                limit: 10,
                before_id: None,
            },
        );
        let kinds: Vec<_> = holds.await.unwrap().iter().map(|t| t.kind).collect();
        assert_eq!(kinds, [TransactionKind::Hold, TransactionKind::TopUp]);
    }

    /// A hold is written beside the queue; refused while a settle is still queued, it is tried
    /// again once that settle, which may give back what it needs, is written.
    #[tokio::test]
    async fn a_hold_refused_ahead_of_an_earlier_give_back_is_tried_after_it() {
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
        let request = |id: &str, amount_micros| HoldRequest {
            user_id: "u".into(),
            request_id: id.into(),
            amount_micros,
            ttl_secs: 60,
        };
        let first = store.inner.hold(request("a", 100)).await.unwrap();
        let writer = LedgerWriter::new(store.clone(), 100, Counter::noop());
        // The settle charges 7 of 100 and lingers; the next hold needs 90 of what it gives back.
        let settle = LedgerWrite::Settle {
            hold: first,
            usage: usage("a"),
        };
        writer.write(settle, None).await;
        let second = writer.hold(request("b", 90)).await.unwrap();
        assert_eq!(second.amount_micros, 90);
        // The hold (refused), the queued settle, the hold again.
        assert_eq!(*store.batches.lock().unwrap(), vec![1, 1, 1]);
        assert_eq!(store.inner.balance("u").await.unwrap(), 3);
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
