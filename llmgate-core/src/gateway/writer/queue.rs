//! Putting a write on the queue, or writing it directly when there is no writer task.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use metrics::Counter;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::LedgerWriter;
use super::progress::Progress;
use super::queued::Queued;
use super::task::report;
use crate::credits::{CreditStore, LedgerWrite};
use crate::gateway::lease::lease_of;
use crate::gateway::owed::{Owed, detached};
use crate::gateway::reserve::{Reservations, provisional_number};

/// The sending side of the queue, as a task of its own needs it.
#[derive(Clone)]
pub(super) struct Sending {
    pub progress: Arc<Progress>,
    pub sender: mpsc::UnboundedSender<Queued>,
    /// Where a write goes when the writer task is gone.
    pub direct: Direct,
}

impl Sending {
    /// Queue `write` in the room `slot` holds; when the writer is gone (its runtime is shutting
    /// down), write it now on a task of its own.
    async fn send(&self, write: LedgerWrite, owed: Option<Owed>, slot: OwnedSemaphorePermit) {
        if let Some(refused) = enqueue(&self.progress, &self.sender, Queued::new(write, owed, slot))
        {
            detached(self.direct.clone().write(refused.write, refused.owed)).await;
        }
    }
}

/// Writes one write without the queue.
#[derive(Clone)]
pub(super) struct Direct {
    pub credits: Arc<dyn CreditStore>,
    pub failures: Counter,
}

impl Direct {
    /// Write it now, report a failure and drop the owed work.
    pub async fn write(self, write: LedgerWrite, owed: Option<Owed>) {
        let results = self.credits.write_batch(std::slice::from_ref(&write)).await;
        report(&write, results.into_iter().next(), &self.failures);
        drop(owed);
    }
}

impl LedgerWriter {
    /// Queue a write; it is done (and `owed` dropped) once written. Waits only when the queue
    /// is full, and then on a task of its own, so a caller that goes away cannot lose the
    /// write. Outside a runtime the write is made before this returns.
    pub async fn write(&self, write: LedgerWrite, owed: Option<Owed>) {
        if let Some(leases) = &self.leases
            && let LedgerWrite::Settle { hold, .. } | LedgerWrite::Release(hold) = &write
            && let Some(lease_id) = lease_of(hold)
        {
            let lease_id = lease_id.to_owned();
            self.settle_leased(leases, lease_id, write, owed).await;
            return;
        }
        let Some(sending) = self.sending() else {
            self.direct().write(write, owed).await;
            return;
        };
        let (write, owed) = match &self.reservations {
            Some(reservations)
                if matches!(write, LedgerWrite::Settle { .. } | LedgerWrite::Release(_)) =>
            {
                // On a task of its own: waiting for the account's lock must not lose the write.
                let (reservations, slots) = (reservations.clone(), self.slots.clone());
                let sending = sending.clone();
                match detached(give_back(reservations, slots, sending, write, owed)).await {
                    Some(Some(refused)) => refused,
                    Some(None) | None => return,
                }
            }
            _ => (write, owed),
        };
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            sending.send(write, owed, slot).await;
            return;
        }
        // The queue is full: wait for room on a task that finishes whatever happens to us.
        let slots = self.slots.clone();
        detached(async move {
            match slots.acquire_owned().await {
                Ok(slot) => sending.send(write, owed, slot).await,
                Err(_) => sending.direct.write(write, owed).await,
            }
        })
        .await;
    }

    /// The queue's sending side; `None` outside a runtime.
    pub(super) fn sending(&self) -> Option<Sending> {
        let sender = self.sender()?.clone();
        Some(Sending {
            progress: self.progress.clone(),
            sender,
            direct: self.direct(),
        })
    }

    fn direct(&self) -> Direct {
        Direct {
            credits: self.credits.clone(),
            failures: self.failures.clone(),
        }
    }
}

/// Queue a settle or release and give back in memory what it returns, as one step under the
/// account's lock (see [`crate::gateway::reserve`]). Gives the write back when the writer is
/// gone.
async fn give_back(
    reservations: Arc<Reservations>,
    slots: Arc<Semaphore>,
    sending: Sending,
    write: LedgerWrite,
    owed: Option<Owed>,
) -> Option<(LedgerWrite, Option<Owed>)> {
    let (hold, returned) = match &write {
        LedgerWrite::Settle { hold, usage } => (
            hold,
            hold.amount_micros - usage.cost_micros.clamp(0, hold.amount_micros),
        ),
        LedgerWrite::Release(hold) => (hold, hold.amount_micros),
        LedgerWrite::Hold(_)
        | LedgerWrite::Usage(_)
        | LedgerWrite::LeaseCharge(_)
        | LedgerWrite::LeaseReturn(_) => return Some((write, owed)),
    };
    let provisional = provisional_number(hold).is_some();
    let account = reservations.account(&hold.user_id);
    let mut account = account.lock().await;
    let Ok(slot) = slots.acquire_owned().await else {
        return Some((write, owed));
    };
    let queued = Queued::new(write, owed, slot);
    if let Some(refused) = enqueue(&sending.progress, &sending.sender, queued) {
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
pub(super) fn enqueue(
    progress: &Progress,
    sender: &mpsc::UnboundedSender<Queued>,
    mut queued: Queued,
) -> Option<Queued> {
    let _order = crate::sync::lock(&progress.order);
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
