//! Flow control: retries that wait without holding a concurrency slot or
//! the fetch window, a target's `Retry-After`, and pause / resume.

use std::time::{Duration, Instant};

use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{cli, faults, jobs, ServiceProcesses, TestEnv};
use jetflow_protocol::job::{JobState, JobStatus};
use serde_json::json;

/// Issue 12, acceptance 1: a job whose items often fail once or twice, with
/// concurrency 5 over two migrate instances. The API never sees more than
/// 5 calls at once, and while retries wait out a 1-2 s backoff it still
/// has 5 for most of that time (a waiting retry holds no slot; 50 ms calls
/// keep the slots busy even when the machine is loaded). A batch whose
/// unfinished items all wait does not hold fetch back: more batches are
/// open than `max_inflight_batches`, and parked items stay within their
/// own bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_retries_hold_no_slot_and_no_fetch_window() -> anyhow::Result<()> {
    let env = TestEnv::bare("parking").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 600,
        transient_rate: 0.3,
        permanent_rate: 0.02,
        latency: Duration::from_millis(50),
        seed: 12,
        ..Default::default()
    })
    .await?;
    let _services = ServiceProcesses::start_copies(&env.nats, 2)?;
    let job = "parking";
    let (fetch_size, max_inflight, max_parked) = (20u64, 2u64, 60u64);
    let spec = jobs::agents_job(
        job,
        &mock,
        json!({
            "concurrency": 5, "max_retries": 8, "retry_backoff": "1s", "max_backoff": "2s",
            "fetch_size": fetch_size, "max_inflight_batches": max_inflight, "max_parked": max_parked,
        }),
    );
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;

    // Time the API had all 5 slots busy, counted between two looks at the
    // state that both saw parked retries: weighted by time, so it does not
    // depend on how often this loop gets to look on a busy machine.
    let mut full_while_parked = Duration::ZERO;
    let mut parked_since: Option<Duration> = None;
    let (mut most_open, mut most_parked) = (0u64, 0u64);
    let deadline = Instant::now() + jobs::JOB_DEADLINE;
    let state = loop {
        anyhow::ensure!(Instant::now() < deadline, "job did not end");
        let Some(value) = jobs::state_json(&env.bus, job).await? else {
            continue;
        };
        let state: JobState = serde_json::from_value(value)?;
        if state.status.is_terminal() {
            break state;
        }
        let full_so_far = mock.time_with_calls_in_flight(5);
        if state.parked() > 0 {
            if let Some(since) = parked_since {
                full_while_parked += full_so_far.saturating_sub(since);
            }
            parked_since = Some(full_so_far);
        } else {
            parked_since = None;
        }
        most_open = most_open.max(state.open_batches.len() as u64);
        most_parked = most_parked.max(state.parked());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stats = mock.stats();
    assert!(
        stats.max_in_flight <= 5,
        "the API saw {} calls at once",
        stats.max_in_flight
    );
    assert!(
        full_while_parked >= Duration::from_secs(1),
        "retries were waiting but the API had its 5 calls for only {full_while_parked:?} \
         of that time: waiting retries hold slots"
    );
    eprintln!(
        "the API had 5 calls at once for {full_while_parked:?} while retries waited, {:?} in all",
        mock.time_with_calls_in_flight(5)
    );
    assert!(
        most_open > max_inflight,
        "at most {most_open} batches were open: batches waiting only for retries held fetch back"
    );
    // Fetch stops once `max_parked` items wait; the batches already out
    // can park all their items after that.
    assert!(
        most_parked <= max_parked + max_inflight * fetch_size,
        "{most_parked} items parked at once, above the bound"
    );
    assert!(state.retries > 0, "{state:#?}");
    faults::assert_exact(&env.bus, &mock, job, 600).await?;
    assert_eq!(stats.duplicate_successes, 0);
    Ok(())
}

/// Issue 12, acceptance 4: a 429 with `Retry-After: 2` and `max_retries`
/// 0. The API sees no call for 2 s (the throttled item waits that long and
/// so do the others, held back behind the target), then the item is called
/// again and succeeds: the wait spent no retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_after_is_waited_for_without_spending_a_retry() -> anyhow::Result<()> {
    let env = TestEnv::start("retryafter").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 3,
        ..Default::default()
    })
    .await?;
    mock.throttle(1, 2);
    let job = "throttled";
    let spec = jobs::agents_job(job, &mock, json!({"concurrency": 1, "max_retries": 0}));
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    let state = jobs::wait_for_end(&env.bus, job).await?;
    assert_eq!(
        (state.status, state.succeeded, state.retries),
        (JobStatus::Completed, 3, 0),
        "{state:#?}"
    );
    let calls = mock.recent_calls();
    assert_eq!(calls.len(), 4, "one throttled call, then one per item");
    let quiet = calls[1] - calls[0];
    assert!(
        quiet >= Duration::from_millis(1950),
        "the API was called again {quiet:?} after asking for 2 s"
    );
    env.stop_services().await
}

/// Issue 12, acceptance 5: a paused job makes no call, stays paused while
/// every service is killed and restarted, and completes exactly once
/// resumed; `paused` and `resumed` events are published.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pause_holds_across_restarts_until_resumed() -> anyhow::Result<()> {
    let env = TestEnv::bare("pause").await?;
    let mock = MockAgents::start(faults::mock_config(400)).await?;
    mock.set_latency(Duration::from_millis(20));
    let mut services = ServiceProcesses::start(&env.nats)?;
    let job = "paused";
    let spec = jobs::agents_job(job, &mock, json!({"concurrency": 4}));
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    jobs::wait_for_state(&env.bus, job, |s| s.succeeded >= 20).await?;

    cli::ok(&env.nats, &["pause", job, "--reason", "API maintenance"]).await?;
    let state = jobs::state_json(&env.bus, job).await?.unwrap_or_default();
    assert_eq!(state["status"], "paused", "{state:#}");
    assert_eq!(state["pause_reason"], "API maintenance");
    let event = jobs::wait_for_event(&env.bus, job, "paused").await?;
    assert_eq!(event.reason.as_deref(), Some("API maintenance"));
    // Calls in flight when it paused finish; then none starts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let calls = mock.stats().calls;
    for index in 0..services.len() {
        services.kill_and_restart(index)?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(mock.stats().calls, calls, "a paused job made calls");
    let state: JobState = jobs::wait_for_state(&env.bus, job, |_| true).await?;
    assert_eq!(state.status, JobStatus::Paused, "{state:#?}");
    assert!(state.done() < 400);

    cli::ok(&env.nats, &["resume", job]).await?;
    jobs::wait_for_event(&env.bus, job, "resumed").await?;
    faults::assert_exact(&env.bus, &mock, job, 400).await?;
    services.check_running()
}

/// Issue 12, acceptance 5: a pause published with the nats CLI's plain
/// `pub` (no headers) for 3 s ends by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timed_pause_published_plainly_ends_by_itself() -> anyhow::Result<()> {
    let env = TestEnv::start("timedpause").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 200,
        latency: Duration::from_millis(20),
        ..Default::default()
    })
    .await?;
    let job = "timed";
    let spec = jobs::agents_job(job, &mock, json!({"concurrency": 2}));
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    jobs::wait_for_state(&env.bus, job, |s| s.succeeded >= 5).await?;
    env.bus
        .client
        .publish(env.bus.names.pause_subject(job), r#"{"for": "3s"}"#.into())
        .await?;
    let paused = jobs::wait_for_state(&env.bus, job, |s| s.status == JobStatus::Paused).await?;
    let until = paused
        .paused_until
        .ok_or_else(|| anyhow::anyhow!("no paused_until: {paused:#?}"))?;
    let resumed = jobs::wait_for_event(&env.bus, job, "resumed").await?;
    assert_eq!(resumed.reason.as_deref(), Some("pause ended"));
    assert!(
        resumed.at >= until,
        "resumed at {} before {until}",
        resumed.at
    );
    let state = jobs::wait_for_end(&env.bus, job).await?;
    assert_eq!((state.status, state.succeeded), (JobStatus::Completed, 200));
    env.stop_services().await
}
