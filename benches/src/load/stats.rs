//! Latency samples and their percentiles.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Percentiles of a set of samples, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: u64,
}

impl Percentiles {
    /// From unsorted samples (sorted in place).
    pub fn of(samples: &mut [u64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            // Nearest rank: the smallest sample with at least q of the samples at or below it.
            let rank = (q * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1]
        };
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        Self {
            count: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: samples[samples.len() - 1],
            mean: (sum / samples.len() as u128) as u64,
        }
    }
}

/// Nanoseconds of a duration, saturating.
pub fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A latency in the unit that reads best (`812µs`, `3.41ms`, `57ns`).
pub fn human(nanos: u64) -> String {
    match nanos {
        0..=9_999 if nanos < 1_000 => format!("{nanos}ns"),
        0..=9_999 => format!("{:.2}µs", nanos as f64 / 1e3),
        10_000..=999_999 => format!("{:.0}µs", nanos as f64 / 1e3),
        1_000_000..=9_999_999 => format!("{:.2}ms", nanos as f64 / 1e6),
        _ => format!("{:.1}ms", nanos as f64 / 1e6),
    }
}

/// Resident memory in MiB (`13.1 MiB`) from KiB.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A signed difference in the same style (`+43µs`, `-5µs`).
pub fn human_delta(delta: i64) -> String {
    let sign = if delta < 0 { "-" } else { "+" };
    format!("{sign}{}", human(delta.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut samples: Vec<u64> = (1..=1000).rev().collect();
        let p = Percentiles::of(&mut samples);
        assert_eq!((p.p50, p.p99, p.p999, p.max), (500, 990, 999, 1000));
        assert_eq!(p.mean, 500);
        assert_eq!(Percentiles::of(&mut [7]).p999, 7);
        assert_eq!(Percentiles::of(&mut []).count, 0);
    }

    #[test]
    fn human_units() {
        assert_eq!(human(57), "57ns");
        assert_eq!(human(4_321), "4.32µs");
        assert_eq!(human(812_000), "812µs");
        assert_eq!(human(3_410_000), "3.41ms");
        assert_eq!(human_delta(-5_000), "-5.00µs");
    }
}
