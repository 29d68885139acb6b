//! Jobs that wait for jobs (issue 14, part 3): a job's `after` holds it
//! `waiting` — no page fetched, no call made — until the jobs it names
//! have ended; it then runs, or fails saying which dependency ended how.
//! A missing dependency, the job itself or a status no job ends in is
//! rejected at submit, naming the field.

use std::time::Duration;

use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{cli, jobs, ServiceProcesses, TestEnv};
use jetflow_protocol::job::JobStatus;
use serde_json::{json, Value};

async fn mock(agents: usize, latency_ms: u64, permanent_rate: f64) -> anyhow::Result<MockAgents> {
    MockAgents::start(MockAgentsConfig {
        agents,
        latency: Duration::from_millis(latency_ms),
        permanent_rate,
        ..Default::default()
    })
    .await
}

/// A job over `mock`, waiting for `after` (a JSON array).
fn job(id: &str, mock: &MockAgents, settings: Value, after: Value) -> Value {
    let mut spec = jobs::agents_job(id, mock, settings);
    spec["after"] = after;
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_after_another_waits_for_it_then_runs() -> anyhow::Result<()> {
    let env = TestEnv::bare("after").await?;
    let (first, second, third) = (
        mock(200, 20, 0.0).await?,
        mock(100, 0, 0.0).await?,
        mock(10, 0, 0.0).await?,
    );
    let _services = ServiceProcesses::start(&env.nats)?;
    let a = jobs::agents_job("a", &first, json!({"concurrency": 5}));
    jobs::submit_plain(&env.bus, a.to_string().as_bytes()).await?;
    jobs::wait_for_state(&env.bus, "a", |_| true).await?;
    let b = job("b", &second, json!({}), json!([{"job": "a"}]));
    jobs::submit_plain(&env.bus, b.to_string().as_bytes()).await?;
    let c = job(
        "c",
        &third,
        json!({}),
        json!([{"job": "a", "on": ["completed", "partial"]}]),
    );
    jobs::submit_plain(&env.bus, c.to_string().as_bytes()).await?;

    jobs::wait_for_state(&env.bus, "a", |s| s.succeeded >= 50).await?;
    let waiting = jobs::wait_for_state(&env.bus, "b", |_| true).await?;
    assert_eq!(waiting.status, JobStatus::Waiting, "{waiting:#?}");
    assert_eq!(second.stats().calls, 0, "b called its API while a ran");
    let status = cli::ok(&env.nats, &["status", "b"]).await?;
    assert!(status.contains("status    waiting"), "{status}");
    assert!(status.contains("after     a (completed)"), "{status}");
    // A waiting job can be cancelled.
    cli::ok(&env.nats, &["cancel", "c"]).await?;
    let cancelled = jobs::wait_for_end(&env.bus, "c").await?;
    assert_eq!(cancelled.status, JobStatus::Cancelled, "{cancelled:#?}");
    assert_eq!(third.stats().calls, 0);

    let b_end = jobs::wait_for_end(&env.bus, "b").await?;
    let a_end = jobs::wait_for_end(&env.bus, "a").await?;
    assert_eq!(
        (b_end.status, b_end.succeeded),
        (JobStatus::Completed, 100),
        "{b_end:#?}"
    );
    assert_eq!(a_end.status, JobStatus::Completed);
    let (a_finished, b_started) = (a_end.finished_at, b_end.started_at);
    assert!(
        a_finished.is_some() && b_started.is_some() && a_finished <= b_started,
        "b started at {b_started:?}, before a finished at {a_finished:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_after_one_that_fails_fails_with_the_reason() -> anyhow::Result<()> {
    let env = TestEnv::bare("afterfail").await?;
    let (refusing, second) = (mock(50, 0, 1.0).await?, mock(50, 0, 0.0).await?);
    let _services = ServiceProcesses::start(&env.nats)?;
    let mut a = jobs::agents_job("a", &refusing, json!({}));
    a["failure_policy"] = json!("fail_fast");
    jobs::submit_plain(&env.bus, a.to_string().as_bytes()).await?;
    jobs::wait_for_state(&env.bus, "a", |_| true).await?;
    let b = job("b", &second, json!({}), json!([{"job": "a"}]));
    jobs::submit_plain(&env.bus, b.to_string().as_bytes()).await?;
    let b_end = jobs::wait_for_end(&env.bus, "b").await?;
    assert_eq!(b_end.status, JobStatus::Failed, "{b_end:#?}");
    let reason = b_end.reason.unwrap_or_default();
    assert!(
        reason.contains("dependency a ended failed"),
        "reason: {reason}"
    );
    assert_eq!(second.stats().calls, 0, "b called its API");
    assert_eq!(b_end.succeeded + b_end.failed, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_dependency_itself_or_a_bad_status_is_rejected() -> anyhow::Result<()> {
    let env = TestEnv::bare("afterbad").await?;
    let api = mock(10, 0, 0.0).await?;
    let _services = ServiceProcesses::start(&env.nats)?;
    for (id, after, why) in [
        (
            "x1",
            json!([{"job": "nope"}]),
            "after[0].job: there is no job nope",
        ),
        (
            "x2",
            json!([{"job": "x2"}]),
            "after[0].job: a job cannot wait for itself",
        ),
        (
            "x3",
            json!([{"job": "x1", "on": ["fetching"]}]),
            "after[0].on",
        ),
        ("x4", json!([{"job": "x1", "when": "later"}]), "after[0]"),
    ] {
        let spec = job(id, &api, json!({}), after);
        jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
        let rejected = jobs::wait_for_event(&env.bus, id, "rejected").await?;
        let reason = rejected.reason.unwrap_or_default();
        assert!(reason.contains(why), "{id}: {reason}");
    }
    assert_eq!(api.stats().calls, 0);
    Ok(())
}
