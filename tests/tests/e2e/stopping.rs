//! Stopping a job early — cancel, timeout, fail-fast: no new item starts,
//! items in flight finish and count, and once the job is marked ended the
//! target sees no further call.

use std::time::Duration;

use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{jobs, TestEnv};
use jetflow_protocol::job::{JobState, JobStatus};
use serde_json::json;

fn slow_mock(agents: usize) -> MockAgentsConfig {
    MockAgentsConfig {
        agents,
        latency: Duration::from_millis(20),
        ..Default::default()
    }
}

/// The counts of a job that ended early are exactly what ran.
async fn assert_exact_and_quiet(
    env: &TestEnv,
    mock: &MockAgents,
    state: &JobState,
) -> anyhow::Result<()> {
    let seen = mock.stats();
    assert_eq!(
        state.succeeded, seen.migrated,
        "succeeded is what the target saw"
    );
    assert_eq!(
        state.succeeded + state.failed + state.skipped + state.not_run,
        state.total
    );
    assert!(
        state.not_run > 0,
        "the job was stopped before the end: {state:#?}"
    );
    let records = jobs::item_records(&env.bus, &state.id).await?;
    assert_eq!(
        records.len() as u64,
        state.succeeded + state.failed,
        "one record per item that ran"
    );
    // Nothing of the job runs after it is marked ended.
    let calls = seen.calls;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        mock.stats().calls,
        calls,
        "the target was called after the job ended"
    );
    assert_eq!(mock.stats().in_flight, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_published_mid_job_stops_it_with_exact_counts() -> anyhow::Result<()> {
    let env = TestEnv::start("cancel").await?;
    let mock = MockAgents::start(slow_mock(2000)).await?;
    let job = jobs::agents_job("to-cancel", &mock, json!({"concurrency": 10}));
    jobs::submit_plain(&env.bus, job.to_string().as_bytes()).await?;
    jobs::wait_for_state(&env.bus, "to-cancel", |s| s.succeeded >= 100).await?;

    // Exactly `nats pub jetflow.jobs.cancel.<job> ''`.
    env.bus
        .client
        .publish(env.bus.names.cancel_subject("to-cancel"), "".into())
        .await?;
    env.bus.client.flush().await?;
    let state = jobs::wait_for_end(&env.bus, "to-cancel").await?;

    assert_eq!(state.status, JobStatus::Cancelled, "{state:#?}");
    assert!(state.succeeded < 2000);
    assert_exact_and_quiet(&env, &mock, &state).await?;
    let event = jobs::wait_for_event(&env.bus, "to-cancel", "cancelled").await?;
    assert_eq!(event.succeeded, Some(state.succeeded));
    env.stop_services().await?;
    Ok(())
}

/// Issue 12: a paused job can still be cancelled; it ends `cancelled` with
/// the counts it had, and no call is made between the pause and the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_job_can_be_cancelled() -> anyhow::Result<()> {
    let env = TestEnv::start("pausecancel").await?;
    let mock = MockAgents::start(slow_mock(2000)).await?;
    let job = jobs::agents_job("paused-cancel", &mock, json!({"concurrency": 5}));
    jobs::submit_plain(&env.bus, job.to_string().as_bytes()).await?;
    jobs::wait_for_state(&env.bus, "paused-cancel", |s| s.succeeded >= 20).await?;

    env.bus
        .client
        .publish(env.bus.names.pause_subject("paused-cancel"), "".into())
        .await?;
    jobs::wait_for_state(&env.bus, "paused-cancel", |s| s.status == JobStatus::Paused).await?;
    // Calls in flight when it paused finish; then none starts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let calls = mock.stats().calls;
    env.bus
        .client
        .publish(env.bus.names.cancel_subject("paused-cancel"), "".into())
        .await?;
    env.bus.client.flush().await?;
    let state = jobs::wait_for_end(&env.bus, "paused-cancel").await?;

    assert_eq!(state.status, JobStatus::Cancelled, "{state:#?}");
    assert_eq!(mock.stats().calls, calls, "a paused job made calls");
    assert!(state.succeeded < 2000);
    assert_exact_and_quiet(&env, &mock, &state).await?;
    env.stop_services().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_past_its_timeout_fails_with_the_reason_and_exact_counts() -> anyhow::Result<()> {
    let env = TestEnv::start("timeout").await?;
    let mock = MockAgents::start(slow_mock(3000)).await?;
    let mut job = jobs::agents_job("too-slow", &mock, json!({"concurrency": 5}));
    job["timeout"] = json!("2s");
    jobs::submit_plain(&env.bus, job.to_string().as_bytes()).await?;
    let state = jobs::wait_for_end(&env.bus, "too-slow").await?;

    assert_eq!(state.status, JobStatus::Failed, "{state:#?}");
    assert_eq!(state.reason.as_deref(), Some("timeout of 2s exceeded"));
    assert!(state.succeeded > 0);
    assert_exact_and_quiet(&env, &mock, &state).await?;
    env.stop_services().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fail_fast_ends_the_job_at_the_first_permanent_failure() -> anyhow::Result<()> {
    let env = TestEnv::start("failfast").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        permanent_rate: 0.05,
        seed: 11,
        ..slow_mock(2000)
    })
    .await?;
    let mut job = jobs::agents_job("fragile", &mock, json!({"concurrency": 5}));
    job["failure_policy"] = json!("fail_fast");
    jobs::submit_plain(&env.bus, job.to_string().as_bytes()).await?;
    let state = jobs::wait_for_end(&env.bus, "fragile").await?;

    assert_eq!(state.status, JobStatus::Failed, "{state:#?}");
    let reason = state.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("failure_policy fail_fast: item agent-") && reason.contains("422"),
        "{reason}"
    );
    assert!(state.failed >= 1);
    assert_exact_and_quiet(&env, &mock, &state).await?;
    env.stop_services().await?;
    Ok(())
}
