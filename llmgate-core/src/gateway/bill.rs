//! Billing a whole answer (chat or embeddings) once its call succeeded: the deployment's
//! state learns of the success and the tokens spent, the hold is settled to the charge (or
//! usage recorded when there is none), and the meters count it.

use super::answer::RouteInfo;
use super::inner::Gateway;
use super::plan::Attempt;
use super::prepared::Prepared;
use super::retry::Tried;
use crate::caller::Caller;
use crate::chat::Usage;
use crate::error::Result;
use crate::pricing::CostBreakdown;

/// What a billed answer cost and how it was served.
pub(super) struct Billed {
    pub route: RouteInfo,
    pub cost_micros: i64,
    pub cost_breakdown: CostBreakdown,
}

impl<T> Tried<T> {
    /// The value, and the rest of the outcome for [`Gateway::bill`].
    pub(super) fn take(self) -> (T, Tried<()>) {
        let Tried {
            value,
            index,
            calls,
            log,
            ticket,
            upstream,
        } = self;
        let rest = Tried {
            value: (),
            index,
            calls,
            log,
            ticket,
            upstream,
        };
        (value, rest)
    }
}

impl Gateway {
    /// Bill the successful call `call` for `usage`.
    pub(super) async fn bill(
        &self,
        caller: &Caller,
        prepared: &mut Prepared,
        call: Tried<()>,
        usage: &Usage,
    ) -> Result<Billed> {
        let Tried {
            index,
            calls,
            log,
            mut ticket,
            upstream,
            ..
        } = call;
        ticket.succeeded();
        ticket.spent_tokens(usage.prompt_tokens + usage.completion_tokens);
        drop(ticket);
        let attempt: &Attempt = &prepared.attempts[index];
        let mut cost_breakdown = attempt.cost_of(usage)?;
        let record = self.usage_record(
            caller,
            &prepared.request_id,
            attempt,
            usage,
            cost_breakdown.cost_micros,
        );
        let (hold, owed) = prepared.hold.disarm();
        let cost_micros = self.finish(hold, record, owed).await?;
        let meters = self
            .inner
            .metrics
            .deployment(attempt.slot, &attempt.deployment.provider);
        meters.billed(usage.prompt_tokens, usage.completion_tokens, cost_micros);
        if index > 0 {
            meters.fallbacks.increment(1);
        }
        cost_breakdown.cost_micros = cost_micros;
        Ok(Billed {
            route: self.route_info(prepared, attempt, calls, log, upstream),
            cost_micros,
            cost_breakdown,
        })
    }
}
