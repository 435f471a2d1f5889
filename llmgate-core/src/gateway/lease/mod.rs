//! Balance leases as this replica keeps them: per account, the open lease's spendable part,
//! the holds served from it and still in flight, and how much the account used lately.
//!
//! The one rule that keeps the money right: what the lease holds in the database, once the
//! queued writes are written, is `available` plus the holds in flight. A hold takes from
//! `available`; its settle gives back `hold − charge` and queues the charge (the lease gives
//! up `charge`); a return takes from `available` and queues the return. Each change and the
//! queueing of its write happen under the account's lock, so the two never drift apart
//! except the safe way (a write that failed for good leaves the database lease holding more,
//! and the lease's close gives that back). See `writer::leased` for the writes.

mod sizing;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::credits::{Hold, LeaseReturn};
use sizing::{Demand, FLOOR_HOLDS};

/// The ids of holds served from a lease start with this, then the lease's id.
const LEASE_PREFIX: &str = "lease:";

/// The lease a hold was served from; `None` for a hold of its own in the database.
pub(super) fn lease_of(hold: &Hold) -> Option<&str> {
    hold.id.strip_prefix(LEASE_PREFIX)
}

/// An account without a lease, a hold in flight or a hold this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// Every account this replica holds leases on.
#[derive(Debug)]
pub(super) struct Leases {
    accounts: Mutex<HashMap<String, Arc<LeaseAccount>>>,
    /// A lease with no hold in flight for this long is given back.
    pub idle: Duration,
}

/// One account's lease. `taking` makes takes one at a time (the others wait and are then
/// served from what it took).
#[derive(Debug)]
pub(super) struct LeaseAccount {
    state: Mutex<LeaseState>,
    pub taking: tokio::sync::Mutex<()>,
}

/// The open lease (if any), the holds in flight, and the recent demand.
#[derive(Debug)]
pub(super) struct LeaseState {
    lease: Option<OpenLease>,
    in_flight: u32,
    in_flight_micros: i64,
    last_active: Instant,
    demand: Demand,
}

#[derive(Debug)]
struct OpenLease {
    id: String,
    /// What may be held from it now without asking the database.
    available: i64,
    /// The number of its next charge or return.
    next_seq: i64,
    /// The last take got less than twice what it needed (the balance held less than three
    /// times the need, or only the need after the queue was written): give everything back as
    /// soon as no hold is in flight, so other replicas can spend it. A larger balance keeps
    /// its lease until it idles, whatever the take was cut to.
    constrained: bool,
    /// What returning surplus leaves it at the least: the floor its last take was granted
    /// (see [`FLOOR_HOLDS`]), so a lease sized by the floor is not given back at the next
    /// settle for exceeding the little recent demand.
    keep: i64,
    ttl_secs: u64,
}

/// What a take should ask for: the lease to extend, the least and the most.
pub(super) struct TakePlan {
    pub lease_id: Option<String>,
    pub need: i64,
    pub want: i64,
    /// What the take should reach, demand aside (see [`FLOOR_HOLDS`]).
    pub floor: i64,
    /// What the lease has available now (for the refusal's figure).
    pub available: i64,
}

/// A settle's charge to queue: the lease, its write number and expiry renewal.
pub(super) struct ChargePlan {
    pub lease_id: String,
    pub seq: i64,
    pub ttl_secs: u64,
}

impl Leases {
    pub fn new(idle: Duration) -> Self {
        Self {
            accounts: Mutex::new(HashMap::new()),
            idle,
        }
    }

    /// The user's account (created empty on first use).
    pub fn account(&self, user_id: &str) -> Arc<LeaseAccount> {
        let mut accounts = self.accounts();
        if let Some(account) = accounts.get(user_id) {
            return account.clone();
        }
        let account = Arc::new(LeaseAccount {
            state: Mutex::new(LeaseState::new(Instant::now())),
            taking: tokio::sync::Mutex::new(()),
        });
        accounts.insert(user_id.to_owned(), account.clone());
        account
    }

    /// Every account, for the sweeper and a shutdown; forgets the long-idle ones.
    pub fn all(&self) -> Vec<(String, Arc<LeaseAccount>)> {
        let now = Instant::now();
        let mut accounts = self.accounts();
        // Only an account nobody else holds (cloning one takes this map's lock) is dropped,
        // so a take in progress never lands in a forgotten account.
        accounts.retain(|_, account| {
            Arc::strong_count(account) > 1 || !account.lock().forgettable(now)
        });
        accounts
            .iter()
            .map(|(user, account)| (user.clone(), account.clone()))
            .collect()
    }

    /// Micro-credits held by this user's requests in flight from a lease: a balance read
    /// (which counts leases as spendable) subtracts them.
    pub fn in_flight_micros(&self, user_id: &str) -> i64 {
        let account = self.accounts().get(user_id).cloned();
        account.map_or(0, |account| account.lock().in_flight_micros)
    }

    /// The lease `lease_id` is gone (reclaimed): forget it.
    pub fn forget(&self, user_id: &str, lease_id: &str) {
        if let Some(account) = self.accounts().get(user_id).cloned() {
            account.lock().forget(lease_id);
        }
    }

    fn accounts(&self) -> MutexGuard<'_, HashMap<String, Arc<LeaseAccount>>> {
        crate::sync::lock(&self.accounts)
    }
}

impl LeaseAccount {
    /// The account's state; nothing awaits while it is held.
    pub fn lock(&self) -> MutexGuard<'_, LeaseState> {
        crate::sync::lock(&self.state)
    }
}

impl LeaseState {
    fn new(now: Instant) -> Self {
        Self {
            lease: None,
            in_flight: 0,
            in_flight_micros: 0,
            last_active: now,
            demand: Demand::new(now),
        }
    }

    /// Serve a hold of `amount` from the lease, if it has that much available.
    pub fn serve(&mut self, user_id: &str, amount: i64, now: Instant) -> Option<Hold> {
        let lease = self.lease.as_mut().filter(|l| l.available >= amount)?;
        lease.available -= amount;
        let id = format!("{LEASE_PREFIX}{}", lease.id);
        self.in_flight += 1;
        self.in_flight_micros += amount;
        self.last_active = now;
        self.demand.add(now, amount);
        Some(Hold {
            id,
            user_id: user_id.to_owned(),
            amount_micros: amount,
        })
    }

    /// What to take for a hold of `amount` the lease cannot serve: the rest of it at least,
    /// and enough beyond it to last about a window at the recent demand.
    pub fn plan_take(&mut self, amount: i64, now: Instant) -> TakePlan {
        let available = self.lease.as_ref().map_or(0, |l| l.available);
        let need = amount - available;
        let target = self.demand.target(now).max(amount);
        TakePlan {
            lease_id: self.lease.as_ref().map(|l| l.id.clone()),
            need,
            want: need.saturating_add(target),
            floor: amount.saturating_mul(FLOOR_HOLDS),
            available,
        }
    }

    /// A take asked to extend `asked` and moved `taken` into lease `lease_id`; `small`: the
    /// balance is small (see [`OpenLease::constrained`]); `floor`: the floor it asked for
    /// (see [`OpenLease::keep`]). Returns whether the lease is kept.
    ///
    /// A take that extended a lease this account no longer keeps (closed by a settle or
    /// forgotten while the take ran) is not kept: the close queued for that lease gives back
    /// everything its row holds, the take included, and a new take opens a new lease. Taking
    /// it up again would number its writes from 1 below what the row has seen, so they would
    /// pass for applied and the requests served from it would go uncharged.
    pub fn add_taken(
        &mut self,
        asked: Option<&str>,
        lease_id: String,
        taken: i64,
        small: bool,
        floor: i64,
        ttl_secs: u64,
    ) -> bool {
        match &mut self.lease {
            Some(lease) if lease.id == lease_id => {
                lease.available += taken;
                lease.constrained = small;
                lease.keep = floor.min(lease.available);
                lease.ttl_secs = ttl_secs;
                true
            }
            _ if asked == Some(lease_id.as_str()) => false,
            _ => {
                // A new lease (the one kept here, if any, was gone: what it had available
                // went with it).
                self.lease = Some(OpenLease {
                    id: lease_id,
                    available: taken,
                    next_seq: 1,
                    constrained: small,
                    keep: floor.min(taken),
                    ttl_secs,
                });
                true
            }
        }
    }

    /// A hold of `held` served from lease `lease_id` is settled at `charge` (0: released) at
    /// `now` (the lease idles from the last hold that ended).
    /// `Some` when the charge is to be written; `None` when the lease is gone (the request
    /// goes uncharged, as a settle of a reclaimed hold).
    pub fn settle(
        &mut self,
        lease_id: &str,
        held: i64,
        charge: i64,
        now: Instant,
    ) -> Option<ChargePlan> {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.in_flight_micros -= held;
        self.last_active = now;
        let lease = self.lease.as_mut().filter(|l| l.id == lease_id)?;
        lease.available += held - charge.clamp(0, held);
        Some(ChargePlan {
            lease_id: lease.id.clone(),
            seq: next_seq(lease),
            ttl_secs: lease.ttl_secs,
        })
    }

    /// After a settle: what to give back. Everything once no hold is in flight when the
    /// balance is small (the last take was cut short); else what lies beyond twice the
    /// recent demand (or the floor it was granted, if more), down to that.
    pub fn surplus(&mut self, user_id: &str, now: Instant) -> Option<LeaseReturn> {
        let target = self.demand.target(now);
        let idle = self.in_flight == 0;
        let lease = self.lease.as_mut()?;
        if lease.constrained && idle {
            return self.close(user_id);
        }
        let keep = target.max(lease.keep);
        if lease.available <= keep.saturating_mul(2) || lease.available == 0 {
            return None;
        }
        let amount = lease.available - keep;
        lease.available = keep;
        Some(LeaseReturn {
            lease_id: lease.id.clone(),
            user_id: user_id.to_owned(),
            seq: next_seq(lease),
            amount_micros: amount,
            close: false,
        })
    }

    /// A hold was refused though this lease holds part of what it needed: the balance is
    /// spread over replicas too thinly for any one of them to gather a hold. Give everything
    /// back as soon as no hold is in flight (now, if none is) so the replica that asks next
    /// can gather it, rather than after the idle time.
    pub fn refused(&mut self, user_id: &str) -> Option<LeaseReturn> {
        self.lease.as_mut()?.constrained = true;
        self.close(user_id)
    }

    /// Close the lease if it idled `idle` with no hold in flight.
    pub fn close_if_idle(
        &mut self,
        user_id: &str,
        now: Instant,
        idle: Duration,
    ) -> Option<LeaseReturn> {
        if now.saturating_duration_since(self.last_active) < idle {
            return None;
        }
        self.close(user_id)
    }

    /// Close the lease (give everything back) if no hold is in flight.
    pub fn close(&mut self, user_id: &str) -> Option<LeaseReturn> {
        if self.in_flight > 0 {
            return None;
        }
        let mut lease = self.lease.take()?;
        Some(LeaseReturn {
            lease_id: lease.id.clone(),
            user_id: user_id.to_owned(),
            seq: next_seq(&mut lease),
            amount_micros: lease.available,
            close: true,
        })
    }

    fn forget(&mut self, lease_id: &str) {
        if self.lease.as_ref().is_some_and(|l| l.id == lease_id) {
            self.lease = None;
        }
    }

    fn forgettable(&self, now: Instant) -> bool {
        self.lease.is_none()
            && self.in_flight == 0
            && now.saturating_duration_since(self.last_active) >= FORGET_AFTER
    }
}

fn next_seq(lease: &mut OpenLease) -> i64 {
    let seq = lease.next_seq;
    lease.next_seq += 1;
    seq
}

#[cfg(test)]
mod tests;
