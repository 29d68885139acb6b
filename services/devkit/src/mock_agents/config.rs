//! Configuration of the mock agents API.

use std::time::Duration;

use anyhow::ensure;

/// How many agents the mock serves and how badly it behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct MockAgentsConfig {
    /// Number of agents, `agent-00001` upwards.
    pub agents: usize,
    /// The organization all agents belong to.
    pub organization: String,
    /// Largest `limit` a page request may ask for.
    pub page_limit: usize,
    /// Agents each page after the first repeats from the page before, as a
    /// list does when rows are added under a cursor (at most `limit` − 1).
    pub page_overlap: usize,
    /// Delay inside every migrate call that gets past the cheap checks.
    pub latency: Duration,
    /// Probability (0..=1) that a migrate call answers 503.
    pub transient_rate: f64,
    /// Fraction (0..=1) of agents whose migrate calls always answer 422.
    pub permanent_rate: f64,
    /// Seed for both the permanent-failure selection and the transient dice,
    /// so a failing test can be replayed.
    pub seed: u64,
    /// Port to listen on; `None` picks a free one.
    pub port: Option<u16>,
}

impl Default for MockAgentsConfig {
    fn default() -> Self {
        Self {
            agents: 1000,
            organization: "org-123".to_owned(),
            page_limit: 50,
            page_overlap: 0,
            latency: Duration::ZERO,
            transient_rate: 0.0,
            permanent_rate: 0.0,
            seed: 1,
            port: None,
        }
    }
}

impl MockAgentsConfig {
    /// Rejects settings the mock cannot honour.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.page_limit >= 1, "page_limit must be at least 1");
        ensure!(
            self.page_overlap < self.page_limit,
            "page_overlap must be below page_limit"
        );
        check_rate("transient_rate", self.transient_rate)?;
        check_rate("permanent_rate", self.permanent_rate)
    }
}

/// A probability must be a finite number in `0..=1`.
pub(crate) fn check_rate(name: &str, rate: f64) -> anyhow::Result<()> {
    ensure!(
        (0.0..=1.0).contains(&rate),
        "{name} must be between 0 and 1, got {rate}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_rates_are_checked() {
        assert!(MockAgentsConfig::default().validate().is_ok());
        for bad in [-0.1, 1.5, f64::NAN] {
            let config = MockAgentsConfig {
                transient_rate: bad,
                ..MockAgentsConfig::default()
            };
            assert!(config.validate().is_err(), "{bad} accepted");
        }
        let config = MockAgentsConfig {
            page_limit: 0,
            ..MockAgentsConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
