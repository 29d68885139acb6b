//! The `nats` handler, `steps` chains and the `nats` source, served by Rust
//! workers written with `jetflow_worker` (the Python and Node
//! workers in examples/ are tested in `polyglot.rs`); and two namespaces
//! on one server running at once.

use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use jetflow_e2e::{jobs, TestEnv};
use jetflow_protocol::{
    job::{ItemStatus, JobStatus},
    messages::{PageReply, PageRequest},
};
use jetflow_worker::{self as worker, WorkError};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

fn ids(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("item-{i:04}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nats_handler_retries_what_its_worker_calls_retryable_and_fails_the_rest(
) -> anyhow::Result<()> {
    let env = TestEnv::start("natsh").await?;
    let stop = CancellationToken::new();
    // Items ending in 3 fail retryably on their first attempt; items ending
    // in 7 fail for good.
    let serving = tokio::spawn(worker::serve(
        env.bus.client.clone(),
        "work.migrate",
        stop.clone(),
        |request| async move {
            let id = request.item.id;
            if id.ends_with('7') {
                Err(WorkError::Failed(format!("{id} cannot be migrated")))
            } else if id.ends_with('3') && request.attempt == 1 {
                Err(WorkError::Retryable("busy".into()))
            } else {
                Ok(json!({"migrated": id, "template": request.params["template"]}))
            }
        },
    ));
    let job = json!({
        "id": "via-nats",
        "source": {"type": "ids", "ids": ids(300)},
        "handler": {"type": "nats", "subject": "work.migrate", "timeout": "5s"},
        "params": {"template": "v2"},
        "batch": {"concurrency": 20, "retry_backoff": "20ms"}
    });
    jobs::submit_plain(&env.bus, job.to_string().as_bytes()).await?;
    let state = jobs::wait_for_end(&env.bus, "via-nats").await?;
    assert_eq!(
        (state.status, state.succeeded, state.failed, state.retries),
        (JobStatus::Partial, 270, 30, 30)
    );
    let records = jobs::item_records(&env.bus, "via-nats").await?;
    let ok = &records["item-0013"];
    assert_eq!((ok.status, ok.attempts), (ItemStatus::Succeeded, 2));
    assert_eq!(
        ok.output,
        json!({"migrated": "item-0013", "template": "v2"})
    );
    let failed = &records["item-0017"];
    assert_eq!(failed.status, ItemStatus::Failed);
    assert_eq!(
        failed.error.as_deref(),
        Some("item-0017 cannot be migrated")
    );
    stop.cancel();
    serving.await??;
    env.stop_services().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn steps_pass_each_output_on_and_a_failed_step_is_recorded_with_the_messages_so_far(
) -> anyhow::Result<()> {
    let env = TestEnv::start("steps").await?;
    let stop = CancellationToken::new();
    let ensure = tokio::spawn(worker::serve(
        env.bus.client.clone(),
        "agents.ensure-thread",
        stop.clone(),
        |request| async move { Ok(json!({"thread": format!("thread-{}", request.item.id)})) },
    ));
    let execute = tokio::spawn(worker::serve(
        env.bus.client.clone(),
        "agents.execute",
        stop.clone(),
        |request| async move {
            let id = request.item.id;
            if request.step.as_deref() != Some("execute") {
                return Err(WorkError::Failed("not called as the execute step".into()));
            }
            if request.input["thread"] != format!("thread-{id}").as_str() {
                return Err(WorkError::Failed(format!("wrong input {}", request.input)));
            }
            if id.ends_with('9') {
                return Err(WorkError::Failed(
                    "graph raised: tool variables missing".into(),
                ));
            }
            Ok(json!({"status": "COMPLETED", "messages": [format!("ran {id}")]}))
        },
    ));
    let job = json!({
        "id": "two-steps",
        "source": {"type": "ids", "ids": ids(200)},
        "handler": {"type": "steps", "steps": [
            {"name": "ensure", "call": {"type": "nats", "subject": "agents.ensure-thread"}},
            {"name": "execute", "call": {"type": "nats", "subject": "agents.execute", "timeout": "10s"}, "max_retries": 1}
        ]},
        "batch": {"concurrency": 16}
    });
    jobs::submit_plain(&env.bus, job.to_string().as_bytes()).await?;
    let state = jobs::wait_for_end(&env.bus, "two-steps").await?;
    assert_eq!((state.succeeded, state.failed), (180, 20));
    let records = jobs::item_records(&env.bus, "two-steps").await?;
    let done = &records["item-0001"];
    assert_eq!(done.output["status"], "COMPLETED");
    assert_eq!(done.messages.len(), 2);
    let failed = &records["item-0009"];
    assert_eq!(failed.failed_step.as_deref(), Some("execute"));
    assert_eq!(
        failed.error.as_deref(),
        Some("step execute: graph raised: tool variables missing")
    );
    assert_eq!(failed.messages.len(), 1, "the ensure step's output is kept");
    assert_eq!(failed.messages[0].step, "ensure");
    assert_eq!(failed.messages[0].output["thread"], "thread-item-0009");
    stop.cancel();
    ensure.await??;
    execute.await??;
    env.stop_services().await?;
    Ok(())
}

/// Serves `total` ids in pages by cursor on `subject`; returns pages served.
async fn serve_pages(
    client: async_nats::Client,
    subject: &'static str,
    total: usize,
    stop: CancellationToken,
) -> anyhow::Result<usize> {
    let mut requests = client.subscribe(subject).await?;
    let mut served = 0;
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return Ok(served),
            msg = requests.next() => msg.context("subscription ended")?,
        };
        let request: PageRequest = serde_json::from_slice(&msg.payload)?;
        let start: usize = request.cursor.as_deref().unwrap_or("0").parse()?;
        let end = (start + request.limit as usize).min(total);
        let items: Vec<Value> = (start..end)
            .map(|i| json!({"id": format!("p-{i}"), "data": {"n": i}}))
            .collect();
        let reply = json!({"items": items, "next_cursor": (end < total).then(|| end.to_string())});
        let _: PageReply = serde_json::from_value(reply.clone())?;
        client
            .publish(
                msg.reply.context("no reply subject")?,
                reply.to_string().into(),
            )
            .await?;
        served += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_namespaces_on_one_server_run_jobs_without_seeing_each_other() -> anyhow::Result<()> {
    let dev = TestEnv::start("dev").await?;
    let prod = dev.beside("prod").await?;
    prod.start_services();
    let stop = CancellationToken::new();
    // Each environment has its own source and worker subjects, as dev and
    // prod would; the job id is the same in both.
    let pages_dev = tokio::spawn(serve_pages(
        dev.bus.client.clone(),
        "dev.pages",
        1000,
        stop.clone(),
    ));
    let pages_prod = tokio::spawn(serve_pages(
        prod.bus.client.clone(),
        "prod.pages",
        600,
        stop.clone(),
    ));
    for env in [&dev, &prod] {
        let ns = env.bus.names.namespace().to_string();
        let env_name = if ns.starts_with("dev") { "dev" } else { "prod" };
        tokio::spawn(worker::serve(
            env.bus.client.clone(),
            format!("{env_name}.work"),
            stop.clone(),
            move |request| {
                let ns = ns.clone();
                async move { Ok(json!({"ns": ns, "n": request.item.data["n"]})) }
            },
        ));
        let job = json!({
            "id": "same-id",
            "source": {"type": "nats", "subject": format!("{env_name}.pages")},
            "handler": {"type": "nats", "subject": format!("{env_name}.work")},
            "batch": {"fetch_size": 100, "concurrency": 20}
        });
        jobs::submit_plain(&env.bus, job.to_string().as_bytes()).await?;
    }
    let (a, b) = tokio::join!(
        jobs::wait_for_end(&dev.bus, "same-id"),
        jobs::wait_for_end(&prod.bus, "same-id")
    );
    let (a, b) = (a?, b?);
    assert_eq!(
        (a.status, a.succeeded, a.total),
        (JobStatus::Completed, 1000, 1000)
    );
    assert_eq!(
        (b.status, b.succeeded, b.total),
        (JobStatus::Completed, 600, 600)
    );
    for (env, n) in [(&dev, 1000), (&prod, 600)] {
        let records = jobs::item_records(&env.bus, "same-id").await?;
        assert_eq!(records.len(), n);
        let ns = env.bus.names.namespace();
        assert!(
            records.values().all(|r| r.output["ns"] == ns),
            "an item of {ns} was worked by the other namespace's worker"
        );
    }
    stop.cancel();
    assert_eq!(pages_dev.await??, 10, "1,000 items in pages of 100");
    assert_eq!(pages_prod.await??, 6);
    tokio::time::sleep(Duration::from_millis(100)).await;
    dev.stop_services().await?;
    prod.stop_services().await?;
    Ok(())
}

/// No worker serving a `nats` handler's subject is an outage like a target
/// that is down: the breaker opens, nothing fails, and the job completes
/// once a worker appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nats_handler_with_no_worker_yet_waits_behind_its_breaker_and_fails_nothing(
) -> anyhow::Result<()> {
    let env = TestEnv::start("natsdown").await?;
    let job = json!({
        "id": "early",
        "source": {"type": "ids", "ids": ids(100)},
        "handler": {"type": "nats", "subject": "work.late", "timeout": "2s"},
        "batch": {"concurrency": 10, "max_retries": 3, "retry_backoff": "100ms", "max_backoff": "300ms"}
    });
    jobs::submit_plain(&env.bus, job.to_string().as_bytes()).await?;
    // Well past what three retries at ≤300 ms would take without a breaker.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = jobs::state_json(&env.bus, "early")
        .await?
        .context("state")?;
    assert_eq!(
        during["failed"], 0,
        "nothing failed while no worker served: {during}"
    );
    let stop = CancellationToken::new();
    let serving = tokio::spawn(worker::serve(
        env.bus.client.clone(),
        "work.late",
        stop.clone(),
        |request| async move { Ok(json!({"id": request.item.id})) },
    ));
    let state = jobs::wait_for_end(&env.bus, "early").await?;
    assert_eq!(
        (state.status, state.succeeded, state.failed),
        (JobStatus::Completed, 100, 0)
    );
    stop.cancel();
    serving.await??;
    env.stop_services().await?;
    Ok(())
}
