//! How long to wait before walking a failed request's candidates again.

use std::time::Duration;

use crate::mix::unit_interval;

/// Jittered exponential backoff: before retry round `n` (1, 2, …) the base delay is
/// `base × 2^(n-1)`, capped at `max`, and the wait is a random point in its upper half
/// (`[delay/2, delay]`), so that clients that failed together do not retry together.
///
/// No single wait is longer than `max_wait`: a client is never held silently for longer. An
/// upstream that asks for a longer pause (`Retry-After`) is left alone until then, and the
/// request ends with that hint instead of sleeping through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    /// The longest one wait before a retry round may be, Retry-After included.
    pub max_wait: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            max: Duration::from_secs(8),
            max_wait: Duration::from_secs(2),
        }
    }
}

impl Backoff {
    /// The un-jittered delay before retry round `round` (1-based).
    pub fn ceiling(&self, round: u32) -> Duration {
        let doubling = 1u32
            .checked_shl(round.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(doubling).min(self.max)
    }

    /// The wait before retry round `round`, jittered by `seed`.
    pub fn delay(&self, round: u32, seed: u64) -> Duration {
        let ceiling = self.ceiling(round);
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(unit_interval(seed, u64::from(round)))
    }

    /// The wait before retry round `round` when the first candidate is available again in
    /// `ready_in`: the jittered delay, stretched to `ready_in`, and `None` when that is longer
    /// than `max_wait` (the round is not worth holding the client for).
    pub fn wait(&self, round: u32, seed: u64, ready_in: Duration) -> Option<Duration> {
        let wait = self.delay(round, seed).min(self.max_wait).max(ready_in);
        (wait <= self.max_wait).then_some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_stay_in_their_upper_half_and_are_capped() {
        let backoff = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(500),
            max_wait: Duration::from_secs(2),
        };
        let ceilings: Vec<_> = (1..=5).map(|r| backoff.ceiling(r).as_millis()).collect();
        assert_eq!(ceilings, vec![100, 200, 400, 500, 500]);
        for seed in 0..200 {
            for round in 1..=40 {
                let ceiling = backoff.ceiling(round);
                let delay = backoff.delay(round, seed);
                assert!(delay >= ceiling / 2 && delay <= ceiling, "{delay:?}");
            }
        }
    }

    #[test]
    fn no_wait_is_longer_than_max_wait_retry_after_included() {
        let backoff = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(8),
            max_wait: Duration::from_secs(2),
        };
        let second = Duration::from_secs(1);
        for round in 1..=10 {
            let wait = backoff.wait(round, 7, Duration::ZERO).unwrap();
            assert!(wait <= backoff.max_wait, "{wait:?}");
        }
        assert_eq!(backoff.wait(1, 7, second), Some(second));
        assert_eq!(
            backoff.wait(1, 7, Duration::from_secs(2)),
            Some(backoff.max_wait)
        );
        assert_eq!(backoff.wait(1, 7, Duration::from_secs(7)), None);
    }
}
