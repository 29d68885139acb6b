//! One trace per job across every service: the four services run as their
//! own processes exporting OTLP to a receiver the test runs; a job submitted
//! with a `traceparent` yields spans from fetch, batch, migrate and reduce
//! in that trace, and the Python worker handling its items receives the
//! same trace id in the `traceparent` header.

use std::{collections::BTreeSet, time::Duration};

use anyhow::Context as _;
use jetflow_e2e::{jobs, otlp::OtlpReceiver, polyglot::ExampleWorker, ServiceProcesses, TestEnv};
use jetflow_protocol::job::JobStatus;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_jobs_spans_in_every_service_and_its_workers_share_one_trace() -> anyhow::Result<()> {
    let env = TestEnv::bare("traces").await?;
    let receiver = OtlpReceiver::start().await?;
    let _procs = ServiceProcesses::start_with_env(
        &env.nats,
        1,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )?;
    let _worker = ExampleWorker::python(&env.nats, "ensure_thread.py", &[], &[]).await?;

    // The submitter's own trace: the job joins it.
    let trace_id = format!("{:032x}", rand::random::<u128>());
    let traceparent = format!("00-{trace_id}-{:016x}-01", rand::random::<u64>() | 1);
    let job = json!({
        "id": "traced",
        "source": {"type": "ids", "ids": (1..=120).map(|i| format!("agent-{i:03}")).collect::<Vec<_>>()},
        "handler": {"type": "nats", "subject": "agents.ensure-thread"},
        "batch": {"fetch_size": 40, "concurrency": 10}
    });
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("traceparent", traceparent.as_str());
    env.bus
        .client
        .publish_with_headers(
            env.bus.names.submit_subject(),
            headers,
            job.to_string().into(),
        )
        .await?;
    env.bus.client.flush().await?;
    let state = jobs::wait_for_end(&env.bus, "traced").await?;
    assert_eq!((state.status, state.succeeded), (JobStatus::Completed, 120));
    let kept = state
        .traceparent
        .as_deref()
        .context("the job keeps its traceparent")?;
    assert!(
        kept.contains(&trace_id),
        "{kept} is not in trace {trace_id}"
    );

    // The worker in Python saw the job's trace in each request's header.
    let records = jobs::item_records(&env.bus, "traced").await?;
    for (id, record) in &records {
        let seen = record.output["traceparent"].as_str().unwrap_or_default();
        assert!(seen.contains(&trace_id), "{id}: the worker saw {seen:?}");
    }

    // Spans from every service, in the one trace.
    let wanted = [
        "jetflow-fetch",
        "jetflow-batch",
        "jetflow-migrate",
        "jetflow-reduce",
    ];
    // Spans arrive in export batches, each service on its own schedule:
    // wait until every service and every item's span has come in.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let spans = receiver.spans();
        let traced: Vec<_> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
        let services: BTreeSet<&str> = traced.iter().map(|s| s.service.as_str()).collect();
        let items = traced.iter().filter(|s| s.name == "item").count();
        if wanted.iter().all(|w| services.contains(w)) && items >= 120 {
            let names: BTreeSet<&str> = traced.iter().map(|s| s.name.as_str()).collect();
            for name in ["job", "fetch.page", "batch.dispatch", "item", "reduce.fold"] {
                assert!(names.contains(name), "no {name} span in {names:?}");
            }
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "spans in trace {trace_id} came only from {services:?}, with {items} item spans of 120 ({} spans received)",
            spans.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
