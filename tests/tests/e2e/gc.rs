//! `jetflow gc` and automatic retention remove a finished job's state,
//! batches, items, events and dead letters, and nothing of a running job;
//! `jetflow jobs` lists jobs by status and label.

use std::time::Duration;

use anyhow::Context as _;
use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{cli, jobs, TestEnv};
use jetflow_protocol::job::JobStatus;
use jetflow_runtime::{nats::scan::KvScan, Bus};
use serde_json::{json, Value};

/// How many keys (with a value) of `job` each bucket, and how many messages
/// of `job` each stream, holds.
async fn footprint(bus: &Bus, job: &str) -> anyhow::Result<[usize; 6]> {
    let keys = |kv: async_nats::jetstream::kv::Store, filter: String| async move {
        let mut scan = KvScan::start(&bus.js, &kv, &filter).await?;
        let mut n = 0;
        while let Some(change) = scan.next().await? {
            n += usize::from(change.value.is_some());
        }
        anyhow::Ok(n)
    };
    let names = &bus.names;
    let events =
        jobs::stream_messages(bus, &names.events_stream(), &names.event_subject(job, ">")).await?;
    let dead =
        jobs::stream_messages(bus, &names.dlq_stream(), &names.dlq_filter(None, Some(job))).await?;
    Ok([
        keys(bus.kv.jobs.clone(), job.to_string()).await?,
        keys(bus.kv.specs.clone(), job.to_string()).await?,
        keys(bus.kv.batches.clone(), format!("{job}.>")).await?,
        keys(bus.kv.items.clone(), format!("{job}.>")).await?,
        events.len(),
        dead.len(),
    ])
}

async fn listed(env: &TestEnv, args: &[&str]) -> anyhow::Result<Vec<String>> {
    let mut all = vec!["jobs", "--json"];
    all.extend_from_slice(args);
    let rows: Vec<Value> = serde_json::from_str(&cli::ok(&env.nats, &all).await?)?;
    let mut ids: Vec<String> = rows
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    Ok(ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_removes_a_finished_job_entirely_and_nothing_of_a_running_one() -> anyhow::Result<()> {
    let env = TestEnv::start("gc").await?;
    let done_mock = MockAgents::start(MockAgentsConfig {
        agents: 120,
        permanent_rate: 0.1,
        ..Default::default()
    })
    .await?;
    let slow_mock = MockAgents::start(MockAgentsConfig {
        agents: 300,
        latency: Duration::from_millis(300),
        ..Default::default()
    })
    .await?;
    let mut old = jobs::agents_job("old", &done_mock, json!({}));
    old["labels"] = json!({"workflow_id": "wf-1"});
    jobs::submit_plain(&env.bus, old.to_string().as_bytes()).await?;
    assert_eq!(
        jobs::wait_for_end(&env.bus, "old").await?.status,
        JobStatus::Partial
    );
    let mut running = jobs::agents_job("running", &slow_mock, json!({"concurrency": 5}));
    running["labels"] = json!({"workflow_id": "wf-2"});
    jobs::submit_plain(&env.bus, running.to_string().as_bytes()).await?;
    jobs::wait_for_state(&env.bus, "running", |s| s.succeeded >= 10).await?;

    assert_eq!(listed(&env, &[]).await?, ["old", "running"]);
    assert_eq!(listed(&env, &["--status", "finished"]).await?, ["old"]);
    assert_eq!(listed(&env, &["--status", "active"]).await?, ["running"]);
    assert_eq!(
        listed(&env, &["--label", "workflow_id=wf-2"]).await?,
        ["running"]
    );

    let before_old = footprint(&env.bus, "old").await?;
    assert!(
        before_old.iter().all(|n| *n > 0),
        "old has everything: {before_old:?}"
    );
    let before_running = footprint(&env.bus, "running").await?;

    // Not old enough: nothing goes.
    cli::ok(&env.nats, &["gc", "--older-than", "1h"]).await?;
    assert_eq!(footprint(&env.bus, "old").await?, before_old);

    let removed: Vec<Value> =
        serde_json::from_str(&cli::ok(&env.nats, &["gc", "--older-than", "0s", "--json"]).await?)?;
    let removed: Vec<&str> = removed.iter().filter_map(|r| r["job"].as_str()).collect();
    assert_eq!(removed, ["old"]);
    assert_eq!(
        footprint(&env.bus, "old").await?,
        [0; 6],
        "nothing of old is left"
    );
    assert!(jobs::state_json(&env.bus, "old").await?.is_none());

    let after_running = footprint(&env.bus, "running").await?;
    for (i, (before, after)) in before_running.iter().zip(after_running).enumerate() {
        assert!(
            after >= *before,
            "running lost records (field {i}): {before_running:?} -> {after_running:?}"
        );
    }
    slow_mock.set_latency(Duration::ZERO);
    let end = jobs::wait_for_end(&env.bus, "running").await?;
    assert_eq!((end.status, end.succeeded), (JobStatus::Completed, 300));
    assert_eq!(listed(&env, &[]).await?, ["running"]);
    env.stop_services().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_removes_finished_jobs_on_its_own() -> anyhow::Result<()> {
    let env = TestEnv::bare("retention").await?;
    let mut reduce = jetflow_reduce::Config::new(env.nats.clone());
    reduce.retention = "2s".parse().map_err(anyhow::Error::msg)?;
    reduce.gc_every = "1s".parse().map_err(anyhow::Error::msg)?;
    env.start_services_with(reduce);
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 50,
        ..Default::default()
    })
    .await?;
    let spec = jobs::agents_job("expiring", &mock, json!({}));
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    let end = jobs::wait_for_end(&env.bus, "expiring").await?;
    assert_eq!(end.status, JobStatus::Completed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while jobs::state_json(&env.bus, "expiring").await?.is_some() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "retention never removed the job"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let left = footprint(&env.bus, "expiring").await.context("footprint")?;
    assert_eq!(left, [0; 6], "nothing of the expired job is left");
    env.stop_services().await?;
    Ok(())
}
