//! Losing NATS itself: a single server killed with SIGKILL mid-job and
//! restarted on the same store completes with an exact tally. (The 3-node
//! cluster case is `tests/tests/cluster.rs`, a binary of its own.)

use std::time::Duration;

use anyhow::Context as _;
use jetflow_devkit::MockAgents;
use jetflow_e2e::{
    faults::{assert_exact, mock_config},
    jobs, ServiceProcesses, TestEnv,
};
use serde_json::json;

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
