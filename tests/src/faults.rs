//! What the NATS fault tests share: the mock they migrate and the exact
//! tally they demand once a server (or a cluster node) has been lost.

use std::time::Duration;

use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_protocol::job::JobStatus;
use jetflow_runtime::Bus;

use crate::jobs;

/// A mock of `agents` with 2% transient and 1% permanent failures and a
/// little latency, so a job is still running when the fault strikes.
pub fn mock_config(agents: usize) -> MockAgentsConfig {
    MockAgentsConfig {
        agents,
        transient_rate: 0.02,
        permanent_rate: 0.01,
        latency: Duration::from_millis(5),
        seed: 5,
        ..Default::default()
    }
}

/// Waits for `job` to end and asserts its tally is exact: `partial`, every
/// one of the `n` items counted once, `succeeded` what the mock migrated,
/// `failed` the mock's permanent failures, one outcome record per item
/// (docs/design.md, invariant 1).
pub async fn assert_exact(bus: &Bus, mock: &MockAgents, job: &str, n: u64) -> anyhow::Result<()> {
    let state = jobs::wait_for_end(bus, job).await?;
    assert_eq!(state.status, JobStatus::Partial, "{state:#?}");
    assert_eq!(state.succeeded + state.failed, n);
    assert_eq!(state.succeeded, mock.stats().migrated);
    assert_eq!(state.failed, mock.permanent_failures().len() as u64);
    assert_eq!(jobs::item_records(bus, job).await?.len() as u64, n);
    Ok(())
}
