//! A paged source whose pages overlap — as a list does when rows are added
//! under its cursor — gives some items twice (issue 14, part 7): the job
//! must not stall waiting for the second copy. Each item runs once, each
//! copy after the first counts once as a duplicate, and the job ends.

use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{cli, jobs, ServiceProcesses, TestEnv};
use jetflow_protocol::job::JobStatus;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_pages_run_each_item_once_and_count_the_duplicates() -> anyhow::Result<()> {
    let env = TestEnv::bare("overlap").await?;
    let agents = 500;
    let mock = MockAgents::start(MockAgentsConfig {
        agents,
        page_limit: 50,
        page_overlap: 5,
        ..Default::default()
    })
    .await?;
    let _services = ServiceProcesses::start(&env.nats)?;
    let job = "overlapping";
    let mut spec = jobs::agents_job(job, &mock, json!({"fetch_size": 50}));
    // A job that stalls ends `failed` at its timeout instead.
    spec["timeout"] = json!("30s");
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    let state = jobs::wait_for_end(&env.bus, job).await?;
    // Pages of 50 moving on by 45: 1-50, 46-95, ..., 451-500.
    let pages = 1 + (agents as u64 - 50).div_ceil(45);
    let repeated = 5 * (pages - 1);
    assert_eq!(
        (state.status, state.succeeded, state.duplicates, state.total),
        (
            JobStatus::Completed,
            agents as u64,
            repeated,
            agents as u64 + repeated
        ),
        "{state:#?}"
    );
    assert_eq!(mock.stats().calls, agents as u64, "one call per item");
    assert_eq!(jobs::item_records(&env.bus, job).await?.len(), agents);
    let status = cli::ok(&env.nats, &["status", job]).await?;
    assert!(
        status.contains(&format!("{repeated} duplicates")),
        "{status}"
    );
    Ok(())
}
