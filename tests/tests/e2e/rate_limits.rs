//! Rate limits (issue 12, acceptance 3): a job's `handler.rate_limit` and
//! a target's shared limit (`jetflow limits`) hold across every migrate
//! instance, counted per whole second of the wall clock by the mock API
//! itself; `jetflow config set JOB rate_limit=…` changes a running job's.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{cli, jobs, ServiceProcesses, TestEnv};
use jetflow_protocol::job::JobStatus;
use serde_json::{json, Value};

/// A mock with no failures and a little latency.
async fn clean_mock(agents: usize) -> anyhow::Result<MockAgents> {
    MockAgents::start(MockAgentsConfig {
        agents,
        latency: Duration::from_millis(5),
        ..Default::default()
    })
    .await
}

/// A job over `mock` whose handler may call at most `rate` (none: no limit
/// of its own), with room to go faster: 50 in flight.
fn limited_job(id: &str, mock: &MockAgents, rate: Option<&str>) -> Value {
    let mut spec = jobs::agents_job(id, mock, json!({"concurrency": 50}));
    if let Some(rate) = rate {
        spec["handler"]["rate_limit"] = json!(rate);
    }
    spec
}

/// The mock's calls in each whole second from `from` (unix seconds) to
/// `to`, both left out.
fn whole_seconds(mock: &MockAgents, from: u64, to: u64) -> Vec<u64> {
    mock.calls_per_second()
        .into_iter()
        .filter(|(second, _)| *second > from && *second < to)
        .map(|(_, calls)| calls)
        .collect()
}

/// The mock's calls in each second of a run but its first and last, which
/// are partial (the first call and the last come within them).
fn run_seconds(mock: &MockAgents) -> Vec<u64> {
    let mut seconds: Vec<u64> = mock
        .calls_per_second()
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    seconds.pop();
    if !seconds.is_empty() {
        seconds.remove(0);
    }
    seconds
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Asserts `per_second` (at least `min_seconds` of them) holds `limit`:
/// no second over it by more than 10%, and on average at least 85% of it.
fn assert_held(per_second: &[u64], limit: u64, min_seconds: usize, what: &str) {
    eprintln!("{what}: calls per whole second {per_second:?}");
    assert!(
        per_second.len() >= min_seconds,
        "{what}: only {} whole seconds of calls: {per_second:?}",
        per_second.len()
    );
    let most = per_second.iter().copied().max().unwrap_or(0);
    assert!(
        most * 10 <= limit * 11,
        "{what}: {most} calls in one second, limit {limit}: {per_second:?}"
    );
    let average = per_second.iter().sum::<u64>() as f64 / per_second.len() as f64;
    assert!(
        average >= limit as f64 * 0.85,
        "{what}: {average:.1} calls per second on average, limit {limit}: {per_second:?}"
    );
}

/// 100/s over `copies` processes of every service: every whole second
/// of the run at or under 110 calls, at least 85 on average, and the
/// tally exact.
async fn rate_limit_holds_with(copies: usize) -> anyhow::Result<()> {
    let env = TestEnv::bare(&format!("rate{copies}")).await?;
    let items = 600;
    let mock = clean_mock(items).await?;
    let _services = ServiceProcesses::start_copies(&env.nats, copies)?;
    let job = "limited";
    let spec = limited_job(job, &mock, Some("100/s"));
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    let state = jobs::wait_for_end(&env.bus, job).await?;
    assert_eq!(
        (state.status, state.succeeded),
        (JobStatus::Completed, items as u64),
        "{state:#?}"
    );
    assert_eq!(mock.stats().calls, items as u64, "one call per item");
    assert_held(
        &run_seconds(&mock),
        100,
        3,
        &format!("{copies} instance(s)"),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limit_holds_with_one_migrate_instance() -> anyhow::Result<()> {
    rate_limit_holds_with(1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limit_holds_with_three_migrate_instances() -> anyhow::Result<()> {
    rate_limit_holds_with(3).await
}

/// `jetflow config set JOB rate_limit=20/s` slows a running 100/s job
/// within a few seconds (`status` shows the new limit), and `none` lifts
/// it: the job then finishes at full speed, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limit_is_live() -> anyhow::Result<()> {
    let env = TestEnv::bare("ratelive").await?;
    let items = 1_000;
    let mock = clean_mock(items).await?;
    let _services = ServiceProcesses::start_copies(&env.nats, 2)?;
    let job = "live-rate";
    let spec = limited_job(job, &mock, Some("100/s"));
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    jobs::wait_for_state(&env.bus, job, |s| s.succeeded >= 150).await?;

    let out = cli::ok(&env.nats, &["config", "set", job, "rate_limit=20/s"]).await?;
    assert!(out.contains("rate_limit 100/s -> 20/s"), "{out}");
    let changed = unix_now();
    let status = cli::ok(&env.nats, &["status", job]).await?;
    assert!(status.contains("limit     20/s"), "{status}");
    // Applied within a few seconds: from the third whole second on.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let slowed = whole_seconds(&mock, changed + 2, unix_now());
    assert_held(&slowed, 20, 3, "after config set 20/s");

    let out = cli::ok(&env.nats, &["config", "set", job, "rate_limit=none"]).await?;
    assert!(out.contains("rate_limit 20/s -> none"), "{out}");
    let (lifted, left) = (Instant::now(), items as u64 - mock.stats().calls);
    let state = jobs::wait_for_end(&env.bus, job).await?;
    assert_eq!(
        (state.status, state.succeeded),
        (JobStatus::Completed, items as u64),
        "{state:#?}"
    );
    assert_eq!(mock.stats().calls, items as u64, "one call per item");
    let rate = left as f64 / lifted.elapsed().as_secs_f64();
    assert!(
        rate > 40.0,
        "the last {left} items ran at {rate:.0}/s once the limit was lifted: still limited"
    );
    Ok(())
}

/// A target's limit is shared: two jobs with no limit of their own, on the
/// same API, together stay at its 60/s; `limits get|ls|rm` show and remove
/// it, and a bad target or value is refused with why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_limit_caps_two_jobs_together() -> anyhow::Result<()> {
    let env = TestEnv::bare("ratetarget").await?;
    let items = 300;
    let mock = clean_mock(items).await?;
    let _services = ServiceProcesses::start_copies(&env.nats, 2)?;
    let api = mock.migrate_url_template();
    let out = cli::ok(&env.nats, &["limits", "set", &api, "rate=60/s"]).await?;
    let host = format!("127.0.0.1:{}", mock.port());
    assert_eq!(out.trim(), format!("{host}  rate 60/s  concurrency -"));
    let listed = cli::ok(&env.nats, &["limits", "ls"]).await?;
    assert_eq!(listed.trim(), format!("{host}  rate 60/s  concurrency -"));
    let bad = cli::run_in(
        &env.nats,
        &["limits", "set", &host, "rate=lots"],
        cli::CLI_DEADLINE,
    )
    .await?;
    assert!(!bad.status.success());
    assert!(
        cli::text(&bad.stderr).contains("rate:"),
        "{}",
        cli::text(&bad.stderr)
    );
    // Migrate instances learn of it from the bucket they watch.
    tokio::time::sleep(Duration::from_secs(1)).await;

    for job in ["first", "second"] {
        let spec = limited_job(job, &mock, None);
        jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    }
    let status = cli::ok(&env.nats, &["status", "first"]).await?;
    assert!(
        status.contains(&format!("target    {host} 60/s")),
        "{status}"
    );
    // Both share the mock's items: each job migrates all of them, so the
    // API is called twice per agent.
    for job in ["first", "second"] {
        let state = jobs::wait_for_end(&env.bus, job).await?;
        assert_eq!(state.status, JobStatus::Completed, "{state:#?}");
        assert_eq!(state.succeeded, items as u64);
    }
    assert_held(&run_seconds(&mock), 60, 5, "two jobs, one target");

    cli::ok(&env.nats, &["limits", "rm", &host]).await?;
    let gone = cli::run_in(&env.nats, &["limits", "get", &host], cli::CLI_DEADLINE).await?;
    assert_eq!(gone.status.code(), Some(1), "{}", cli::text(&gone.stderr));
    Ok(())
}

/// A step's own `rate_limit` holds too, for the first step (taken before
/// its task is pulled) and a later one (a step held back waits parked,
/// holding no slot, for its next window): two steps of 30/s each, both
/// calling the API, make 60 calls a second, and the waits spend no retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_steps_rate_limit_holds_without_spending_retries() -> anyhow::Result<()> {
    let env = TestEnv::bare("ratesteps").await?;
    let items = 200;
    let mock = clean_mock(items).await?;
    let _services = ServiceProcesses::start_copies(&env.nats, 2)?;
    let job = "limited-steps";
    let mut spec = limited_job(job, &mock, Some("30/s"));
    let call = spec["handler"].clone();
    spec["handler"] = json!({"type": "steps", "steps": [
        {"name": "prepare", "call": call},
        {"name": "migrate", "call": call},
    ]});
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    let state = jobs::wait_for_end(&env.bus, job).await?;
    assert_eq!(
        (state.status, state.succeeded, state.retries),
        (JobStatus::Completed, items as u64, 0),
        "{state:#?}"
    );
    assert_eq!(
        mock.stats().calls,
        2 * items as u64,
        "one call per step and item"
    );
    assert_held(&run_seconds(&mock), 60, 4, "two steps of 30/s");
    Ok(())
}
