//! A job through all four stages, and the tallies it ends with.

use std::collections::BTreeSet;

use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{jobs, TestEnv};
use jetflow_protocol::{
    codec,
    job::{ItemStatus, JobStatus},
    Stage,
};
use serde_json::json;

/// docs/design.md, invariants 1 and 2: 1,000 agents, 5% transient and ~1% permanent failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_agents_with_failures_end_partial_with_an_exact_tally() -> anyhow::Result<()> {
    let env = TestEnv::start("pipeline").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 1000,
        transient_rate: 0.05,
        permanent_rate: 0.01,
        seed: 7,
        ..Default::default()
    })
    .await?;
    let permanent: BTreeSet<String> = mock.permanent_failures().into_iter().collect();
    assert!(
        !permanent.is_empty(),
        "the mock must inject permanent failures for this test to mean anything"
    );

    let job = jobs::agents_job("thousand", &mock, json!({"max_retries": 8}));
    jobs::submit_plain(&env.bus, job.to_string().as_bytes()).await?;
    let state = jobs::wait_for_end(&env.bus, "thousand").await?;

    assert_eq!(state.status, JobStatus::Partial);
    assert_eq!(state.total, 1000);
    assert_eq!(state.succeeded + state.failed, 1000);
    let seen = mock.stats();
    assert_eq!(
        state.succeeded, seen.migrated,
        "succeeded must equal what the target saw"
    );
    assert_eq!(state.failed, permanent.len() as u64);
    assert!(
        seen.transient_errors > 0 && state.retries > 0,
        "transient failures were retried"
    );
    assert_eq!(state.batches, 20);
    assert_eq!(state.batches_done, 20);

    let records = jobs::item_records(&env.bus, "thousand").await?;
    assert_eq!(records.len(), 1000, "one outcome record per agent");
    let migrated: BTreeSet<String> = mock.migrated_ids().into_iter().collect();
    for (id, record) in &records {
        match record.status {
            ItemStatus::Succeeded => assert!(
                migrated.contains(id),
                "{id} succeeded but the mock did not migrate it"
            ),
            ItemStatus::Failed => {
                assert!(
                    permanent.contains(id),
                    "{id} failed but is not a permanent failure"
                );
                let error = record.error.as_deref().unwrap_or_default();
                assert!(
                    error.contains("422") && error.contains("incompatible"),
                    "{id}: {error}"
                );
            }
        }
    }
    // Every failed item is in the DLQ with its reason.
    let dlq = jobs::stream_messages(
        &env.bus,
        &env.bus.names.dlq_stream(),
        &env.bus.names.dlq_subject(Stage::Migrate, "thousand"),
    )
    .await?;
    let dead: BTreeSet<String> = dlq
        .iter()
        .filter_map(|(_, h, _)| jobs::header(h, "Jetflow-Item"))
        .collect();
    assert_eq!(dead, permanent);
    assert!(dlq
        .iter()
        .all(|(_, h, _)| jobs::header(h, "Jetflow-Error").is_some_and(|e| e.contains("422"))));
    env.stop_services().await?;
    Ok(())
}

/// Inline sources: an `ids` subset and an `items` job with data.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ids_and_items_jobs_complete_with_exact_tallies() -> anyhow::Result<()> {
    let env = TestEnv::start("inline").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 200,
        ..Default::default()
    })
    .await?;

    let subset: Vec<String> = (1..=25).map(|i| format!("agent-{:05}", i * 7)).collect();
    let mut ids_job = jobs::agents_job("subset", &mock, json!({"fetch_size": 10}));
    ids_job["source"] = json!({"type": "ids", "ids": subset});
    jobs::submit_plain(&env.bus, ids_job.to_string().as_bytes()).await?;

    // An items job whose body is each item's own data.
    let items: Vec<_> = (1..=30)
        .map(|i| json!({"id": format!("agent-{:05}", 100 + i), "data": {"template": format!("tpl:v{i}")}}))
        .collect();
    let mut items_job = jobs::agents_job("with-data", &mock, json!({"fetch_size": 7}));
    items_job["source"] = json!({"type": "items", "items": items});
    items_job["handler"]["body"] = json!("$data");
    jobs::submit_plain(&env.bus, items_job.to_string().as_bytes()).await?;

    let subset_state = jobs::wait_for_end(&env.bus, "subset").await?;
    assert_eq!(subset_state.status, JobStatus::Completed);
    assert_eq!(
        (
            subset_state.total,
            subset_state.succeeded,
            subset_state.failed
        ),
        (25, 25, 0)
    );
    assert_eq!(subset_state.batches, 3);

    let items_state = jobs::wait_for_end(&env.bus, "with-data").await?;
    assert_eq!(items_state.status, JobStatus::Completed);
    assert_eq!((items_state.total, items_state.succeeded), (30, 30));

    let mut expected: BTreeSet<String> = subset.into_iter().collect();
    expected.extend((1..=30).map(|i| format!("agent-{:05}", 100 + i)));
    let migrated: BTreeSet<String> = mock.migrated_ids().into_iter().collect();
    assert_eq!(
        migrated, expected,
        "exactly the listed agents were migrated"
    );
    // The items' data reached the target: each record's output is the mock's answer.
    let records = jobs::item_records(&env.bus, "with-data").await?;
    assert_eq!(records["agent-00105"].output["template"], "tpl:v5");
    env.stop_services().await?;
    Ok(())
}

/// The `nats` CLI's way: submitted as plain JSON, no headers; state read back as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plain_json_job_is_readable_as_json_from_kv() -> anyhow::Result<()> {
    let env = TestEnv::start("plain").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 120,
        ..Default::default()
    })
    .await?;
    let job = jobs::agents_job("plain-json", &mock, json!({}));
    // Exactly what `nats pub jetflow.jobs.submit "$(cat job.json)"` sends.
    jobs::submit_plain(&env.bus, serde_json::to_string_pretty(&job)?.as_bytes()).await?;
    jobs::wait_for_end(&env.bus, "plain-json").await?;

    let raw = env
        .bus
        .kv
        .jobs
        .get("plain-json")
        .await?
        .expect("state exists");
    assert_eq!(codec::Format::detect(None, &raw), codec::Format::Json);
    let state: serde_json::Value = serde_json::from_slice(&raw)?;
    assert_eq!(state["id"], "plain-json");
    assert_eq!(state["status"], "completed");
    assert_eq!(state["total"], 120);
    assert_eq!(state["succeeded"], 120);
    assert_eq!(state["failed"], 0);
    assert_eq!(state["progress"], 1.0);
    assert_eq!(state["spec"]["labels"]["workflow_id"], "wf-test");
    assert_eq!(state["spec"]["batch"]["fetch_size"], 50);
    // Batch records and item outcomes are JSON too.
    let batch: serde_json::Value = serde_json::from_slice(
        &env.bus
            .kv
            .batches
            .get("plain-json.3")
            .await?
            .expect("batch 3"),
    )?;
    assert_eq!(
        (batch["status"].as_str(), batch["size"].as_u64()),
        (Some("completed"), Some(20))
    );
    let item: serde_json::Value = serde_json::from_slice(
        &env.bus
            .kv
            .items
            .get("plain-json.agent-00001")
            .await?
            .expect("item"),
    )?;
    assert_eq!(item["status"], "succeeded");
    // And the lifecycle is in the events stream.
    for event in ["accepted", "started", "batch_done", "completed"] {
        jobs::wait_for_event(&env.bus, "plain-json", event).await?;
    }
    env.stop_services().await?;
    Ok(())
}
