//! A target that goes down: the breaker opens and holds tasks back instead
//! of failing them or spending their retries; the job completes after.

use std::time::Duration;

use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{jobs, TestEnv};
use jetflow_protocol::job::JobStatus;
use serde_json::{json, Value};

/// Asks every migrate instance for its stats, as `nats micro stats
/// jetflow-migrate` does, and returns the breaker states it reports.
async fn breaker_states(env: &TestEnv) -> anyhow::Result<Vec<String>> {
    let reply = env
        .bus
        .client
        .request("$SRV.STATS.jetflow-migrate", "".into())
        .await?;
    let stats: Value = serde_json::from_slice(&reply.payload)?;
    let states = stats["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| {
            e["data"]["details"]["breakers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|b| b["state"].as_str().map(str::to_string))
        .collect();
    Ok(states)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_down_for_ten_seconds_opens_the_breaker_and_fails_nothing() -> anyhow::Result<()> {
    let env = TestEnv::start("breaker").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 1500,
        latency: Duration::from_millis(5),
        ..Default::default()
    })
    .await?;
    let spec = jobs::agents_job(
        "outage",
        &mock,
        json!({"concurrency": 20, "max_retries": 5, "retry_backoff": "200ms", "max_backoff": "1s"}),
    );
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    jobs::wait_for_state(&env.bus, "outage", |s| s.succeeded >= 200).await?;

    mock.set_down(true);
    let down_at = tokio::time::Instant::now();
    let mut saw_open = false;
    while down_at.elapsed() < Duration::from_secs(10) {
        saw_open |= breaker_states(&env).await?.iter().any(|s| s == "open");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let during = jobs::state_json(&env.bus, "outage")
        .await?
        .unwrap_or_default();
    mock.set_down(false);
    assert!(saw_open, "the breaker opened during the outage");
    assert_eq!(during["failed"], 0, "nothing failed during the outage");

    let state = jobs::wait_for_end(&env.bus, "outage").await?;
    assert_eq!(state.status, JobStatus::Completed, "{state:#?}");
    assert_eq!((state.succeeded, state.failed), (1500, 0));
    assert_eq!(state.succeeded, mock.stats().migrated);
    // Held tasks spend no retries: only the calls in flight when the target
    // went down, and the probes, failed. Without the breaker, 20 items
    // retrying every 0.2-1 s for 10 s would spend their five retries and fail.
    assert!(state.retries <= 60, "{} retries spent", state.retries);
    assert!(
        mock.stats().transient_errors <= 100,
        "{} calls hit the down target",
        mock.stats().transient_errors
    );
    assert!(
        breaker_states(&env).await?.iter().all(|s| s == "closed"),
        "closed again once the target answers"
    );
    env.stop_services().await?;
    Ok(())
}
