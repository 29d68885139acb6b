//! Losing NATS itself: a single server killed with SIGKILL mid-job and
//! restarted on the same store completes with an exact tally. (The 3-node
//! cluster case is `tests/tests/cluster.rs`, a binary of its own.)

use anyhow::Context as _;
use std::time::Duration;

use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{jobs, ServiceProcesses, TestEnv};
use jetflow_protocol::job::JobStatus;
use jetflow_runtime::Bus;
use serde_json::json;

fn mock_config(agents: usize) -> MockAgentsConfig {
    MockAgentsConfig {
        agents,
        transient_rate: 0.02,
        permanent_rate: 0.01,
        latency: Duration::from_millis(5),
        seed: 5,
        ..Default::default()
    }
}

async fn assert_exact(bus: &Bus, mock: &MockAgents, job: &str, n: u64) -> anyhow::Result<()> {
    let state = jobs::wait_for_end(bus, job).await?;
    assert_eq!(state.status, JobStatus::Partial, "{state:#?}");
    assert_eq!(state.succeeded + state.failed, n);
    assert_eq!(state.succeeded, mock.stats().migrated);
    assert_eq!(state.failed, mock.permanent_failures().len() as u64);
    assert_eq!(jobs::item_records(bus, job).await?.len() as u64, n);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nats_server_killed_mid_job_and_restarted_loses_nothing() -> anyhow::Result<()> {
    let mut env = TestEnv::bare("natskill").await?;
    let _services = ServiceProcesses::start(&env.nats)?;
    let mock = MockAgents::start(mock_config(3000)).await?;
    let spec = jobs::agents_job("survivor", &mock, json!({"concurrency": 30}));
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    jobs::wait_for_state(&env.bus, "survivor", |s| s.succeeded >= 500).await?;

    let server = std::sync::Arc::get_mut(&mut env.server).context("the server is shared")?;
    server.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Restarting blocks until the server is ready; keep the runtime serving.
    tokio::task::block_in_place(|| server.restart())?;
    // The test client reconnects by itself, like the services.
    assert_exact(&env.bus, &mock, "survivor", 3000).await
}
