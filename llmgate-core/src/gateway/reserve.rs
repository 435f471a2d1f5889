//! Balances reserved in memory, for a ledger this process alone writes (the embedded SQLite
//! default).
//!
//! A hold is then a subtraction in memory and its database write joins the ledger queue like
//! a settle: the request does not wait for a commit. What makes that safe is one rule, kept
//! under each account's lock: a reservation and the queueing of its write happen together, so
//! the spendable amount in memory always equals the balance the database will have once the
//! queue is written — or less, when money arrived the queue did not carry (a top-up, a monthly
//! grant, a reclaimed hold). Memory can only be low, never high; and before a request is
//! refused, the account is reloaded from the database (after the queue is flushed), so money
//! that arrived elsewhere is never refused either.
//!
//! Several processes writing one database must not use this (each would spend the same
//! balance): PostgreSQL replicas keep awaited holds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Mutex as AsyncMutex;

use crate::credits::Hold;

/// Provisional hold ids start with this; the ledger writer swaps them for the database's ids.
const PROVISIONAL: char = '~';

/// One user's spendable balance as this process knows it.
#[derive(Debug, Default)]
pub(super) struct Account {
    /// `None` until read from the database.
    pub spendable: Option<i64>,
    /// Provisional holds reserved and not yet settled or released. The account is reloaded
    /// only when this is zero: a provisional hold whose write failed is in memory but not in
    /// the database, and a reload while it is open would give its amount back twice.
    pub open: u32,
}

/// The accounts, and the numbering of provisional holds.
#[derive(Debug, Default)]
pub(super) struct Reservations {
    accounts: Mutex<HashMap<String, Arc<AsyncMutex<Account>>>>,
    next: AtomicU64,
}

impl Reservations {
    /// The user's account (created empty, to be loaded, on first use).
    pub fn account(&self, user_id: &str) -> Arc<AsyncMutex<Account>> {
        let mut accounts = crate::sync::lock(&self.accounts);
        if let Some(account) = accounts.get(user_id) {
            return account.clone();
        }
        accounts.entry(user_id.to_owned()).or_default().clone()
    }

    /// A new provisional hold id and its number.
    pub fn provisional_id(&self) -> (u64, String) {
        let number = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        (number, format!("{PROVISIONAL}{number}"))
    }
}

/// The number of a provisional hold; `None` for a hold the database placed.
pub(super) fn provisional_number(hold: &Hold) -> Option<u64> {
    hold.id.strip_prefix(PROVISIONAL)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisional_ids_are_told_from_database_ids() {
        let reservations = Reservations::default();
        let (number, id) = reservations.provisional_id();
        let hold = |id: &str| Hold {
            id: id.into(),
            user_id: "u".into(),
            amount_micros: 1,
        };
        assert_eq!(provisional_number(&hold(&id)), Some(number));
        assert_eq!(provisional_number(&hold("42")), None);
        assert_ne!(reservations.provisional_id().0, number);
        assert!(Arc::ptr_eq(
            &reservations.account("u"),
            &reservations.account("u")
        ));
    }
}
