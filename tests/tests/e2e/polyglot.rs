//! Workers in other languages, with no SDK: the Python and Node examples
//! (examples/) against real jetflow services — a two-step chain served by
//! Python then Node, an external job worked by a Python consumer that
//! misbehaves on purpose, and a Python `nats` source.

use std::time::Duration;

use jetflow_e2e::{jobs, polyglot::ExampleWorker, TestEnv};
use jetflow_protocol::job::{ItemStatus, JobStatus};
use serde_json::json;

fn agents(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("agent-{i:05}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_steps_job_runs_its_first_step_in_python_and_its_second_in_node() -> anyhow::Result<()> {
    let env = TestEnv::start("poly-steps").await?;
    let _ensure = ExampleWorker::python(&env.nats, "ensure_thread.py", &[], &[]).await?;
    let _execute = ExampleWorker::node(&env.nats, "execute.mjs", &[("FAIL_EVERY", "25")]).await?;
    let job = json!({
        "id": "agents-two-steps",
        "source": {"type": "ids", "ids": agents(500)},
        "handler": {"type": "steps", "steps": [
            {"name": "ensure-thread", "call": {"type": "nats", "subject": "agents.ensure-thread"}},
            {"name": "execute", "call": {"type": "nats", "subject": "agents.execute", "timeout": "20s"}, "max_retries": 2}
        ]},
        "params": {"template": "my-template:v2"},
        "batch": {"concurrency": 32}
    });
    jobs::submit_plain(&env.bus, job.to_string().as_bytes()).await?;
    let state = jobs::wait_for_end(&env.bus, "agents-two-steps").await?;
    assert_eq!(
        (state.status, state.total, state.succeeded, state.failed),
        (JobStatus::Partial, 500, 480, 20)
    );
    let records = jobs::item_records(&env.bus, "agents-two-steps").await?;
    assert_eq!(records.len(), 500);
    let ok = &records["agent-00001"];
    assert_eq!(ok.status, ItemStatus::Succeeded);
    assert_eq!(
        ok.output["thread"], "thread-agent-00001",
        "Node saw Python's output"
    );
    assert_eq!(
        ok.output["messages"][0],
        "migrated agent-00001 to my-template:v2"
    );
    for n in (25..=500).step_by(25) {
        let id = format!("agent-{n:05}");
        let failed = &records[&id];
        assert_eq!(failed.status, ItemStatus::Failed, "{id}");
        assert_eq!(failed.failed_step.as_deref(), Some("execute"), "{id}");
        let error = failed.error.as_deref().unwrap_or_default();
        assert!(
            error.starts_with("step execute: graph execution failed for"),
            "{error}"
        );
        assert_eq!(failed.messages.len(), 1, "{id}: the messages so far");
        assert_eq!(failed.messages[0].step, "ensure-thread");
        assert_eq!(
            failed.messages[0].output["thread"],
            format!("thread-{id}").as_str()
        );
        assert_eq!(
            failed.messages[0].output["idempotency_key"],
            format!("agents-two-steps:{id}:ensure-thread").as_str()
        );
    }
    env.stop_services().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_external_job_is_completed_by_a_python_consumer_that_duplicates_and_drops(
) -> anyhow::Result<()> {
    let env = TestEnv::start("poly-ext").await?;
    let job = json!({
        "id": "external-1000",
        "source": {"type": "ids", "ids": agents(1000)},
        "handler": {"type": "external", "ack_wait": "2s"},
        "batch": {"concurrency": 100, "fetch_size": 100, "max_inflight_batches": 4},
        // An external worker's outputs fold like any other's: once per item,
        // whatever it published twice.
        "reduce": [
            {"name": "deliveries", "op": "sum", "path": "output.delivery"},
            {"name": "by", "op": "count_by", "path": "output.worked_by"},
        ]
    });
    jobs::submit_plain(&env.bus, job.to_string().as_bytes()).await?;
    jobs::wait_for_state(&env.bus, "external-1000", |s| s.tasks.is_some()).await?;
    // Every 7th result published twice; every 50th item's first delivery
    // neither published nor acked (redelivered after ack_wait).
    let worker = ExampleWorker::python(
        &env.nats,
        "external_worker.py",
        &["external-1000"],
        &[("DUPLICATE_EVERY", "7"), ("SKIP_ACK_EVERY", "50")],
    )
    .await?;
    let state = jobs::wait_for_end(&env.bus, "external-1000").await?;
    assert_eq!(
        (state.status, state.total, state.succeeded, state.failed),
        (JobStatus::Completed, 1000, 1000, 0)
    );
    let records = jobs::item_records(&env.bus, "external-1000").await?;
    assert_eq!(records.len(), 1000);
    // The 20 dropped tasks were delivered twice; every other item once.
    assert_eq!(state.results["deliveries"].value, json!(1020));
    assert_eq!(state.results["by"].value, json!({"python": 1000}));
    for n in (50..=1000).step_by(50) {
        let record = &records[&format!("agent-{n:05}")];
        assert_eq!(
            record.output["delivery"], 2,
            "the dropped task came back: {record:?}"
        );
    }
    assert_eq!(records["agent-00007"].output["delivery"], 1);
    let events = jobs::stream_messages(
        &env.bus,
        &env.bus.names.events_stream(),
        &env.bus.names.event_subject("external-1000", "started"),
    )
    .await?;
    let started: serde_json::Value = serde_json::from_slice(&events[0].2)?;
    assert_eq!(started["tasks"]["consumer"], "task_external-1000");
    // The worker really did misbehave: 142 careless duplicates on the ledger
    // (every 7th of 1,000) and 20 tasks dropped once.
    let printed = worker.finish(Duration::from_secs(30)).await?;
    assert_eq!(
        printed.last().map(String::as_str),
        Some("done: 1000 results, 142 duplicates, 20 left un-acked")
    );
    env.stop_services().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_python_nats_source_pages_two_thousand_items_by_cursor() -> anyhow::Result<()> {
    let env = TestEnv::start("poly-src").await?;
    let mut pages =
        ExampleWorker::python(&env.nats, "page_source.py", &[], &[("TOTAL", "2000")]).await?;
    let _ensure = ExampleWorker::python(&env.nats, "ensure_thread.py", &[], &[]).await?;
    let job = json!({
        "id": "from-python",
        "source": {"type": "nats", "subject": "agents.pages"},
        "handler": {"type": "nats", "subject": "agents.ensure-thread"},
        "batch": {"fetch_size": 100, "concurrency": 50}
    });
    jobs::submit_plain(&env.bus, job.to_string().as_bytes()).await?;
    let state = jobs::wait_for_end(&env.bus, "from-python").await?;
    assert_eq!(
        (state.status, state.total, state.succeeded, state.batches),
        (JobStatus::Completed, 2000, 2000, 20)
    );
    let records = jobs::item_records(&env.bus, "from-python").await?;
    assert_eq!(records.len(), 2000);
    assert_eq!(
        records["agent-01999"].output["thread"],
        "thread-agent-01999"
    );
    let last = pages
        .wait_for_line("page 20:", Duration::from_secs(5))
        .await?;
    assert_eq!(
        last, "page 20: 1900..2000",
        "twenty pages by cursor, none repeated"
    );
    env.stop_services().await?;
    Ok(())
}
