//! `jetflow workers` and the micro services behind it: every instance of
//! every stage is listed, a migrate instance shows the item it is stuck on,
//! and a killed instance is gone from the next listing.

use std::time::Duration;

use anyhow::Context as _;
use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{cli, jobs, ServiceProcesses, TestEnv};
use jetflow_runtime::process::activity::StatusReport;
use serde_json::json;

/// The listing interval documented in `jetflow workers --help` and
/// docs/operations.md: an instance is listed iff it answers within 1 s.
const LISTING_WINDOW: Duration = Duration::from_secs(1);

async fn workers(env: &TestEnv) -> anyhow::Result<Vec<StatusReport>> {
    let out = cli::ok(&env.nats, &["workers", "--json"]).await?;
    serde_json::from_str(&out).with_context(|| format!("workers --json printed {out}"))
}

fn per_stage(reports: &[StatusReport]) -> [usize; 4] {
    ["fetch", "batch", "migrate", "reduce"].map(|s| reports.iter().filter(|r| r.stage == s).count())
}

/// Polls `workers --json` until `done` holds (or a minute passes).
async fn wait_for_workers(
    env: &TestEnv,
    what: &str,
    done: impl Fn(&[StatusReport]) -> bool,
) -> anyhow::Result<Vec<StatusReport>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let reports = workers(env).await?;
        if done(&reports) {
            return Ok(reports);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("waited a minute for {what}; last listing: {reports:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_lists_every_instance_shows_a_stalled_item_and_forgets_a_killed_one(
) -> anyhow::Result<()> {
    let env = TestEnv::bare("workers").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 40,
        ..Default::default()
    })
    .await?;
    let mut procs = ServiceProcesses::start_copies(&env.nats, 2)?;
    let all = wait_for_workers(&env, "two instances of every stage", |r| {
        per_stage(r) == [2, 2, 2, 2]
    })
    .await?;
    assert!(all.iter().all(|r| r.namespace == env.nats.namespace));

    // The target stalls: every call hangs far longer than the test looks.
    mock.set_latency(Duration::from_secs(120));
    let mut job = jobs::agents_job("stalled", &mock, json!({"concurrency": 4}));
    job["handler"]["timeout"] = json!("300s");
    jobs::submit_plain(&env.bus, job.to_string().as_bytes()).await?;

    let reports = wait_for_workers(&env, "a migrate instance with items in flight", |r| {
        r.iter()
            .any(|r| r.stage == "migrate" && r.in_flight.iter().any(|w| w.job == "stalled"))
    })
    .await?;
    let busy = reports
        .iter()
        .find(|r| r.stage == "migrate" && r.in_flight_count > 0)
        .context("a busy migrate instance")?;
    let work = &busy.in_flight[0];
    assert!(
        work.what.starts_with("agent-"),
        "the item id is shown: {work:?}"
    );
    assert!(busy.jobs.iter().any(|j| j.job == "stalled"));
    assert!(
        mock.stats().in_flight >= 1,
        "the mock really is holding a call"
    );
    // The human table names the instance and the item, with how long.
    let table = cli::ok(&env.nats, &["workers"]).await?;
    assert!(
        table.contains(&busy.instance) && table.contains(&work.what) && table.contains(" for "),
        "{table}"
    );

    // Kill one migrate process: gone from the very next listing.
    let (index, _) = procs
        .pids()
        .iter()
        .enumerate()
        .find(|(_, (name, _))| name == "jetflow-migrate")
        .map(|(i, p)| (i, p.clone()))
        .context("a migrate process")?;
    procs.kill(index)?;
    let killed_at = tokio::time::Instant::now();
    let after = wait_for_workers(&env, "the killed instance to go", |r| {
        per_stage(r) == [2, 2, 1, 2]
    })
    .await?;
    let took = killed_at.elapsed();
    assert!(
        took <= LISTING_WINDOW * 4 + Duration::from_secs(2),
        "the listing kept a dead instance for {took:?}: {after:#?}"
    );

    mock.set_latency(Duration::ZERO);
    drop(procs);
    Ok(())
}
