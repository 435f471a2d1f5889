//! Placing holds: awaited beside the queue, or reserved in memory and queued.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::oneshot;

use super::LedgerWriter;
use super::queue::enqueue;
use super::queued::Queued;
use crate::credits::{CreditStore, Hold, HoldRequest, LedgerWrite, Written};
use crate::error::{Error, ErrorKind, Result};
use crate::gateway::reserve::Account;

impl LedgerWriter {
    /// Place a hold. With balances in memory it is reserved there and its write queued (see
    /// [`crate::gateway::reserve`]); otherwise, or while the database is failing, it is
    /// awaited.
    pub async fn hold(&self, request: HoldRequest) -> Result<Hold> {
        if let Some(leases) = &self.leases {
            // A hold that counts against a key budget is decided by the store, where the
            // budget is kept; while the database fails, a hold is refused rather than served.
            let healthy = self.progress.healthy.load(Ordering::Acquire);
            if healthy && request.budget.is_none() && self.sender().is_some() {
                return self.hold_from_lease(leases, request).await;
            }
            return self.hold_awaited(request).await;
        }
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
        // A hold that counts against a key budget is decided by the store, where the budget
        // is kept (shared by every replica): awaited, like a hold while the database fails.
        let in_memory = healthy && request.budget.is_none();
        let (Some(sender), true) = (self.sender(), in_memory) else {
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
        let queued = Queued::reserved_hold(request, number, slot);
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
    pub(super) async fn hold_awaited(&self, request: HoldRequest) -> Result<Hold> {
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
