//! How long a run lasts and the seed its randomness comes from, read from the environment:
//! `LLMGATE_STRESS_SECS` (seconds of traffic per variant) and `LLMGATE_STRESS_SEED` (a u64;
//! random when unset). The seed is printed at the start and in every failure.

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

/// Seconds of traffic per variant when `LLMGATE_STRESS_SECS` is not set: short enough that
/// the whole binary stays well within a CI minute on two cores.
const DEFAULT_SECS: u64 = 4;

#[derive(Debug, Clone)]
pub struct Plan {
    /// The variant's name, in every message.
    pub variant: &'static str,
    pub seed: u64,
    pub traffic: Duration,
}

impl Plan {
    pub fn from_env(variant: &'static str) -> Plan {
        let seed = match std::env::var("LLMGATE_STRESS_SEED") {
            Ok(text) => text
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("LLMGATE_STRESS_SEED must be a u64, not {text:?}")),
            Err(_) => rand::random(),
        };
        let secs = match std::env::var("LLMGATE_STRESS_SECS") {
            Ok(text) => text.trim().parse().unwrap_or_else(|_| {
                panic!("LLMGATE_STRESS_SECS must be whole seconds, not {text:?}")
            }),
            Err(_) => DEFAULT_SECS,
        };
        let plan = Plan {
            variant,
            seed,
            traffic: Duration::from_secs(secs.max(1)),
        };
        eprintln!(
            "ledger stress [{variant}]: seed {seed}, {secs} s of traffic \
             (replay with LLMGATE_STRESS_SEED={seed})"
        );
        plan
    }

    /// A generator for one client, `stream` apart from every other one of this run. Tasks
    /// interleave as the scheduler likes, so a seed replays the same choices, not the same
    /// interleaving.
    pub fn rng(&self, stream: u64) -> StdRng {
        StdRng::seed_from_u64(self.seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// Prefix for this run's ids (users, markers, idempotency keys): unique per run.
    pub fn tag(&self) -> String {
        format!("{:x}-{:08x}", self.seed, rand::random::<u32>())
    }
}
