//! Balance leases in the in-memory store: open holds marked as leases, as in the SQL ledger.

use super::{LedgerState, OpenHold, unix_now};
use crate::credits::{
    LeaseCharge, LeaseOutcome, LeaseRequest, LeaseReturn, TransactionKind, Written, lease_take,
};

impl LedgerState {
    /// The balance plus what the account's leases hold: what it may spend once the requests
    /// served from leases are settled.
    pub(super) fn spendable(&self, user_id: &str) -> i64 {
        let leased: i64 = self
            .holds
            .values()
            .filter(|hold| hold.lease_seq.is_some() && hold.user_id == user_id)
            .map(|hold| hold.amount_micros)
            .sum();
        self.balances.get(user_id).copied().unwrap_or(0) + leased
    }

    pub(super) fn take_lease(&mut self, request: &LeaseRequest) -> LeaseOutcome {
        let balance = self.balances.get(&request.user_id).copied().unwrap_or(0);
        if balance < request.need_micros || request.need_micros < 0 {
            return LeaseOutcome::Short {
                balance_micros: balance,
            };
        }
        let take = lease_take(balance, request);
        let expires_at = unix_now() + i64::try_from(request.ttl_secs).unwrap_or(i64::MAX / 2);
        let existing = request
            .lease_id
            .as_ref()
            .filter(|id| self.holds.get(*id).is_some_and(|h| h.lease_seq.is_some()));
        let lease_id = match existing {
            Some(id) => id.clone(),
            None => self.open_hold(OpenHold {
                user_id: request.user_id.clone(),
                amount_micros: 0,
                expires_at,
                budget: None,
                lease_seq: Some(0),
            }),
        };
        if let Some(lease) = self.holds.get_mut(&lease_id) {
            lease.amount_micros += take;
            lease.expires_at = expires_at;
        }
        *self.balances.entry(request.user_id.clone()).or_default() -= take;
        let mut entry = self.entry(&request.user_id, TransactionKind::Hold, -take);
        entry.reason = Some(format!("lease {lease_id}"));
        self.append(entry);
        LeaseOutcome::Taken {
            lease_id,
            taken_micros: take,
        }
    }

    /// The lease `id` if it is open; `Err` with what to answer when it is gone or has applied
    /// write `seq` before.
    fn lease_for(&mut self, id: &str, seq: i64) -> Result<&mut OpenHold, Written> {
        match self.holds.get_mut(id) {
            Some(lease) if lease.lease_seq.is_some_and(|seen| seen >= seq) => {
                Err(Written::LeaseCharged(None))
            }
            Some(lease) if lease.lease_seq.is_some() => Ok(lease),
            _ => Err(Written::LeaseGone),
        }
    }

    pub(super) fn charge_lease(&mut self, charge: &LeaseCharge) -> Written {
        let cost = charge.usage.cost_micros.max(0);
        let expires_at = unix_now() + i64::try_from(charge.ttl_secs).unwrap_or(i64::MAX / 2);
        let lease = match self.lease_for(&charge.lease_id, charge.seq) {
            Ok(lease) if lease.amount_micros >= cost => lease,
            Ok(_) => return Written::LeaseGone,
            Err(answer) => return answer,
        };
        lease.amount_micros -= cost;
        lease.lease_seq = Some(charge.seq);
        lease.expires_at = expires_at;
        let user_id = lease.user_id.clone();
        // Out of the lease and charged: a release, then the charge; the balance is unchanged.
        let balance = self.balances.get(&user_id).copied().unwrap_or(0);
        let mut release = self.entry(&user_id, TransactionKind::Release, cost);
        release.balance_after_micros = balance.saturating_add(cost);
        release.request_id = Some(charge.usage.request_id.clone());
        release.reason = Some(format!("lease {}", charge.lease_id));
        self.append(release);
        self.charge(&charge.usage, cost, format!("lease {}", charge.lease_id));
        Written::LeaseCharged(Some(self.spendable(&user_id)))
    }

    pub(super) fn return_lease(&mut self, give: &LeaseReturn) -> Written {
        let lease = match self.lease_for(&give.lease_id, give.seq) {
            Ok(lease) => lease,
            Err(Written::LeaseCharged(None)) => return Written::LeaseReturned,
            Err(answer) => return answer,
        };
        let amount = if give.close {
            lease.amount_micros
        } else if (0..=lease.amount_micros).contains(&give.amount_micros) {
            give.amount_micros
        } else {
            // More than the lease holds: the replica's count is off; its close settles it.
            return Written::LeaseReturned;
        };
        lease.amount_micros -= amount;
        lease.lease_seq = Some(give.seq);
        let user_id = lease.user_id.clone();
        if give.close {
            self.holds.remove(&give.lease_id);
        }
        *self.balances.entry(user_id.clone()).or_default() += amount;
        let mut entry = self.entry(&user_id, TransactionKind::Release, amount);
        entry.reason = Some(format!("lease {}", give.lease_id));
        self.append(entry);
        Written::LeaseReturned
    }
}
