//! Each service as its own OS process, as in production.

use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{jobs, ServiceProcesses, TestEnv};
use jetflow_protocol::job::JobStatus;
use serde_json::json;

/// The four services as their own processes (as deployed), one job, an
/// exact tally.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_services_as_separate_processes_run_a_job_exactly() -> anyhow::Result<()> {
    let env = TestEnv::bare("procs").await?;
    let mut services = ServiceProcesses::start(&env.nats)?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 500,
        transient_rate: 0.05,
        permanent_rate: 0.01,
        seed: 3,
        ..Default::default()
    })
    .await?;
    let job = jobs::agents_job("as-processes", &mock, json!({"max_retries": 8}));
    jobs::submit_plain(&env.bus, job.to_string().as_bytes()).await?;
    let state = jobs::wait_for_end(&env.bus, "as-processes").await?;

    let expected_failures = mock.permanent_failures().len() as u64;
    let expected = if expected_failures > 0 {
        JobStatus::Partial
    } else {
        JobStatus::Completed
    };
    assert_eq!(state.status, expected);
    assert_eq!(state.succeeded + state.failed, 500);
    assert_eq!(state.failed, expected_failures);
    assert_eq!(state.succeeded, mock.stats().migrated);
    assert_eq!(
        jobs::item_records(&env.bus, "as-processes").await?.len(),
        500
    );
    services.check_running()?;
    Ok(())
}
