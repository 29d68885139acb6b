//! Job intake: one submission at a time from `<ns>.jobs.submit`.
//!
//! Accepting is a sequence of idempotent steps — store the spec, create the
//! job's task consumer, create the job state, announce `accepted` — and the
//! submission is acked only after all of them, so a crash anywhere simply
//! repeats them on redelivery.

use std::time::Duration;

use async_nats::jetstream::{
    consumer::{pull, AckPolicy, PullConsumer},
    kv::CreateErrorKind,
    AckKind, Message,
};
use chrono::Utc;
use futures::StreamExt;
use jetflow_shared::{
    codec,
    job::{parse_submission, Invalid, JobSpec, JobState},
    limits,
    messages::{EventKind, JobEvent},
    Bus, DeadLetter, Error, ResultExt,
};
use tokio_util::sync::CancellationToken;

/// Consumes submissions until `shutdown`.
pub async fn run(bus: Bus, shutdown: CancellationToken) {
    loop {
        match consume(&bus, &shutdown).await {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!(error = %err, "submission consumer interrupted; restarting");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

async fn consume(bus: &Bus, shutdown: &CancellationToken) -> jetflow_shared::Result<()> {
    let consumer: PullConsumer = bus
        .js
        .create_consumer_on_stream(
            pull::Config {
                durable_name: Some(bus.names.fetch_consumer()),
                filter_subject: bus.names.submit_subject(),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
            bus.names.jobs_stream(),
        )
        .await
        .ctx("creating the submission consumer")?;
    let mut messages = consumer.messages().await.ctx("pulling submissions")?;
    loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            next = messages.next() => next,
        };
        match next {
            Some(Ok(msg)) => handle(bus, msg).await,
            Some(Err(err)) => tracing::warn!(error = %err, "error pulling submissions"),
            None => {
                return Err(Error::Nats {
                    context: "pulling submissions".into(),
                    message: "stream ended".into(),
                })
            }
        }
    }
}

/// What became of one submission.
#[derive(Debug)]
enum Verdict {
    Accepted(Box<JobSpec>),
    Rejected { id: String, reason: String },
    NotAJob(String),
}

fn judge(msg: &Message) -> Verdict {
    if let Some(reason) = limits::oversized(msg.payload.len(), limits::MAX_SUBMISSION_BYTES) {
        return Verdict::NotAJob(reason);
    }
    let new_id = || format!("job-{}", jetflow_shared::instance_id());
    match parse_submission(msg.headers.as_ref(), &msg.payload, new_id) {
        Ok(spec) => Verdict::Accepted(Box::new(spec)),
        Err(Invalid::Rejected { id, rejection }) => Verdict::Rejected {
            id,
            reason: rejection.to_string(),
        },
        Err(Invalid::Undecodable(reason)) => Verdict::NotAJob(reason),
    }
}

async fn handle(bus: &Bus, msg: Message) {
    let result = match judge(&msg) {
        Verdict::Accepted(spec) => accept(bus, *spec).await,
        Verdict::Rejected { id, reason } => reject(bus, &id, &reason).await,
        Verdict::NotAJob(reason) => dead_letter(bus, &msg, &format!("not a job: {reason}")).await,
    };
    let ack = match result {
        Ok(()) => AckKind::Ack,
        Err(err) => {
            tracing::warn!(error = %err, "submission not handled; will retry");
            AckKind::Nak(Some(Duration::from_secs(1)))
        }
    };
    if let Err(err) = msg.ack_with(ack).await {
        tracing::warn!(error = %err, "cannot acknowledge submission");
    }
}

async fn accept(bus: &Bus, spec: JobSpec) -> jetflow_shared::Result<()> {
    let id = spec.id.clone().unwrap_or_default();
    let spec_json = codec::to_json(&spec);
    match bus.kv.specs.create(&id, spec_json.clone()).await {
        Ok(_) => {}
        Err(err) if err.kind() == CreateErrorKind::AlreadyExists => {
            let stored = bus.kv.specs.get(&id).await.ctx("reading job spec")?;
            if stored.as_deref() != Some(&spec_json[..]) {
                return reject(bus, &id, "id: a different job with this id already exists").await;
            }
            // Same job again: a redelivery after a crash, or a resubmission.
        }
        Err(err) => return Err(err).ctx("storing job spec"),
    }
    bus.ensure_task_consumer(&id, &spec).await?;
    let state = JobState::new(&spec, Utc::now());
    match bus.kv.jobs.create(&id, codec::to_json(&state)).await {
        Ok(_) => {}
        Err(err) if err.kind() == CreateErrorKind::AlreadyExists => {}
        Err(err) => return Err(err).ctx("creating job state"),
    }
    bus.publish_event(&JobEvent::new(&id, EventKind::Accepted), None)
        .await?;
    let settings = spec.settings();
    tracing::info!(
        job = %id,
        kind = %spec.kind,
        source = spec.source.type_name(),
        handler = spec.handler.type_name(),
        fetch_size = settings.fetch_size,
        concurrency = settings.concurrency,
        "job accepted"
    );
    Ok(())
}

async fn reject(bus: &Bus, id: &str, reason: &str) -> jetflow_shared::Result<()> {
    tracing::info!(job = %id, reason, "job rejected");
    let mut event = JobEvent::new(id, EventKind::Rejected);
    event.reason = Some(reason.to_string());
    bus.publish_event(&event, None).await
}

async fn dead_letter(bus: &Bus, msg: &Message, reason: &str) -> jetflow_shared::Result<()> {
    let info = msg.info().ok();
    let msg_id = info
        .as_ref()
        .map(|i| format!("{}:{}", i.stream, i.stream_sequence))
        .unwrap_or_else(jetflow_shared::instance_id);
    bus.dead_letter(DeadLetter {
        stage: "fetch",
        job: None,
        item: None,
        error: reason,
        attempts: info.map(|i| i.delivered).unwrap_or(1),
        original_subject: msg.subject.as_str(),
        original_headers: msg.headers.as_ref(),
        payload: msg.payload.clone(),
        msg_id: &msg_id,
    })
    .await
}
