//! Notifications of a job's end (issue 14, part 6): the final event POSTed
//! to a webhook (and published on a subject) at least once, with the key
//! `<job>:<status>` — through receiver failures, a receiver that is down
//! until after the job ended, and SIGKILLs of reduce around the end; an
//! undeliverable one is dead-lettered and the job's status stays.

use std::time::Duration;

use futures::StreamExt;
use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{jobs, webhook::Webhook, ServiceProcesses, TestEnv};
use jetflow_protocol::{job::JobStatus, Stage};
use serde_json::{json, Value};

async fn mock(agents: usize, permanent_rate: f64) -> anyhow::Result<MockAgents> {
    MockAgents::start(MockAgentsConfig {
        agents,
        permanent_rate,
        seed: 5,
        ..Default::default()
    })
    .await
}

/// Waits until `hook` has delivered at least one request, or 60 s pass.
async fn first_delivery(hook: &Webhook) -> anyhow::Result<Vec<jetflow_e2e::webhook::Received>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        let delivered = hook.delivered();
        if !delivered.is_empty() {
            return Ok(delivered);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("nothing delivered to {}: {:?}", hook.url, hook.received())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_jobs_end_is_posted_and_published_with_its_key_through_failures() -> anyhow::Result<()> {
    let env = TestEnv::start("notify").await?;
    let mock = mock(300, 0.02).await?;
    let broken = mock.permanent_failures().len() as u64;
    assert!(broken > 0);
    let (hook, never) = (Webhook::start().await?, Webhook::start().await?);
    hook.fail_next(2); // delivered at the third attempt
    let mut ops = env.bus.client.subscribe("ops.jobs").await?;
    let mut spec = jobs::agents_job("told", &mock, json!({}));
    spec["notify"] = json!([
        {"url": hook.url, "on": ["completed", "partial"]},
        {"subject": "ops.jobs"},
        {"url": never.url, "on": ["failed", "cancelled"]},
    ]);
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    let state = jobs::wait_for_end(&env.bus, "told").await?;
    assert_eq!(state.status, JobStatus::Partial);

    let delivered = first_delivery(&hook).await?;
    assert_eq!(delivered.len(), 1, "{:?}", hook.received());
    assert_eq!(hook.received().len(), 3, "two 503s, then the delivery");
    let got = &delivered[0];
    assert_eq!(got.key.as_deref(), Some("told:partial"));
    assert_eq!(got.body["event"], "partial");
    assert_eq!(got.body["total"], json!(300));
    assert_eq!(got.body["failed"], json!(broken));
    assert_eq!(got.body["succeeded"], json!(300 - broken));

    let msg = tokio::time::timeout(Duration::from_secs(30), ops.next())
        .await?
        .ok_or_else(|| anyhow::anyhow!("no message on ops.jobs"))?;
    assert_eq!(
        jobs::header(&msg.headers, "Idempotency-Key").as_deref(),
        Some("told:partial")
    );
    let event: Value = serde_json::from_slice(&msg.payload)?;
    assert_eq!(event["succeeded"], json!(300 - broken));

    // Not for this status: never sent.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(never.received().is_empty(), "{:?}", never.received());
    env.stop_services().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_that_is_down_gets_it_when_it_comes_back() -> anyhow::Result<()> {
    let env = TestEnv::start("notify-down").await?;
    let mock = mock(50, 0.0).await?;
    let mut hook = Webhook::down().await?;
    let mut spec = jobs::agents_job("later", &mock, json!({}));
    spec["notify"] = json!([{"url": hook.url}]);
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    let state = jobs::wait_for_end(&env.bus, "later").await?;
    assert_eq!(state.status, JobStatus::Completed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    hook.come_up().await?;
    let delivered = first_delivery(&hook).await?;
    assert_eq!(delivered[0].key.as_deref(), Some("later:completed"));
    assert_eq!(delivered[0].body["succeeded"], json!(50));
    env.stop_services().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_undeliverable_notification_is_dead_lettered_and_the_job_keeps_its_status(
) -> anyhow::Result<()> {
    let env = TestEnv::bare("notify-dlq").await?;
    let mut reduce = jetflow_reduce::Config::new(env.nats.clone());
    reduce.notify_attempts = 3;
    env.start_services_with(reduce);
    let mock = mock(20, 0.0).await?;
    let hook = Webhook::start().await?;
    hook.always_answer(500);
    let mut spec = jobs::agents_job("unheard", &mock, json!({}));
    spec["notify"] = json!([{"url": format!("{}?token=s3cret", hook.url)}]);
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    jobs::wait_for_end(&env.bus, "unheard").await?;

    let filter = env
        .bus
        .names
        .dlq_filter(Some(Stage::Reduce), Some("unheard"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let letters = loop {
        let letters = jobs::stream_messages(&env.bus, &env.bus.names.dlq_stream(), &filter).await?;
        if !letters.is_empty() || tokio::time::Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(letters.len(), 1, "one dead letter");
    let error = jobs::header(&letters[0].1, "Jetflow-Error").unwrap_or_default();
    assert!(
        error.contains("undeliverable after 3 attempts: HTTP 500"),
        "{error}"
    );
    assert!(
        !error.contains("s3cret"),
        "the URL's token is not kept: {error}"
    );
    assert_eq!(hook.received().len(), 3);
    let state = jobs::wait_for_end(&env.bus, "unheard").await?;
    assert_eq!(state.status, JobStatus::Completed);
    env.stop_services().await?;
    Ok(())
}

/// SIGKILLs of reduce as the job ends and just after: the receiver gets it,
/// every copy with the same key and the exact tally.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkills_of_reduce_around_the_end_repeat_it_at_most_with_the_same_key(
) -> anyhow::Result<()> {
    let env = TestEnv::bare("notify-kill").await?;
    let mut services = ServiceProcesses::start(&env.nats)?;
    let reduce = services
        .pids()
        .iter()
        .position(|(name, _)| name == "jetflow-reduce")
        .ok_or_else(|| anyhow::anyhow!("no reduce"))?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 2_000,
        permanent_rate: 0.01,
        latency: Duration::from_millis(2),
        seed: 8,
        ..Default::default()
    })
    .await?;
    let broken = mock.permanent_failures().len() as u64;
    let hook = Webhook::start().await?;
    let mut spec = jobs::agents_job("killed", &mock, json!({"concurrency": 20}));
    spec["notify"] = json!([{"url": hook.url}]);
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;

    jobs::wait_for_state(&env.bus, "killed", |s| s.done() >= 1_800).await?;
    services.kill_and_restart(reduce)?;
    let state = jobs::wait_for_end(&env.bus, "killed").await?;
    // And again as the notification goes out.
    services.kill_and_restart(reduce)?;
    assert_eq!(state.status, JobStatus::Partial);

    first_delivery(&hook).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let delivered = hook.delivered();
    assert!(!delivered.is_empty());
    for got in &delivered {
        assert_eq!(got.key.as_deref(), Some("killed:partial"));
        assert_eq!(got.body["succeeded"], json!(2_000 - broken));
        assert_eq!(got.body["failed"], json!(broken));
    }
    eprintln!("delivered {} time(s)", delivered.len());
    services.check_running()?;
    Ok(())
}
