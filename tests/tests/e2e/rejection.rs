//! Bad input: rejected with the field named, dead-lettered when it is not a
//! job at all, and the services keep serving.

use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{jobs, TestEnv};
use jetflow_protocol::{job::JobStatus, Stage};
use serde_json::json;

/// docs/design.md, invariant 5: a bad job is rejected naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_jobs_are_rejected_with_the_field_and_the_next_job_completes() -> anyhow::Result<()>
{
    let env = TestEnv::start("reject").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 100,
        ..Default::default()
    })
    .await?;
    let bus = &env.bus;

    let mut unknown_source = jobs::agents_job("bad-source", &mock, json!({}));
    unknown_source["source"] = json!({"type": "ftp", "url": "ftp://x"});
    jobs::submit_plain(bus, unknown_source.to_string().as_bytes()).await?;

    let mut no_url = jobs::agents_job("no-url", &mock, json!({}));
    no_url["handler"] = json!({"type": "http", "method": "POST"});
    jobs::submit_plain(bus, no_url.to_string().as_bytes()).await?;

    let malformed = br#"{"id": "broken", "source": {"type": "ids", "#;
    jobs::submit_plain(bus, malformed).await?;

    let too_big_pages = jobs::agents_job("big-pages", &mock, json!({"fetch_size": 100}));
    jobs::submit_plain(bus, too_big_pages.to_string().as_bytes()).await?;

    let valid = jobs::agents_job("after-all-that", &mock, json!({}));
    jobs::submit_plain(bus, valid.to_string().as_bytes()).await?;

    let rejected = jobs::wait_for_event(bus, "bad-source", "rejected").await?;
    let reason = rejected.reason.unwrap_or_default();
    assert!(
        reason.starts_with("source.type:") && reason.contains("ftp"),
        "{reason}"
    );

    let rejected = jobs::wait_for_event(bus, "no-url", "rejected").await?;
    let reason = rejected.reason.unwrap_or_default();
    assert!(
        reason.starts_with("handler") && reason.contains("`url`"),
        "{reason}"
    );

    // Rejected jobs are never half-started.
    assert!(jobs::state_json(bus, "bad-source").await?.is_none());
    assert!(jobs::state_json(bus, "no-url").await?.is_none());

    // The source refuses pages of 100: the job fails at once with its answer.
    let failed = jobs::wait_for_end(bus, "big-pages").await?;
    assert_eq!(failed.status, JobStatus::Failed);
    let reason = failed.reason.unwrap_or_default();
    assert!(
        reason.contains("batch.fetch_size=100")
            && reason.contains("400")
            && reason.contains("limit must be at most 50"),
        "{reason}"
    );
    assert_eq!(mock.stats().refused_pages, 1, "a refusal is not retried");
    let event = jobs::wait_for_event(bus, "big-pages", "failed").await?;
    assert!(event.reason.unwrap_or_default().contains("fetch_size"));

    // The malformed body is in the DLQ, as it came, with the reason.
    let dlq = jobs::stream_messages(
        bus,
        &bus.names.dlq_stream(),
        &bus.names.dlq_subject(Stage::Fetch, "_"),
    )
    .await?;
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    let (_, headers, payload) = &dlq[0];
    assert_eq!(&payload[..], &malformed[..]);
    assert_eq!(
        jobs::header(headers, "Jetflow-Stage").as_deref(),
        Some("fetch")
    );
    let error = jobs::header(headers, "Jetflow-Error").unwrap_or_default();
    assert!(
        error.contains("not a job") && error.contains("EOF"),
        "{error}"
    );
    assert_eq!(
        jobs::header(headers, "Jetflow-Original-Subject"),
        Some(bus.names.submit_subject())
    );

    // And the services kept serving.
    let done = jobs::wait_for_end(bus, "after-all-that").await?;
    assert_eq!((done.status, done.succeeded), (JobStatus::Completed, 100));
    env.stop_services().await?;
    Ok(())
}

/// A job published again after it ended (a plain `nats pub` has no
/// de-duplication id) changes nothing: no task consumer comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_submitted_again_sets_nothing_up() -> anyhow::Result<()> {
    let env = jetflow_e2e::TestEnv::start("again").await?;
    let bus = &env.bus;
    let job = serde_json::json!({
        "id": "once", "source": {"type": "ids", "ids": ["a", "b"]},
        "handler": {"type": "nats", "subject": "nobody.home", "timeout": "1s"},
        "batch": {"max_retries": 0}
    });
    jobs::submit_plain(bus, job.to_string().as_bytes()).await?;
    let first = jobs::wait_for_end(bus, "once").await?;
    jobs::submit_plain(bus, job.to_string().as_bytes()).await?;
    // Wait until fetch has taken the second submission.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = bus
            .js
            .get_stream(bus.names.jobs_stream())
            .await?
            .get_consumer(&bus.names.fetch_consumer())
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let info = consumer.info().await?;
        if info.num_pending == 0 && info.num_ack_pending == 0 && info.delivered.stream_sequence >= 2
        {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "fetch never took it: {info:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let tasks = bus.js.get_stream(bus.names.tasks_stream()).await?;
    let consumer: Result<async_nats::jetstream::consumer::PullConsumer, _> =
        tasks.get_consumer(&bus.names.task_consumer("once")).await;
    assert!(consumer.is_err(), "the ended job's task consumer came back");
    let state = jobs::wait_for_end(bus, "once").await?;
    assert_eq!((state.status, state.failed), (first.status, 2));
    env.stop_services().await?;
    Ok(())
}
