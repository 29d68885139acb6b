//! Injected failures and latency, changeable while the mock runs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::{check_rate, MockAgentsConfig};

/// Current fault injection settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Faults {
    pub transient_rate: f64,
    pub permanent_rate: f64,
    pub latency: Duration,
    /// When set, every migrate call answers 503.
    pub down: bool,
    /// The next this many migrate calls answer 429 with `Retry-After`.
    pub throttle: u32,
    /// The `Retry-After` of those answers, in seconds.
    pub retry_after_s: u64,
}

impl Faults {
    pub(crate) fn from_config(config: &MockAgentsConfig) -> Self {
        Self {
            transient_rate: config.transient_rate,
            permanent_rate: config.permanent_rate,
            latency: config.latency,
            down: false,
            throttle: 0,
            retry_after_s: 1,
        }
    }

    /// Applies a partial update, all or nothing.
    pub(crate) fn apply(&mut self, update: &FaultsUpdate) -> anyhow::Result<()> {
        if let Some(rate) = update.transient_rate {
            check_rate("transient_rate", rate)?;
        }
        if let Some(rate) = update.permanent_rate {
            check_rate("permanent_rate", rate)?;
        }
        if let Some(rate) = update.transient_rate {
            self.transient_rate = rate;
        }
        if let Some(rate) = update.permanent_rate {
            self.permanent_rate = rate;
        }
        if let Some(ms) = update.latency_ms {
            self.latency = Duration::from_millis(ms);
        }
        if let Some(down) = update.down {
            self.down = down;
        }
        if let Some(throttle) = update.throttle {
            self.throttle = throttle;
        }
        if let Some(seconds) = update.retry_after_s {
            self.retry_after_s = seconds;
        }
        Ok(())
    }

    /// The settings as `/admin/faults` shows them.
    pub(crate) fn view(&self) -> FaultsUpdate {
        FaultsUpdate {
            transient_rate: Some(self.transient_rate),
            permanent_rate: Some(self.permanent_rate),
            latency_ms: Some(u64::try_from(self.latency.as_millis()).unwrap_or(u64::MAX)),
            down: Some(self.down),
            throttle: Some(self.throttle),
            retry_after_s: Some(self.retry_after_s),
        }
    }
}

/// Body of `POST /admin/faults`; absent fields are left unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultsUpdate {
    pub transient_rate: Option<f64>,
    pub permanent_rate: Option<f64>,
    pub latency_ms: Option<u64>,
    pub down: Option<bool>,
    pub throttle: Option<u32>,
    pub retry_after_s: Option<u64>,
}

/// Whether `id` is one of the agents that always fail, at `rate`.
///
/// A pure function of seed and id, so tests can compute the expected failures
/// without asking the server, and the set is the same on every run.
pub(crate) fn is_permanent(seed: u64, id: &str, rate: f64) -> bool {
    unit_hash(seed, id) < rate
}

/// Maps `(seed, id)` to a uniform-looking number in `[0, 1)`.
///
/// Hand-rolled (FNV-1a, then a SplitMix64 finalizer to spread the bits)
/// because std's hashers are not guaranteed stable across Rust releases.
fn unit_hash(seed: u64, id: &str) -> f64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = FNV_OFFSET;
    for byte in seed.to_le_bytes().iter().chain(id.as_bytes()) {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    // The top 53 bits fill an f64 mantissa exactly.
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_selection_is_deterministic_and_near_rate() {
        let ids: Vec<String> = (1..=10_000).map(|n| format!("agent-{n:05}")).collect();
        let picked = |seed| ids.iter().filter(|id| is_permanent(seed, id, 0.1)).count();
        assert_eq!(picked(7), picked(7));
        assert!((800..=1200).contains(&picked(7)), "{}", picked(7));
        let same: usize = ids
            .iter()
            .filter(|id| is_permanent(7, id, 0.1) && is_permanent(8, id, 0.1))
            .count();
        assert!(
            same < 300,
            "seeds 7 and 8 pick nearly the same agents: {same}"
        );
        assert!(ids.iter().all(|id| is_permanent(1, id, 1.0)));
        assert!(!ids.iter().any(|id| is_permanent(1, id, 0.0)));
    }

    #[test]
    fn invalid_update_changes_nothing() {
        let mut faults = Faults::from_config(&MockAgentsConfig::default());
        let before = faults.clone();
        let update = FaultsUpdate {
            down: Some(true),
            permanent_rate: Some(2.0),
            ..FaultsUpdate::default()
        };
        assert!(faults.apply(&update).is_err());
        assert_eq!(faults, before);
    }
}
