//! The built-in strategies by the names the config gives them.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::policy::RoutingPolicy;
use super::strategies::{ByPriority, Cheapest, Fastest, LeastBusy, Weighted};

/// The built-in strategies, as named in the config's `routing.strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Cheapest estimated price for this request first; free deployments first of all.
    #[default]
    Cost,
    /// Lowest moving-average latency first (time to first token for streams).
    Latency,
    /// Fewest requests in flight first.
    LeastBusy,
    /// A weighted shuffle by each deployment's `weight`, seeded per request.
    Weighted,
    /// Lowest `priority` number first, then configuration order.
    Priority,
}

impl Strategy {
    /// Every strategy, in the order the config reference lists them.
    pub const ALL: [Strategy; 5] = [
        Strategy::Cost,
        Strategy::Latency,
        Strategy::LeastBusy,
        Strategy::Weighted,
        Strategy::Priority,
    ];

    /// The name used in `routing.strategy` of the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Cost => "cost",
            Strategy::Latency => "latency",
            Strategy::LeastBusy => "least_busy",
            Strategy::Weighted => "weighted",
            Strategy::Priority => "priority",
        }
    }

    /// The policy that implements this strategy.
    pub fn policy(self) -> Arc<dyn RoutingPolicy> {
        match self {
            Strategy::Cost => Arc::new(Cheapest),
            Strategy::Latency => Arc::new(Fastest),
            Strategy::LeastBusy => Arc::new(LeastBusy),
            Strategy::Weighted => Arc::new(Weighted),
            Strategy::Priority => Arc::new(ByPriority),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
        Strategy::ALL
            .into_iter()
            .find(|strategy| strategy.as_str() == wanted)
            .ok_or_else(|| {
                format!(
                    "unknown routing strategy `{s}` (expected cost, latency, least_busy, \
                     weighted or priority)"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_round_trip() {
        for strategy in Strategy::ALL {
            assert_eq!(strategy.as_str().parse::<Strategy>(), Ok(strategy));
        }
        assert_eq!("least-busy".parse::<Strategy>(), Ok(Strategy::LeastBusy));
        assert_eq!(" Cost ".parse::<Strategy>(), Ok(Strategy::Cost));
        assert!("random".parse::<Strategy>().is_err());
        let parsed: Strategy = serde_json::from_str("\"least_busy\"").unwrap();
        assert_eq!(parsed, Strategy::LeastBusy);
    }
}
