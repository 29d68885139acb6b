//! A target's shared concurrency, and priority and fairness between jobs
//! that compete for it (issue 12, acceptance 6): `jetflow limits set T
//! concurrency=N` caps every job's calls to T together, across migrate
//! instances, as the mock API itself counts them; a higher-priority job's
//! calls get the freed slots first; jobs of equal priority take turns.

use std::time::Duration;

use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{cli, jobs, ServiceProcesses, TestEnv};
use jetflow_protocol::job::{JobState, JobStatus};
use serde_json::{json, Value};

/// A mock whose calls take long enough that a cap of a few slots is the
/// bottleneck.
async fn slow_mock(agents: usize) -> anyhow::Result<MockAgents> {
    MockAgents::start(MockAgentsConfig {
        agents,
        latency: Duration::from_millis(20),
        ..Default::default()
    })
    .await
}

/// A job migrating the mock's agents `from..=to` (an `ids` source), at
/// `priority`, with room for `concurrency` calls of its own.
fn job_over(
    id: &str,
    mock: &MockAgents,
    (from, to): (usize, usize),
    priority: i32,
    concurrency: u32,
) -> Value {
    let mut spec = jobs::agents_job(id, mock, json!({"concurrency": concurrency}));
    let ids: Vec<String> = (from..=to).map(|n| format!("agent-{n:05}")).collect();
    spec["source"] = json!({"type": "ids", "ids": ids});
    spec["priority"] = json!(priority);
    spec
}

/// Sets `host`'s shared concurrency, and waits for migrate to have seen it
/// (the instances learn of it from the limits bucket they watch).
async fn cap(env: &TestEnv, host: &str, concurrency: u32) -> anyhow::Result<()> {
    let out = cli::ok(
        &env.nats,
        &["limits", "set", host, &format!("concurrency={concurrency}")],
    )
    .await?;
    assert!(out.contains(&format!("concurrency {concurrency}")), "{out}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

async fn state(env: &TestEnv, job: &str) -> anyhow::Result<JobState> {
    jobs::wait_for_state(&env.bus, job, |_| true).await
}

/// Two jobs of 20 in flight each, on two instances of every service, with
/// the target capped at 5: the API never sees more than 5 calls at once,
/// and does see 5 (the slots are used); raised live to 12, a third job
/// (two steps, each calling the API) gets more than 5 and never more than
/// 12; every tally exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_concurrency_caps_every_job_together() -> anyhow::Result<()> {
    let env = TestEnv::bare("slotscap").await?;
    let mock = slow_mock(600).await?;
    let _services = ServiceProcesses::start_copies(&env.nats, 2)?;
    let host = format!("127.0.0.1:{}", mock.port());
    cap(&env, &host, 5).await?;
    let bad = cli::run_in(
        &env.nats,
        &["limits", "set", &host, "concurrency=0"],
        cli::CLI_DEADLINE,
    )
    .await?;
    assert!(!bad.status.success());
    assert!(cli::text(&bad.stderr).contains("concurrency:"));

    for (job, ids) in [("left", (1, 200)), ("right", (201, 400))] {
        let spec = job_over(job, &mock, ids, 0, 20);
        jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    }
    let status = cli::ok(&env.nats, &["status", "left"]).await?;
    assert!(
        status.contains(&format!("target    {host} concurrency 5")),
        "{status}"
    );
    for job in ["left", "right"] {
        let state = jobs::wait_for_end(&env.bus, job).await?;
        assert_eq!(
            (state.status, state.succeeded),
            (JobStatus::Completed, 200),
            "{state:#?}"
        );
    }
    let stats = mock.stats();
    assert_eq!(stats.calls, 400, "one call per item");
    assert_eq!(stats.max_in_flight, 5, "at most 5 at once, and 5 used");

    // A chain's steps each take a slot for their call.
    mock.reset_max_in_flight();
    cap(&env, &host, 12).await?;
    let mut spec = job_over("third", &mock, (401, 600), 0, 20);
    let call = spec["handler"].clone();
    spec["handler"] = json!({"type": "steps", "steps": [
        {"name": "prepare", "call": call},
        {"name": "migrate", "call": call},
    ]});
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    let state = jobs::wait_for_end(&env.bus, "third").await?;
    assert_eq!((state.succeeded, state.retries), (200, 0), "{state:#?}");
    assert_eq!(mock.stats().calls, 800, "one call per step and item");
    let most = mock.stats().max_in_flight;
    assert!((6..=12).contains(&most), "{most} at once under a cap of 12");
    Ok(())
}

/// A low-priority job and a high-priority one racing for the same
/// capacity: `low` (its ids and concurrency) runs until it has done
/// `head_start` items, then `high` (priority 3) starts beside it. Returns
/// how many items the low job did while the high one ran, once the high
/// one has completed; the low job is still running.
async fn low_job_meanwhile(
    env: &TestEnv,
    mock: &MockAgents,
    (low_ids, low_concurrency): ((usize, usize), u32),
    (high_ids, high_concurrency): ((usize, usize), u32),
    head_start: u64,
) -> anyhow::Result<u64> {
    let low = job_over("low", mock, low_ids, 0, low_concurrency);
    jobs::submit_plain(&env.bus, low.to_string().as_bytes()).await?;
    jobs::wait_for_state(&env.bus, "low", |s| s.succeeded >= head_start).await?;
    let high = job_over("high", mock, high_ids, 3, high_concurrency);
    jobs::submit_plain(&env.bus, high.to_string().as_bytes()).await?;
    let low_at_start = state(env, "low").await?.succeeded;
    let high_end = jobs::wait_for_end(&env.bus, "high").await?;
    let low_at_end = state(env, "low").await?.succeeded;
    let high_items = (high_ids.1 - high_ids.0 + 1) as u64;
    assert_eq!(
        (high_end.status, high_end.succeeded),
        (JobStatus::Completed, high_items),
        "{high_end:#?}"
    );
    let meanwhile = low_at_end - low_at_start;
    eprintln!("low job did {meanwhile} items while the high one ran");
    Ok(meanwhile)
}

/// Cancels the low job of [`low_job_meanwhile`] and waits for its end.
async fn cancel_low(env: &TestEnv) -> anyhow::Result<()> {
    cli::ok(&env.nats, &["cancel", "low"]).await?;
    let low_end = jobs::wait_for_end(&env.bus, "low").await?;
    assert_eq!(low_end.status, JobStatus::Cancelled, "{low_end:#?}");
    Ok(())
}

/// A low-priority job of 5,000 items is running when a high-priority job
/// of 300 starts on the same capped target: the high job ends before the
/// low one has done another 1,000 (in turn with it, with 50 calls waiting
/// against its 10, it would get a sixth of the slots and end after the low
/// job had done some 1,500 more).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_higher_priority_job_goes_first_on_a_shared_target() -> anyhow::Result<()> {
    let env = TestEnv::bare("slotsprio").await?;
    let mock = slow_mock(5_300).await?;
    let _services = ServiceProcesses::start_copies(&env.nats, 2)?;
    let host = format!("127.0.0.1:{}", mock.port());
    cap(&env, &host, 5).await?;
    let meanwhile =
        low_job_meanwhile(&env, &mock, ((1, 5_000), 50), ((5_001, 5_300), 10), 200).await?;
    assert!(
        meanwhile < 1_000,
        "the low job did {meanwhile} items while the high job ran"
    );
    cancel_low(&env).await
}

/// Two jobs of equal priority started together on a capped target both
/// make progress from the start, and in turn: when one ends, the other
/// has done most of its items too, not waited for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_of_equal_priority_share_a_target_fairly() -> anyhow::Result<()> {
    let env = TestEnv::bare("slotsfair").await?;
    let mock = slow_mock(1_200).await?;
    let _services = ServiceProcesses::start_copies(&env.nats, 2)?;
    let host = format!("127.0.0.1:{}", mock.port());
    cap(&env, &host, 4).await?;

    for (job, ids) in [("one", (1, 600)), ("two", (601, 1_200))] {
        let spec = job_over(job, &mock, ids, 0, 20);
        jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    }
    jobs::wait_for_state(&env.bus, "one", |s| s.succeeded + s.failed >= 60).await?;
    let early = state(&env, "two").await?.succeeded;
    assert!(
        early >= 20,
        "job two had done {early} when job one had done 60"
    );

    let first = tokio::select! {
        one = jobs::wait_for_end(&env.bus, "one") => ("one", "two", one?),
        two = jobs::wait_for_end(&env.bus, "two") => ("two", "one", two?),
    };
    let (ended, other, ended_state) = first;
    assert_eq!(ended_state.succeeded, 600, "{ended_state:#?}");
    let behind = state(&env, other).await?.succeeded;
    eprintln!("when {ended} ended, {other} had done {behind} of 600");
    assert!(
        behind >= 400,
        "when {ended} ended, {other} had done only {behind} of 600"
    );
    let other_end = jobs::wait_for_end(&env.bus, other).await?;
    assert_eq!(other_end.succeeded, 600, "{other_end:#?}");
    assert!(mock.stats().max_in_flight <= 4);
    Ok(())
}

/// Item `priority` in an `items` source orders the items within the job:
/// the higher ones are fetched first (so they are in the first pages and
/// run first), and the lower ones last; the rest keep their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_items_source_runs_higher_priority_items_first() -> anyhow::Result<()> {
    let env = TestEnv::bare("itemprio").await?;
    let mock = slow_mock(40).await?;
    let _services = ServiceProcesses::start(&env.nats)?;
    let job = "ordered";
    let items: Vec<Value> = (1..=40)
        .map(|n| {
            let priority = match n {
                31..=40 => Some(5),
                6..=10 => Some(-1),
                _ => None,
            };
            json!({"id": format!("agent-{n:05}"), "priority": priority})
        })
        .collect();
    let mut spec = jobs::agents_job(job, &mock, json!({"concurrency": 1, "fetch_size": 10}));
    spec["source"] = json!({"type": "items", "items": items});
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    let state = jobs::wait_for_end(&env.bus, job).await?;
    assert_eq!(state.succeeded, 40, "{state:#?}");
    let outcomes = jobs::item_records(&env.bus, job).await?;
    let batch_of = |n: usize| outcomes.get(&format!("agent-{n:05}")).map(|o| o.batch);
    for n in 31..=40 {
        assert_eq!(batch_of(n), Some(1), "agent {n} (priority 5)");
    }
    for n in 6..=10 {
        assert_eq!(batch_of(n), Some(4), "agent {n} (priority -1)");
    }
    assert_eq!(batch_of(1), Some(2), "the first unprioritised item");
    Ok(())
}

/// A pause ends the waits for a slot too: with 2 slots and 20 calls of
/// the job waiting, no call starts once the job is paused (the waiting
/// tasks go back, spending nothing); resumed, it completes exactly, one
/// call per item.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pause_ends_the_waits_for_a_slot() -> anyhow::Result<()> {
    let env = TestEnv::bare("slotspause").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 120,
        latency: Duration::from_millis(100),
        ..Default::default()
    })
    .await?;
    let _services = ServiceProcesses::start(&env.nats)?;
    let host = format!("127.0.0.1:{}", mock.port());
    cap(&env, &host, 2).await?;
    let job = "paused-waits";
    let spec = job_over(job, &mock, (1, 120), 0, 20);
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    jobs::wait_for_state(&env.bus, job, |s| s.succeeded >= 10).await?;
    cli::ok(&env.nats, &["pause", job]).await?;
    jobs::wait_for_state(&env.bus, job, |s| s.status == JobStatus::Paused).await?;
    // The two calls in flight at the pause finish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_pause = mock.stats().calls;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(mock.stats().calls, at_pause, "a call started while paused");

    cli::ok(&env.nats, &["resume", job]).await?;
    let state = jobs::wait_for_end(&env.bus, job).await?;
    assert_eq!(
        (state.status, state.succeeded, state.retries),
        (JobStatus::Completed, 120, 0),
        "{state:#?}"
    );
    assert_eq!(mock.stats().calls, 120, "one call per item");
    Ok(())
}

/// Priority under a target's shared rate limit too: a low-priority job
/// running against a target limited to 100/s, then a high-priority job of
/// 300 items on it: the high job takes each window's tokens first, so the
/// low job does little while it runs (sharing alike, it would do some 300,
/// the high job taking 6 s instead of 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_higher_priority_job_goes_first_under_a_shared_rate() -> anyhow::Result<()> {
    let env = TestEnv::bare("rateprio").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 3_300,
        latency: Duration::from_millis(5),
        ..Default::default()
    })
    .await?;
    let _services = ServiceProcesses::start_copies(&env.nats, 2)?;
    let host = format!("127.0.0.1:{}", mock.port());
    cli::ok(&env.nats, &["limits", "set", &host, "rate=100/s"]).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let meanwhile =
        low_job_meanwhile(&env, &mock, ((1, 3_000), 50), ((3_001, 3_300), 50), 100).await?;
    assert!(
        meanwhile < 120,
        "the low job did {meanwhile} items while the high job ran"
    );
    let low_at_end = state(&env, "low").await?.succeeded;
    // The low job still runs at the limit once alone.
    jobs::wait_for_state(&env.bus, "low", |s| s.succeeded >= low_at_end + 200).await?;
    cancel_low(&env).await
}

/// Priority for migrate's own slots too (`--max-inflight`): with an
/// instance that runs 4 items at once over all jobs and no target limit,
/// a high-priority job of 300 items started beside a running low one gets
/// the freed slots first (in turn, each would get half and the low job do
/// some 300 items meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_higher_priority_job_goes_first_for_migrates_own_slots() -> anyhow::Result<()> {
    let env = TestEnv::bare("instprio").await?;
    let mock = slow_mock(3_300).await?;
    let _services =
        ServiceProcesses::start_with_env(&env.nats, 1, &[("JETFLOW_MIGRATE_MAX_INFLIGHT", "4")])?;
    let meanwhile =
        low_job_meanwhile(&env, &mock, ((1, 3_000), 50), ((3_001, 3_300), 50), 100).await?;
    assert!(
        meanwhile < 120,
        "the low job did {meanwhile} items while the high job ran"
    );
    assert!(mock.stats().max_in_flight <= 4);
    cancel_low(&env).await
}
