//! A request's ledger work: placing its hold, guarding it until it is settled or released,
//! and settling it (or recording the usage of an uncharged request).

use std::sync::Arc;

use super::inner::Gateway;
use super::owed::{Owed, detached};
use super::plan::Attempt;
use super::settle::{release_hold, settle_or_record};
use super::writer::LedgerWriter;
use crate::caller::{Billing, Caller};
use crate::credits::{BudgetHold, CreditStore, Hold, HoldRequest, LedgerWrite, UsageRecord};
use crate::error::{Error, ErrorKind, Result};
use crate::memory::unix_now;

/// A request's hold until it is settled or released. Dropped while still armed (the caller
/// went away during a call or a backoff, or an error cut the request short), it releases the
/// hold in the background, so the balance is whole again without waiting for the hold's expiry.
pub(super) struct HoldGuard {
    pub(super) credits: Arc<dyn CreditStore>,
    pub(super) writer: Option<Arc<LedgerWriter>>,
    pub(super) hold: Option<Hold>,
    /// The request's ledger work, travelling with whoever settles or releases the hold.
    pub(super) owed: Option<Owed>,
}

impl HoldGuard {
    /// Hand the hold (and the ledger work it owes) over to whoever settles it.
    pub(super) fn disarm(&mut self) -> (Option<Hold>, Option<Owed>) {
        (self.hold.take(), self.owed.take())
    }

    /// Give the whole hold back now (on a task of its own, so it completes even if this
    /// request is dropped meanwhile).
    pub(super) async fn release(&mut self) {
        let owed = self.owed.take();
        if let Some(hold) = self.hold.take() {
            let credits = self.credits.clone();
            let writer = self.writer.clone();
            detached(release_hold(credits, writer, hold, owed)).await;
        }
    }
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        let owed = self.owed.take();
        let Some(hold) = self.hold.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(hold = %hold.id, "request dropped outside a runtime; its hold is left to expire");
            return;
        };
        let credits = self.credits.clone();
        let writer = self.writer.clone();
        runtime.spawn(release_hold(credits, writer, hold, owed));
    }
}

/// The key budget a caller's holds count against, for the period holding now.
fn budget_of(caller: &Caller) -> Option<BudgetHold> {
    let key = caller.key.as_ref()?;
    let budget = key.budget?;
    Some(BudgetHold {
        key_id: key.key_id.to_string(),
        period_start: budget.period.start_of(unix_now()),
        max_micros: budget.max_micros,
    })
}

impl Gateway {
    /// Hold the most any planned attempt may cost. When the balance cannot cover that but
    /// can cover some attempts, the ones it cannot cover are dropped (they would never be
    /// tried) and the rest are held for: an expensive last-resort fallback does not turn away
    /// a user who can afford the first choice.
    pub(super) async fn place_hold(
        &self,
        caller: &Caller,
        request_id: &Arc<str>,
        attempts: &mut Vec<Attempt>,
    ) -> Result<Option<Hold>> {
        if caller.billing == Billing::Uncharged {
            return Ok(None);
        }
        let amount = attempts.iter().map(|a| a.max_charge).max().unwrap_or(0);
        // With write-behind the hold goes through the same queue as the settles: it is
        // committed after (and sees) every settle queued before it.
        let refused = match self.hold(caller, request_id, amount).await {
            Err(error) if error.kind() == ErrorKind::InsufficientCredits => error,
            placed => return placed,
        };
        let balance = self.inner.ledger.balance(&caller.user_id).await?;
        let before = attempts.len();
        attempts.retain(|a| a.max_charge <= balance);
        if attempts.is_empty() || attempts.len() == before {
            return Err(refused);
        }
        let amount = attempts.iter().map(|a| a.max_charge).max().unwrap_or(0);
        self.hold(caller, request_id, amount).await
    }

    async fn hold(
        &self,
        caller: &Caller,
        request_id: &Arc<str>,
        amount: i64,
    ) -> Result<Option<Hold>> {
        if amount == 0 {
            return Ok(None);
        }
        let request = HoldRequest {
            user_id: caller.user_id.to_string(),
            request_id: request_id.to_string(),
            amount_micros: amount,
            ttl_secs: self.inner.hold_ttl.as_secs(),
            budget: budget_of(caller),
        };
        let hold = match &self.inner.writer {
            Some(writer) => writer.hold(request).await?,
            None => self.inner.ledger.hold(request).await?,
        };
        Ok(Some(hold))
    }

    /// Settle the hold (or just record usage when there is none); returns the charge.
    ///
    /// With write-behind the write is queued and the charge returned at once. Otherwise the
    /// write runs on a task of its own, so a client going away cannot cut it in half. An
    /// uncharged request whose usage cannot be recorded (the database is down) is still
    /// answered: the failure is logged and counted. A hold that cannot be settled fails the
    /// request; the hold is reclaimed at its expiry, so nothing is charged.
    pub(super) async fn finish(
        &self,
        hold: Option<Hold>,
        record: UsageRecord,
        owed: Option<Owed>,
    ) -> Result<i64> {
        if let Some(writer) = &self.inner.writer {
            // Off the response path: the charge is known now, the write follows.
            let (charged, write) = match hold {
                Some(hold) => (
                    record.cost_micros.min(hold.amount_micros),
                    LedgerWrite::Settle {
                        hold,
                        usage: record,
                    },
                ),
                None => (record.cost_micros, LedgerWrite::Usage(record)),
            };
            writer.write(write, owed).await;
            return Ok(charged);
        }
        let credits = self.inner.ledger.clone();
        let held = hold.is_some();
        let written = detached(async move {
            let outcome = settle_or_record(&credits, hold.as_ref(), &record).await;
            if let (Err(error), None) = (&outcome, &hold) {
                tracing::warn!(%error, request_id = %record.request_id, "recording usage failed; the request was served");
            }
            drop(owed);
            outcome
        })
        .await
        .unwrap_or_else(|| Err(Error::internal("Settling the request failed.")));
        match written {
            Ok(charged) => Ok(charged),
            Err(_) if !held => {
                self.inner.metrics.usage_record_failures.increment(1);
                Ok(0)
            }
            Err(error) => Err(error),
        }
    }

    pub(super) fn usage_record(
        &self,
        caller: &Caller,
        request_id: &str,
        attempt: &Attempt,
        usage: &crate::chat::Usage,
        cost: i64,
    ) -> UsageRecord {
        let mut record = UsageRecord {
            user_id: caller.user_id.to_string(),
            request_id: request_id.to_string(),
            model: attempt.deployment.name.clone(),
            provider: attempt.deployment.provider.clone(),
            key_source: attempt.key_source,
            prompt_tokens: 0,
            completion_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            cost_micros: cost,
            at: unix_now(),
        };
        record.set_tokens(usage);
        record
    }
}
