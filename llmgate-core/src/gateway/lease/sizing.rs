//! How big a lease should be: what the account's requests held on this replica over the last
//! window.

use std::time::{Duration, Instant};

/// The window a lease is sized to last: a lease covers about this much of the account's
/// recent demand, so a busy account takes about once per window.
pub(in crate::gateway) const WINDOW: Duration = Duration::from_secs(1);

/// A lease asks to cover at least this many holds like the one that found it short, however
/// little the account held lately: an account with a few requests a second then takes once
/// every few seconds instead of every few requests (each take is a database transaction the
/// request waits for). The store grants this floor only out of a small share of the balance
/// (`credits::lease_take`), so it never locks up a small one.
pub(in crate::gateway) const FLOOR_HOLDS: i64 = 32;

/// The holds served in the current window and in the one before.
#[derive(Debug)]
pub(in crate::gateway) struct Demand {
    started: Instant,
    current: i64,
    previous: i64,
}

impl Demand {
    pub fn new(now: Instant) -> Self {
        Self {
            started: now,
            current: 0,
            previous: 0,
        }
    }

    /// A hold of `amount` was served at `now`.
    pub fn add(&mut self, now: Instant, amount: i64) {
        self.roll(now);
        self.current = self.current.saturating_add(amount);
    }

    /// What the account held over about one window: the larger of the last full window and
    /// the current one.
    pub fn target(&mut self, now: Instant) -> i64 {
        self.roll(now);
        self.previous.max(self.current)
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed >= WINDOW * 2 {
            (self.previous, self.current, self.started) = (0, 0, now);
        } else if elapsed >= WINDOW {
            (self.previous, self.current) = (self.current, 0);
            self.started += WINDOW;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demand_follows_the_last_window() {
        let start = Instant::now();
        let mut demand = Demand::new(start);
        demand.add(start, 10);
        demand.add(start, 5);
        assert_eq!(demand.target(start), 15);
        let next = start + WINDOW + Duration::from_millis(1);
        demand.add(next, 1);
        assert_eq!(demand.target(next), 15);
        assert_eq!(demand.target(start + WINDOW * 5), 0);
    }
}
