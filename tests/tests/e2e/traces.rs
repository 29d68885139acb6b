//! One trace per job across every service.
//! - Exporting: the four services run as their own processes exporting
//!   OTLP to a receiver the test runs; a job submitted with a `traceparent`
//!   yields spans from fetch, batch, migrate and reduce in that trace, and
//!   the Python worker handling its items receives the same trace id in the
//!   `traceparent` header.
//! - Not exporting: the submitter's `traceparent` is passed through to every
//!   message of the job and every call it makes.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use anyhow::Context as _;
use futures::StreamExt;
use jetflow_devkit::mock_agents::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{
    jobs, otlp::OtlpReceiver, polyglot::ExampleWorker, webhook::Webhook, ServiceProcesses, TestEnv,
};
use jetflow_protocol::job::JobStatus;
use serde_json::json;

/// A fresh W3C `traceparent` (sampled) and its trace id: the submitter's.
fn submitters_trace() -> (String, String) {
    let trace_id = format!("{:032x}", rand::random::<u128>() | 1);
    let traceparent = format!("00-{trace_id}-{:016x}-01", rand::random::<u64>() | 1);
    (traceparent, trace_id)
}

/// Publishes `job` to the submit subject with a `traceparent` header.
async fn submit_traced(
    env: &TestEnv,
    job: &serde_json::Value,
    traceparent: &str,
) -> anyhow::Result<()> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("traceparent", traceparent);
    env.bus
        .client
        .publish_with_headers(
            env.bus.names.submit_subject(),
            headers,
            job.to_string().into(),
        )
        .await?;
    env.bus.client.flush().await?;
    Ok(())
}

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

    let stop = tokio_util::sync::CancellationToken::new();
    let names = &env.bus.names;
    let watching = trace_ids_on(
        &env.bus.client,
        vec![names.task_subject("traced"), names.result_subject("traced")],
        stop.clone(),
    )
    .await?;

    // The submitter's own trace: the job joins it.
    let (traceparent, trace_id) = submitters_trace();
    let job = json!({
        "id": "traced",
        "source": {"type": "ids", "ids": (1..=120).map(|i| format!("agent-{i:03}")).collect::<Vec<_>>()},
        "handler": {"type": "nats", "subject": "agents.ensure-thread"},
        "batch": {"fetch_size": 40, "concurrency": 10}
    });
    submit_traced(&env, &job, &traceparent).await?;
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

    // Every task and every ledger entry (grouped results too) in it.
    stop.cancel();
    let seen = watching.await?;
    all_in_trace(&seen, &["task", "result"], &trace_id)?;

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

/// The trace id of each message published on `subjects` until `until`
/// is cancelled, by kind of message (the subject's second token: `task`,
/// `result`, ...); `""` for a message without a `traceparent`.
async fn trace_ids_on(
    client: &async_nats::Client,
    subjects: Vec<String>,
    until: tokio_util::sync::CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<BTreeMap<String, Vec<String>>>> {
    let mut subs = Vec::new();
    for subject in subjects {
        subs.push(client.subscribe(subject).await?);
    }
    client.flush().await?;
    let mut all = futures::stream::select_all(subs);
    Ok(tokio::spawn(async move {
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        loop {
            let msg = tokio::select! {
                _ = until.cancelled() => break,
                msg = all.next() => msg,
            };
            let Some(msg) = msg else { break };
            let kind = msg
                .subject
                .split('.')
                .nth(1)
                .unwrap_or_default()
                .to_string();
            seen.entry(kind).or_default().push(trace_id_in(
                msg.headers
                    .as_ref()
                    .and_then(|h| h.get("traceparent"))
                    .map(|v| v.as_str()),
            ));
        }
        seen
    }))
}

/// Checks that messages of each of `kinds` were seen, all in `trace_id`.
fn all_in_trace(
    seen: &BTreeMap<String, Vec<String>>,
    kinds: &[&str],
    trace_id: &str,
) -> anyhow::Result<()> {
    for kind in kinds {
        let ids = seen
            .get(*kind)
            .with_context(|| format!("no {kind} message seen: {seen:?}"))?;
        let untraced = ids.iter().filter(|t| *t != trace_id).count();
        anyhow::ensure!(
            untraced == 0,
            "{untraced} of {} {kind} messages without the trace",
            ids.len()
        );
    }
    Ok(())
}

/// The trace id of a `traceparent`; `""` for none.
fn trace_id_in(traceparent: Option<&str>) -> String {
    traceparent
        .and_then(|tp| tp.split('-').nth(1))
        .unwrap_or_default()
        .to_string()
}

/// Acceptance 6 of the dashboard issue: with no exporter configured in any
/// service, a job submitted with the submitter's `traceparent` passes it to
/// every batch, task, ledger entry (grouped results too), event and
/// notification, and to every handler call: the HTTP API (the mock), the
/// worker in Python, the webhook told of the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_submitters_trace_reaches_every_message_and_call_with_no_exporter() -> anyhow::Result<()>
{
    let env = TestEnv::bare("passthrough").await?;
    let _procs = ServiceProcesses::start_with_env(
        &env.nats,
        1,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ""),
        ],
    )?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 300,
        ..Default::default()
    })
    .await?;
    let _worker = ExampleWorker::python(&env.nats, "ensure_thread.py", &[], &[]).await?;
    let hook = Webhook::start().await?;
    let id = "passed-through";
    let names = &env.bus.names;
    let stop = tokio_util::sync::CancellationToken::new();
    let watching = trace_ids_on(
        &env.bus.client,
        vec![
            names.batch_subject(id),
            names.task_subject(id),
            names.result_subject(id),
            names.event_subject(id, "*"),
            names.notify_subject(id),
            "ops.passed".to_string(),
        ],
        stop.clone(),
    )
    .await?;

    let mut completed = env
        .bus
        .client
        .subscribe(names.event_subject(id, "completed"))
        .await?;
    let mut told = env.bus.client.subscribe("ops.passed").await?;
    let (traceparent, trace_id) = submitters_trace();
    let ids: Vec<String> = (1..=300).map(|n| format!("agent-{n:05}")).collect();
    let job = json!({
        "id": id,
        "source": {"type": "ids", "ids": ids},
        "handler": {"type": "steps", "steps": [
            {"name": "migrate", "call": {
                "type": "http", "method": "POST", "url": mock.migrate_url_template(),
                "idempotency_header": "Idempotency-Key"
            }},
            {"name": "thread", "call": {"type": "nats", "subject": "agents.ensure-thread"}}
        ]},
        "params": {"template": "my-template:v2"},
        "batch": {"fetch_size": 50, "concurrency": 20},
        "notify": [{"url": hook.url}, {"subject": "ops.passed"}]
    });
    submit_traced(&env, &job, &traceparent).await?;
    let state = jobs::wait_for_end(&env.bus, id).await?;
    assert_eq!((state.status, state.succeeded), (JobStatus::Completed, 300));
    assert_eq!(
        state.traceparent.as_deref(),
        Some(traceparent.as_str()),
        "the job keeps the submitter's context as it came"
    );

    // The HTTP API: every call in the submitter's trace.
    assert_eq!(
        mock.calls_by_trace(),
        BTreeMap::from([(trace_id.clone(), 300)])
    );
    // The worker in Python saw it in each request.
    let records = jobs::item_records(&env.bus, id).await?;
    assert_eq!(records.len(), 300);
    for (item, record) in &records {
        let seen = record.output["traceparent"].as_str().unwrap_or_default();
        assert_eq!(
            trace_id_in(Some(seen)),
            trace_id,
            "{item}: the worker saw {seen:?}"
        );
    }
    // The webhook, told of the end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while hook.delivered().is_empty() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no notification delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for got in hook.delivered() {
        assert_eq!(trace_id_in(got.traceparent.as_deref()), trace_id, "{got:?}");
    }

    // Every message of the job, of every kind, carried it (once the last
    // ones, the final event and the subject's notification, are out).
    for last in [&mut completed, &mut told] {
        tokio::time::timeout(Duration::from_secs(60), last.next())
            .await
            .context("the job's last messages did not come")?;
    }
    stop.cancel();
    let seen = watching.await?;
    let counts: BTreeMap<&String, usize> = seen.iter().map(|(k, v)| (k, v.len())).collect();
    println!("messages of the job seen, by kind: {counts:?}");
    all_in_trace(&seen, &["batch", "task", "result", "events", "notify"], &trace_id)?;
    assert_eq!(seen["task"].len(), 300, "one task per item");
    assert_eq!(seen["batch"].len(), 6, "one batch per page of 50");
    assert!(
        seen["result"].len() > 6,
        "results (grouped) and the stages' facts: {}",
        seen["result"].len()
    );
    let published = seen
        .get("passed")
        .context("the end was not published on ops.passed")?;
    assert!(published.iter().all(|t| *t == trace_id), "{published:?}");
    Ok(())
}

/// `jetflow submit` run inside a traced script (`TRACEPARENT` set, as CI
/// systems and `otel-cli` do) submits its job into that trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetflow_submit_joins_the_trace_in_its_environment() -> anyhow::Result<()> {
    let env = TestEnv::start("submit-traced").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 100,
        ..Default::default()
    })
    .await?;
    let mut job = jobs::agents_job("from-ci", &mock, json!({}));
    job["source"] = json!({"type": "ids", "ids": ["agent-00001", "agent-00002", "agent-00003"]});
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("job.json");
    std::fs::write(&file, job.to_string())?;
    let (traceparent, trace_id) = submitters_trace();
    let mut vars = jetflow_e2e::shell::env_of(&env.nats);
    vars.push(("TRACEPARENT", traceparent.clone()));
    let path = file.display().to_string();
    let out = jetflow_e2e::cli::run_with_env(
        &["submit", path.as_str(), "--wait"],
        &vars,
        jobs::JOB_DEADLINE,
    )
    .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = jobs::wait_for_end(&env.bus, "from-ci").await?;
    assert_eq!(state.traceparent.as_deref(), Some(traceparent.as_str()));
    assert_eq!(mock.calls_by_trace(), BTreeMap::from([(trace_id, 3)]));
    Ok(())
}
