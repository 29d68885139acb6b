//! DLQ replay: after the target is fixed, replaying a partial job's dead
//! letters runs those items again and corrects its tally and status.

use anyhow::Context as _;
use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{cli, jobs, TestEnv};
use jetflow_protocol::job::{ItemStatus, JobStatus};
use serde_json::json;

async fn jetflow(env: &TestEnv, args: &[&str]) -> anyhow::Result<String> {
    cli::ok(&env.nats, args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replaying_the_dlq_after_a_fix_turns_a_partial_job_completed() -> anyhow::Result<()> {
    let env = TestEnv::start("replay").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 600,
        permanent_rate: 0.03,
        seed: 9,
        ..Default::default()
    })
    .await?;
    let broken = mock.permanent_failures();
    assert!(broken.len() >= 5, "the mock must break some agents");
    let mut spec = jobs::agents_job("fixable", &mock, json!({}));
    // The replay corrects these as it corrects the tally.
    spec["reduce"] = json!([
        {"name": "statuses", "op": "count_by", "path": "status", "on": "any"},
        {"name": "errors", "op": "count_by", "path": "error", "on": "failed"},
        {"name": "ok", "op": "count"},
    ]);
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    let first = jobs::wait_for_end(&env.bus, "fixable").await?;
    assert_eq!(
        (first.status, first.failed),
        (JobStatus::Partial, broken.len() as u64)
    );
    assert_eq!(first.dead_lettered, broken.len() as u64);
    let n_broken = broken.len() as u64;
    assert_eq!(
        first.results["statuses"].value,
        json!({"succeeded": 600 - n_broken, "failed": n_broken})
    );
    let error_counts = first.results["errors"]
        .value
        .as_object()
        .context("counts")?;
    let errors: u64 = error_counts.values().filter_map(|n| n.as_u64()).sum();
    assert_eq!(errors, n_broken, "{error_counts:?}");
    assert_eq!(first.results["ok"].value, json!(600 - n_broken));

    let listed = jetflow(&env, &["dlq", "ls", "--job", "fixable", "--json"]).await?;
    assert_eq!(listed.lines().count(), broken.len(), "{listed}");
    assert!(
        listed
            .lines()
            .all(|l| l.contains("\"stage\":\"migrate\"") && l.contains("422")),
        "{listed}"
    );

    let seq = serde_json::from_str::<serde_json::Value>(listed.lines().next().unwrap_or("{}"))?
        ["seq"]
        .as_u64()
        .context("ls gives sequences")?;
    let shown: serde_json::Value =
        serde_json::from_str(&jetflow(&env, &["dlq", "show", &seq.to_string()]).await?)?;
    assert_eq!(
        shown["payload"]["job"], "fixable",
        "the task is shown decoded: {shown}"
    );
    assert!(broken.contains(
        &shown["payload"]["item"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    ));

    mock.set_permanent_rate(0.0)?; // the fix
    let out = jetflow(&env, &["dlq", "replay", "--job", "fixable"]).await?;
    assert!(
        out.contains(&format!("replayed {} items of job fixable", broken.len())),
        "{out}"
    );

    let fixed = jobs::wait_for_end(&env.bus, "fixable").await?;
    assert_eq!(fixed.status, JobStatus::Completed, "{fixed:#?}");
    assert_eq!(
        (fixed.succeeded, fixed.failed, fixed.dead_lettered),
        (600, 0, 0)
    );
    assert_eq!(mock.stats().migrated, 600);
    assert_eq!(fixed.results["statuses"].value, json!({"succeeded": 600}));
    assert_eq!(fixed.results["errors"].value, json!({}));
    assert_eq!(fixed.results["ok"].value, json!(600));
    let records = jobs::item_records(&env.bus, "fixable").await?;
    assert_eq!(records.len(), 600);
    for id in &broken {
        assert_eq!(records[id].status, ItemStatus::Succeeded, "{id}");
        assert_eq!(records[id].replaced, Some(ItemStatus::Failed), "{id}");
        let previous = records[id]
            .previous
            .as_ref()
            .context("the replaced outcome")?;
        assert!(
            previous.error.as_deref().is_some_and(|e| e.contains("422")),
            "{id}"
        );
    }
    let left = jetflow(&env, &["dlq", "ls", "--job", "fixable", "--json"]).await?;
    assert_eq!(left.trim(), "", "the replayed dead letters are gone");
    env.stop_services().await?;
    Ok(())
}

/// `retry-failed`: a new job, linked to the old one, over exactly its
/// failed items — 1,000 of 20,000, with the data the handler saw — paged
/// from the old job's outcomes, so nothing is inlined however many failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_failed_runs_exactly_the_failed_items_as_a_linked_job() -> anyhow::Result<()> {
    let env = TestEnv::start("retry").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 20_000,
        permanent_rate: 0.05,
        seed: 4,
        ..Default::default()
    })
    .await?;
    let broken = mock.permanent_failures();
    assert!(
        (900..1_100).contains(&broken.len()),
        "about 1,000 of 20,000 fail: {}",
        broken.len()
    );
    let settings = json!({"concurrency": 100, "fetch_size": 50, "max_inflight_batches": 16});
    let spec = jobs::agents_job("flaky", &mock, settings);
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    let first = jobs::wait_for_end(&env.bus, "flaky").await?;
    assert_eq!(first.failed, broken.len() as u64);
    // Each failure keeps the data it ran with (the agent, from the page).
    let before = jobs::item_records(&env.bus, "flaky").await?;
    for id in &broken {
        assert_eq!(before[id].input["id"], json!(id), "{:?}", before[id]);
    }

    mock.set_permanent_rate(0.0)?; // the fix
    let migrated_before = mock.stats().migrated;
    let out = cli::run_in(
        &env.nats,
        &["retry-failed", "flaky", "--wait"],
        jobs::JOB_DEADLINE,
    )
    .await?;
    let (stdout, stderr) = (cli::text(&out.stdout), cli::text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("submitted flaky-retry-1"), "{stderr}");
    let retry = jobs::wait_for_end(&env.bus, "flaky-retry-1").await?;
    assert_eq!(
        (retry.status, retry.total, retry.succeeded),
        (
            JobStatus::Completed,
            broken.len() as u64,
            broken.len() as u64
        )
    );
    assert_eq!(
        retry.spec.labels.get("retry_of").map(String::as_str),
        Some("flaky")
    );
    let records = jobs::item_records(&env.bus, "flaky-retry-1").await?;
    let mut retried: Vec<String> = records.into_keys().collect();
    retried.sort();
    assert_eq!(retried, broken, "exactly the failed items");
    assert_eq!(mock.stats().migrated - migrated_before, broken.len() as u64);
    // The job names its source; the items are not in it.
    let stored = env
        .bus
        .kv
        .specs
        .get("flaky-retry-1")
        .await?
        .context("spec")?;
    let stored: serde_json::Value = serde_json::from_slice(&stored)?;
    assert_eq!(
        stored["source"],
        json!({"type": "job", "job": "flaky", "status": "failed", "data": "input"})
    );
    assert_eq!(mock.stats().migrated, 20_000);

    // An unknown job is named.
    let out = cli::run_in(&env.nats, &["retry-failed", "nope"], cli::CLI_DEADLINE).await?;
    assert!(
        cli::text(&out.stderr).contains("no job \"nope\""),
        "{}",
        cli::text(&out.stderr)
    );
    env.stop_services().await?;
    Ok(())
}
