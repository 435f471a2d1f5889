//! Cheap, deterministic pseudo-randomness from a seed: weighted routing and backoff jitter need
//! variety, not cryptography, and a seeded mix keeps both reproducible in tests.

/// SplitMix64's finaliser: a well-spread 64-bit value for every input.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A number in the open interval (0, 1) derived from `seed` and `salt`.
pub(crate) fn unit_interval(seed: u64, salt: u64) -> f64 {
    let bits = mix64(seed ^ mix64(salt)) >> 11;
    // 53 random bits, shifted off zero so callers may take its logarithm.
    (bits as f64 + 0.5) / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_interval_stays_inside_and_varies() {
        let mut seen = std::collections::HashSet::new();
        for seed in 0..1000 {
            let u = unit_interval(seed, 7);
            assert!(u > 0.0 && u < 1.0);
            seen.insert(u.to_bits());
        }
        assert_eq!(seen.len(), 1000);
        assert_eq!(unit_interval(42, 1), unit_interval(42, 1));
        assert_ne!(unit_interval(42, 1), unit_interval(42, 2));
    }
}
