//! Fetch never runs more than `max_inflight_batches` ahead of the reducer.

use std::collections::BTreeSet;

use futures::StreamExt;
use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{jobs, TestEnv};
use jetflow_protocol::{
    codec,
    job::JobStatus,
    messages::{BatchMessage, JobEvent},
};
use serde_json::json;

/// docs/design.md, invariant 3: measured from the outside by watching batches being
/// published and `batch_done` events — both subjects on one subscription,
/// so they arrive in the order the server routed them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_thousand_items_never_have_more_than_two_unreduced_batches() -> anyhow::Result<()> {
    let env = TestEnv::start("inflight").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 5000,
        latency: std::time::Duration::from_millis(1),
        ..Default::default()
    })
    .await?;
    let bus = &env.bus;
    let job = "bounded";
    // One subscription, not two merged with `select`: messages of one
    // subscription arrive in the order the server routed them, while a
    // `select` over two may hand out two batches before an event that came
    // between them (it switches preference on every poll, even a pending one).
    let batch_subject = bus.names.batch_subject(job);
    let done_subject = bus.names.event_subject(job, "batch_done");
    let mut merged = bus
        .client
        .subscribe(format!("{}.>", bus.names.namespace()))
        .await?
        .filter_map(|msg| {
            let is_batch = msg.subject.as_str() == batch_subject;
            let is_done = msg.subject.as_str() == done_subject;
            std::future::ready((is_batch || is_done).then_some((is_batch, msg)))
        })
        .boxed();
    let spec = jobs::agents_job(
        job,
        &mock,
        json!({"max_inflight_batches": 2, "concurrency": 50}),
    );
    jobs::submit_plain(bus, spec.to_string().as_bytes()).await?;

    let mut published = BTreeSet::new();
    let mut done = BTreeSet::new();
    let mut most_in_flight = 0;
    while done.len() < 100 {
        let next = tokio::time::timeout(jobs::JOB_DEADLINE, merged.next()).await?;
        let Some((is_batch, msg)) = next else { break };
        if is_batch {
            let batch: BatchMessage = codec::decode(msg.headers.as_ref(), &msg.payload)?;
            published.insert(batch.batch);
        } else {
            let event: JobEvent = codec::decode(msg.headers.as_ref(), &msg.payload)?;
            done.insert(event.batch.unwrap_or_default());
        }
        let in_flight = published.difference(&done).count();
        most_in_flight = most_in_flight.max(in_flight);
        assert!(
            in_flight <= 2,
            "{in_flight} unreduced batches: published {published:?}, done {done:?}"
        );
    }
    assert_eq!(published.len(), 100);
    assert_eq!(
        most_in_flight, 2,
        "the bound should be reached, or this test measures nothing"
    );

    let state = jobs::wait_for_end(bus, job).await?;
    assert_eq!(
        (state.status, state.succeeded, state.batches_done),
        (JobStatus::Completed, 5000, 100)
    );
    assert_eq!(mock.stats().migrated, 5000);
    env.stop_services().await?;
    Ok(())
}
