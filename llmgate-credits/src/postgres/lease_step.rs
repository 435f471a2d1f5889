//! What phase 1 of a batch of lease writes (see `lease_batch`) made of each write: the
//! leaf type both the batch and its entries (`lease_entries`) read.

use llmgate_core::credits::{LeaseCharge, Written};

/// What phase 1 made of one write.
#[derive(Debug)]
pub(super) enum Step<'a> {
    /// Taken out of its lease: the account gets its `release` and `charge` entries.
    Charged {
        user_id: String,
        charge: &'a LeaseCharge,
    },
    /// Taken out of its lease, to go back to the balance (a `release` entry).
    Returned {
        user_id: String,
        amount: i64,
        lease_id: i64,
    },
    /// Nothing more to write; the write's answer.
    Answered(Written),
}

impl Step<'_> {
    pub(super) fn account(&self) -> Option<&str> {
        match self {
            Step::Charged { user_id, .. } | Step::Returned { user_id, .. } => Some(user_id),
            Step::Answered(_) => None,
        }
    }
}

#[cfg(test)]
impl<'a> Step<'a> {
    /// `charge` applied to `user`'s lease.
    pub(super) fn charged(user: &str, charge: &'a LeaseCharge) -> Self {
        Step::Charged {
            user_id: user.into(),
            charge,
        }
    }
}
