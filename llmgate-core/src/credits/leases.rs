//! Balance leases: a replica takes a slice of an account's balance in one step, serves holds
//! from it in memory, and settles and gives back through the ledger queue.
//!
//! In the ledger a lease is an open hold row marked as a lease (so reclaiming expired holds
//! and the holds of stopped replicas covers it). Taking moves credits from the balance into
//! the lease (a `hold` entry); a charge moves them out of the lease (a `release` entry, then
//! the `charge`, the balance unchanged); a return moves them back to the balance (a
//! `release`). Entries still add up to the balance and every `balance_after` is the running
//! sum.

use crate::error::Error;

/// Move credits from a balance into this replica's lease, in one atomic step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The account.
    pub user_id: String,
    /// The lease to extend (this replica's open lease on the account), if any. When it is gone
    /// (reclaimed, or returned in full), a new lease is opened.
    pub lease_id: Option<String>,
    /// The least to take: the store refuses rather than take less.
    pub need_micros: i64,
    /// How much the replica would like. The store takes
    /// `min(want, need + (balance − need) / 2)` and never less than `need`, so one replica
    /// never locks up more than half of what the balance has beyond the current need.
    pub want_micros: i64,
    /// What the replica would like the take to reach however little the account spent lately
    /// (0: no such floor), so an account with a few requests a second is not taken from every
    /// few requests. The store rounds the take up towards it only out of a sixteenth of what
    /// the balance has beyond `need` (see [`lease_take`]), so a floor never locks up a small
    /// balance.
    pub floor_micros: i64,
    /// How long the lease lives without a charge or a take (then it is reclaimed).
    pub ttl_secs: u64,
}

/// What `CreditStore::take_lease` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// `taken_micros` moved into the lease `lease_id` (a new lease when the one asked for was
    /// gone).
    Taken {
        /// The lease's id.
        lease_id: String,
        /// Micro-credits moved from the balance into the lease.
        taken_micros: i64,
    },
    /// The balance does not cover `need_micros`; nothing changed.
    Short {
        /// The balance the store saw.
        balance_micros: i64,
    },
}

/// Credits go back from a lease to the balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseReturn {
    /// The lease.
    pub lease_id: String,
    /// The account.
    pub user_id: String,
    /// The lease's write number, as for a charge's (`LeaseCharge::seq`).
    pub seq: i64,
    /// Micro-credits to give back; ignored when `close` (everything left goes back).
    pub amount_micros: i64,
    /// Close the lease: give back everything it still holds and delete it.
    pub close: bool,
}

/// The error a store without leases gives (the gateway never asks one: see
/// `CreditStore::leases`).
pub fn no_leases() -> Error {
    Error::internal("this credit store has no balance leases")
}

/// The share of a balance (beyond the need) a take's floor may round up with (a store that
/// sizes a take in SQL binds it).
pub const FLOOR_SHARE: i64 = 16;

/// How much a take moves for a balance of `balance`: at least the need (the caller checked
/// `balance >= need`), then the want, rounded up towards the floor by at most a sixteenth of
/// what lies beyond the need, and never more than half of what lies beyond the need.
pub fn lease_take(balance: i64, request: &LeaseRequest) -> i64 {
    let need = request.need_micros;
    let beyond = balance.saturating_sub(need).max(0);
    let want = request.want_micros.max(need);
    let spare = request
        .floor_micros
        .saturating_sub(want)
        .clamp(0, beyond / FLOOR_SHARE);
    want.saturating_add(spare)
        .min(need.saturating_add(beyond / 2))
}

#[cfg(test)]
mod tests {
    use super::{LeaseRequest, lease_take};

    fn take(balance: i64, need: i64, want: i64, floor: i64) -> i64 {
        let request = LeaseRequest {
            user_id: "u".into(),
            lease_id: None,
            need_micros: need,
            want_micros: want,
            floor_micros: floor,
            ttl_secs: 60,
        };
        lease_take(balance, &request)
    }

    #[test]
    fn a_take_never_locks_up_more_than_half_of_the_surplus() {
        assert_eq!(take(1_000, 10, 100, 0), 100);
        assert_eq!(take(100, 10, 1_000, 0), 55);
        assert_eq!(take(10, 10, 1_000, 0), 10);
        assert_eq!(take(11, 10, 1_000, 0), 10);
        assert_eq!(take(1_000, 10, 5, 0), 10);
    }

    #[test]
    fn a_floor_rounds_up_only_out_of_a_sixteenth_of_the_surplus() {
        // A large balance: the take reaches the floor.
        assert_eq!(take(1_000_000, 10, 20, 320), 320);
        // A floor below the want changes nothing.
        assert_eq!(take(1_000_000, 10, 500, 320), 500);
        // A small balance: 16 beyond the need, so at most 1 more than the want.
        assert_eq!(take(26, 10, 12, 320), 13);
        assert_eq!(take(10, 10, 12, 320), 10);
    }
}
