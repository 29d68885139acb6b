//! Job intake: one submission at a time from `<ns>.jobs.submit`.
//!
//! Accepting is a sequence of idempotent steps — store the spec, create the
//! job's task consumer, create the job state, announce `accepted` — and the
//! submission is acked only after all of them, so a crash anywhere simply
//! repeats them on redelivery.

use async_nats::jetstream::{kv::CreateErrorKind, Message};
use chrono::Utc;
use jetflow_protocol::{
    codec,
    job::{after, parse_submission, Invalid, JobSpec, JobState},
    limits,
    messages::{EventKind, JobEvent, TaskQueue},
    Stage,
};
use jetflow_runtime::{
    nats::{consume, stage_consumers, task_queue},
    process::trace,
    Bus, ResultExt,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Consumes submissions until `shutdown`.
pub async fn run(bus: Bus, shutdown: CancellationToken) {
    consume::one_at_a_time(
        &bus,
        stage_consumers::submissions(&bus.names),
        "submission",
        &shutdown,
        |bus, msg| async move { handle(&bus, &msg).await },
    )
    .await
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
    let new_id = || format!("job-{}", jetflow_runtime::instance_id());
    match parse_submission(msg.headers.as_ref(), &msg.payload, new_id) {
        Ok(spec) => Verdict::Accepted(Box::new(spec)),
        Err(Invalid::Rejected { id, rejection }) => Verdict::Rejected {
            id,
            reason: rejection.to_string(),
        },
        Err(Invalid::Undecodable(reason)) => Verdict::NotAJob(reason),
    }
}

async fn handle(bus: &Bus, msg: &Message) -> jetflow_runtime::Result<()> {
    match judge(msg) {
        Verdict::Accepted(spec) => {
            // The job's root span: a child of the submitter's trace if it
            // sent a `traceparent`. Every stage's spans of the job join it.
            let span = tracing::info_span!("job", job = spec.id.as_deref().unwrap_or(""), kind = %spec.kind);
            let cx = trace::follow(&span, msg.headers.as_ref());
            trace::carrying(cx, accept(bus, *spec).instrument(span)).await
        }
        Verdict::Rejected { id, reason } => reject(bus, &id, &reason).await,
        Verdict::NotAJob(reason) => {
            bus.dead_letter_message(Stage::Fetch, None, &format!("not a job: {reason}"), msg)
                .await
        }
    }
}

async fn accept(bus: &Bus, spec: JobSpec) -> jetflow_runtime::Result<()> {
    let id = spec.id.clone().unwrap_or_default();
    if let Some(reason) = missing_dependency(bus, &spec).await? {
        return reject(bus, &id, &reason).await;
    }
    let spec_json = codec::to_json(&spec);
    match bus.kv.specs.create(&id, spec_json.clone()).await {
        Ok(_) => {}
        Err(err) if err.kind() == CreateErrorKind::AlreadyExists => {
            let stored = bus.kv.specs.get(&id).await.ctx("reading job spec")?;
            if stored.as_deref() != Some(&spec_json[..]) {
                return reject(bus, &id, "id: a different job with this id already exists").await;
            }
            // Same job again: a redelivery after a crash, or a resubmission.
            // Once the job has ended there is nothing to set up again (its
            // task consumer is gone for good).
            if let Some(raw) = bus.kv.jobs.get(&id).await.ctx("reading job state")? {
                let state: JobState = codec::decode_as(codec::Format::Json, &raw)?;
                if state.status.is_terminal() {
                    tracing::info!(job = %id, status = %state.status, "job submitted again after it ended; ignored");
                    return Ok(());
                }
            }
        }
        Err(err) => return Err(err).ctx("storing job spec"),
    }
    task_queue::ensure(bus, &id, &spec).await?;
    let tasks = TaskQueue::of(&bus.names, &id);
    let mut state = JobState::new(&spec, Utc::now());
    state.tasks = Some(tasks.clone());
    // The job's root span's context when exporting, else the submitter's
    // own, passed through: what every message of the job carries.
    state.traceparent = trace::traceparent(&tracing::Span::current());
    match bus.kv.jobs.create(&id, codec::to_json(&state)).await {
        Ok(_) => {}
        Err(err) if err.kind() == CreateErrorKind::AlreadyExists => {}
        Err(err) => return Err(err).ctx("creating job state"),
    }
    let mut accepted = JobEvent::new(&id, EventKind::Accepted);
    accepted.tasks = Some(tasks);
    bus.publish_event(&accepted, None).await?;
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

/// Why `spec` cannot wait for what it names (its `after`, a `job`
/// source), if it cannot: a job that does not exist. (Each dependency
/// existing before the job that names it is also what rules out cycles.)
/// A job accepted before is not asked again: its dependencies may be gone
/// since.
async fn missing_dependency(bus: &Bus, spec: &JobSpec) -> jetflow_runtime::Result<Option<String>> {
    let id = spec.id.as_deref().unwrap_or_default();
    let deps = after::waits_for(spec);
    if deps.is_empty()
        || bus
            .kv
            .specs
            .get(id)
            .await
            .ctx("reading job spec")?
            .is_some()
    {
        return Ok(None);
    }
    for (field, dep) in deps {
        let state = bus
            .kv
            .jobs
            .get(&dep.job)
            .await
            .ctx("reading a dependency")?;
        if state.is_none() {
            return Ok(Some(format!("{field}: there is no job {}", dep.job)));
        }
    }
    Ok(None)
}

async fn reject(bus: &Bus, id: &str, reason: &str) -> jetflow_runtime::Result<()> {
    tracing::info!(job = %id, reason, "job rejected");
    let mut event = JobEvent::new(id, EventKind::Rejected);
    event.reason = Some(reason.to_string());
    bus.publish_event(&event, None).await
}
