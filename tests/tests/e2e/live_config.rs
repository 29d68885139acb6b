//! `jetflow config set` changes a running job's concurrency, and the target
//! sees it: concurrent calls rise with it and fall back when it is lowered.

use std::time::Duration;

use anyhow::Context as _;
use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{cli, jobs, TestEnv};
use jetflow_protocol::job::JobStatus;
use serde_json::json;

/// Waits until the mock's concurrent calls satisfy `ok` (a minute at most).
async fn wait_for_in_flight(
    mock: &MockAgents,
    what: &str,
    ok: impl Fn(u64) -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !ok(mock.stats().in_flight) {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "waited a minute for {what}; mock: {:?}",
            mock.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The most concurrent calls the mock sees during `window`.
async fn peak_over(mock: &MockAgents, window: Duration) -> u64 {
    mock.reset_max_in_flight();
    tokio::time::sleep(window).await;
    mock.stats().max_in_flight
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn config_set_scales_a_running_jobs_concurrency_up_and_down() -> anyhow::Result<()> {
    let env = TestEnv::start("config").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 1500,
        latency: Duration::from_millis(250),
        ..Default::default()
    })
    .await?;
    let job = "scaled";
    let spec = jobs::agents_job(
        job,
        &mock,
        json!({"concurrency": 2, "max_inflight_batches": 10}),
    );
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    wait_for_in_flight(&mock, "the first calls", |n| n >= 1).await?;
    let at_two = peak_over(&mock, Duration::from_millis(1500)).await;
    assert!(
        (1..=2).contains(&at_two),
        "concurrency 2 allowed {at_two} calls at once"
    );

    let out = cli::ok(&env.nats, &["config", "set", job, "concurrency=20"]).await?;
    assert!(out.contains("concurrency 2 -> 20"), "{out}");
    wait_for_in_flight(&mock, "more calls at once", |n| n >= 10).await?;
    let at_twenty = peak_over(&mock, Duration::from_millis(1500)).await;
    assert!(
        (10..=20).contains(&at_twenty),
        "concurrency 20 allowed {at_twenty} calls at once"
    );

    let out = cli::ok(&env.nats, &["config", "set", job, "concurrency=3"]).await?;
    assert!(out.contains("concurrency 20 -> 3"), "{out}");
    // Calls already made finish; then no more than 3 at once.
    wait_for_in_flight(&mock, "the calls in flight to drain", |n| n <= 3).await?;
    let at_three = peak_over(&mock, Duration::from_millis(1500)).await;
    assert!(
        (1..=3).contains(&at_three),
        "concurrency 3 allowed {at_three} calls at once"
    );

    let shown: serde_json::Value =
        serde_json::from_str(&cli::ok(&env.nats, &["config", "get", job, "--json"]).await?)?;
    assert_eq!(shown["concurrency"], 3);
    let state = jobs::state_json(&env.bus, job).await?.context("state")?;
    assert_eq!(
        state["spec"]["batch"]["concurrency"], 3,
        "the job state says what runs"
    );

    // A bad value is refused before anything is sent, naming the setting.
    let out = cli::run_in(
        &env.nats,
        &["config", "set", job, "concurrency=0"],
        cli::CLI_DEADLINE,
    )
    .await?;
    assert_ne!(out.status.code(), Some(0));
    assert!(
        cli::text(&out.stderr).contains("concurrency"),
        "{}",
        cli::text(&out.stderr)
    );

    // Nothing was lost across the changes: finish fast and check the tally.
    mock.set_latency(Duration::ZERO);
    cli::ok(&env.nats, &["config", "set", job, "concurrency=100"]).await?;
    let end = jobs::wait_for_end(&env.bus, job).await?;
    assert_eq!(
        (end.status, end.succeeded, end.total),
        (JobStatus::Completed, 1500, 1500)
    );
    assert_eq!(mock.stats().migrated, 1500);
    env.stop_services().await?;
    Ok(())
}
