//! Holds served from balance leases ([`crate::gateway::lease`]), and the lease writes: the
//! charge of each settle, and the returns of surplus, of idle leases and at shutdown.
//!
//! A take is awaited beside the queue (one transaction); charges and returns go through the
//! queue, in the order memory changed, so a return is written after the charges queued
//! before it.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::LedgerWriter;
use super::progress::Progress;
use super::queue::{Direct, Sending, enqueue};
use super::queued::Queued;
use crate::credits::{
    CreditStore, Hold, HoldRequest, LeaseCharge, LeaseOutcome, LeaseRequest, LedgerWrite,
};
use crate::error::{Error, Result};
use crate::gateway::lease::{LeaseAccount, Leases};
use crate::gateway::owed::{Owed, detached};

/// Takes tried for one hold before it is placed on its own (others kept spending what each
/// take brought).
const TRIES: usize = 4;

/// What a take found.
enum Took {
    /// The lease covers the hold now (or did when the take ended).
    Ready,
    /// The balance cannot cover the hold, even after the queue was written.
    Short { balance: i64, available: i64 },
}

impl LedgerWriter {
    /// Serve a hold from this replica's lease on the account, taking or extending the lease
    /// when it is short. The take runs on a task of its own, so a request that goes away
    /// cannot leave the lease taken in the database and unknown here.
    pub(super) async fn hold_from_lease(
        &self,
        leases: &Arc<Leases>,
        request: HoldRequest,
    ) -> Result<Hold> {
        let account = leases.account(&request.user_id);
        let amount = request.amount_micros;
        for _ in 0..TRIES {
            if let Some(hold) = account
                .lock()
                .serve(&request.user_id, amount, Instant::now())
            {
                return Ok(hold);
            }
            self.start_sweeper(leases);
            let take = take_into(
                account.clone(),
                self.credits.clone(),
                self.progress.clone(),
                request.clone(),
            );
            match detached(take).await {
                Some(Ok(Took::Ready)) => {}
                Some(Ok(Took::Short { balance, available })) => {
                    self.give_back_refused(&account, &request.user_id).await;
                    return Err(Error::insufficient_credits(amount, balance + available));
                }
                Some(Err(error)) => return Err(error),
                None => return Err(Error::internal("Taking a balance lease failed.")),
            }
        }
        self.hold_awaited(request).await
    }

    /// A hold was refused: give the account's lease back (see `LeaseState::refused`) and wait
    /// for the return to be written, so the replica the client tries next finds it in the
    /// balance. Two replicas each keeping less than a hold, with the rest in the balance, would
    /// otherwise refuse every request until one lease idled.
    async fn give_back_refused(&self, account: &LeaseAccount, user_id: &str) {
        let Some(sending) = self.sending() else {
            return;
        };
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            return;
        };
        let give = account.lock().refused(user_id);
        if let Some(give) = give {
            send(&sending, LedgerWrite::LeaseReturn(give), None, slot);
            self.progress.flushed().await;
        }
    }

    /// Settle (`charge`) or release (`None`) a hold served from lease `lease_id`: in memory at
    /// once, and the charge queued, with whatever the lease now has to give back.
    pub(super) async fn settle_leased(
        &self,
        leases: &Arc<Leases>,
        lease_id: String,
        write: LedgerWrite,
        owed: Option<Owed>,
    ) {
        let (hold, usage) = match write {
            LedgerWrite::Settle { hold, usage } => (hold, Some(usage)),
            LedgerWrite::Release(hold) => (hold, None),
            _ => return,
        };
        let Some(sending) = self.sending() else {
            tracing::warn!(hold = %hold.id, "a lease's hold settled outside a runtime; uncharged");
            return;
        };
        let (leases, slots) = (leases.clone(), self.slots.clone());
        // On a task of its own: waiting for room in the queue must not lose the settle.
        detached(async move {
            let slot = match usage {
                Some(_) => slots.clone().acquire_owned().await.ok(),
                None => None,
            };
            let account = leases.account(&hold.user_id);
            let mut state = account.lock();
            let charge = usage
                .as_ref()
                .map_or(0, |usage| usage.cost_micros.clamp(0, hold.amount_micros));
            let now = Instant::now();
            let plan = state.settle(&lease_id, hold.amount_micros, charge, now);
            if let (Some(plan), Some(mut usage), Some(slot)) = (plan, usage, slot) {
                usage.cost_micros = charge;
                let charge = LeaseCharge {
                    lease_id: plan.lease_id,
                    seq: plan.seq,
                    usage,
                    ttl_secs: plan.ttl_secs,
                };
                send(&sending, LedgerWrite::LeaseCharge(charge), owed, slot);
            }
            if let Ok(slot) = slots.try_acquire_owned()
                && let Some(give) = state.surplus(&hold.user_id, now)
            {
                send(&sending, LedgerWrite::LeaseReturn(give), None, slot);
            }
        })
        .await;
    }

    /// Give every lease back (a shutdown, once no request is in flight); completes once the
    /// returns are written.
    pub async fn return_leases(&self) {
        let (Some(leases), Some(sending)) = (&self.leases, self.sending()) else {
            return;
        };
        for (user_id, account) in leases.all() {
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                return;
            };
            let _taking = account.taking.lock().await;
            let give = account.lock().close(&user_id);
            if let Some(give) = give {
                send(&sending, LedgerWrite::LeaseReturn(give), None, slot);
            }
        }
        self.progress.flushed().await;
    }

    /// Start the task that gives idle leases back (once).
    fn start_sweeper(&self, leases: &Arc<Leases>) {
        let Some(sending) = self.sending() else {
            return;
        };
        self.sweeper.get_or_init(|| {
            // No strong sender: the writer task still ends when the gateway goes.
            let sweeper = Sweeper {
                leases: Arc::downgrade(leases),
                sender: sending.sender.downgrade(),
                progress: sending.progress,
                slots: self.slots.clone(),
                direct: sending.direct,
            };
            tokio::spawn(sweeper.run());
        });
    }
}

/// Take (or extend) the account's lease so it covers `request`. Refused: the queue is
/// written (queued charges and returns may give back what it needs) and only the need is
/// asked once more.
async fn take_into(
    account: Arc<LeaseAccount>,
    credits: Arc<dyn CreditStore>,
    progress: Arc<Progress>,
    request: HoldRequest,
) -> Result<Took> {
    let _taking = account.taking.lock().await;
    let mut flushed = false;
    loop {
        let plan = account
            .lock()
            .plan_take(request.amount_micros, Instant::now());
        if plan.need <= 0 {
            // Another take covered it meanwhile.
            return Ok(Took::Ready);
        }
        // After a refusal only the need is asked: the rest is for other replicas.
        let (want, floor) = if flushed {
            (plan.need, 0)
        } else {
            (plan.want, plan.floor)
        };
        let asked = LeaseRequest {
            user_id: request.user_id.clone(),
            lease_id: plan.lease_id.clone(),
            need_micros: plan.need,
            want_micros: want,
            floor_micros: floor,
            ttl_secs: request.ttl_secs,
        };
        match credits.take_lease(asked).await? {
            LeaseOutcome::Taken {
                lease_id,
                taken_micros,
            } => {
                // Less than twice the need: the balance is small (see `OpenLease::constrained`).
                let small = taken_micros < plan.need.saturating_mul(2);
                let kept = account.lock().add_taken(
                    plan.lease_id.as_deref(),
                    lease_id,
                    taken_micros,
                    small,
                    floor,
                    request.ttl_secs,
                );
                if kept {
                    return Ok(Took::Ready);
                }
                // The lease was closed while the take ran: take again, into a new one.
            }
            LeaseOutcome::Short { .. } if !flushed && progress.pending() => {
                progress.flushed().await;
                flushed = true;
            }
            LeaseOutcome::Short { balance_micros } => {
                return Ok(Took::Short {
                    balance: balance_micros,
                    available: plan.available,
                });
            }
        }
    }
}

/// Queue a lease write in the room `slot` holds; when the writer is gone, write it on a task
/// of its own. Called under the account's lock, so writes queue in the order memory changed.
fn send(sending: &Sending, write: LedgerWrite, owed: Option<Owed>, slot: OwnedSemaphorePermit) {
    let queued = Queued::new(write, owed, slot);
    if let Some(refused) = enqueue(&sending.progress, &sending.sender, queued) {
        let direct = sending.direct.clone();
        tokio::spawn(direct.write(refused.write, refused.owed));
    }
}

/// Gives back leases with no hold in flight for the idle time. Ends with the writer.
struct Sweeper {
    leases: Weak<Leases>,
    sender: mpsc::WeakUnboundedSender<Queued>,
    progress: Arc<Progress>,
    slots: Arc<Semaphore>,
    direct: Direct,
}

impl Sweeper {
    async fn run(self) {
        loop {
            let tick = self.leases.upgrade().map_or(Duration::ZERO, |l| l.idle / 4);
            tokio::time::sleep(tick.clamp(Duration::from_millis(10), Duration::from_secs(1))).await;
            let (Some(leases), Some(sender)) = (self.leases.upgrade(), self.sender.upgrade())
            else {
                return;
            };
            let sending = Sending {
                progress: self.progress.clone(),
                sender,
                direct: self.direct.clone(),
            };
            let now = Instant::now();
            for (user_id, account) in leases.all() {
                let Ok(_taking) = account.taking.try_lock() else {
                    continue;
                };
                let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                    break;
                };
                let give = account.lock().close_if_idle(&user_id, now, leases.idle);
                if let Some(give) = give {
                    send(&sending, LedgerWrite::LeaseReturn(give), None, slot);
                }
            }
        }
    }
}
