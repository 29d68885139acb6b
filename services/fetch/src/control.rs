//! Requests about a running job, each turned into an entry on the job's
//! ledger, which the reducer folds like anything else — so the request is
//! ordered with the job's results and survives any crash:
//!
//! - `<ns>.jobs.cancel.<job>` → `cancel` (an empty body is fine);
//! - `<ns>.jobs.config.<job>` → `config`, a change of live settings
//!   (`{"concurrency": 20}`), validated here;
//! - `<ns>.jobs.pause.<job>` → `paused` (`{"for": "2h"}`, `{"until": ...}`
//!   or empty), and `<ns>.jobs.resume.<job>` → `resumed`, taken in order
//!   from one consumer.
//!
//! A request that cannot be used (bad body, unknown job) is dead-lettered
//! with the reason; one for a job that has already ended is dropped.

use async_nats::jetstream::{kv::Operation, Message};
use chrono::Utc;
use jetflow_protocol::{
    codec,
    job::{ConfigChange, JobState},
    messages::{CancelRequest, LedgerEntry, PauseRequest, ResumeRequest},
    names, Stage,
};
use jetflow_runtime::{
    nats::{consume, stage_consumers},
    process::trace,
    Bus, Result, ResultExt,
};
use tokio_util::sync::CancellationToken;

/// Consumes cancel requests until `shutdown`.
pub async fn cancels(bus: Bus, shutdown: CancellationToken) {
    consume::one_at_a_time(
        &bus,
        stage_consumers::cancels(&bus.names),
        "cancel request",
        &shutdown,
        |bus, msg| async move { cancel(&bus, &msg).await },
    )
    .await
}

/// Consumes settings changes until `shutdown`.
pub async fn config_changes(bus: Bus, shutdown: CancellationToken) {
    consume::one_at_a_time(
        &bus,
        stage_consumers::config_changes(&bus.names),
        "settings change",
        &shutdown,
        |bus, msg| async move { reconfigure(&bus, &msg).await },
    )
    .await
}

/// Consumes pause and resume requests, in the order they were made, until
/// `shutdown`.
pub async fn pauses(bus: Bus, shutdown: CancellationToken) {
    consume::one_at_a_time(
        &bus,
        stage_consumers::pauses(&bus.names),
        "pause or resume request",
        &shutdown,
        |bus, msg| async move {
            if msg.subject.starts_with(&bus.names.resume_subject("")) {
                resume(&bus, &msg).await
            } else {
                pause(&bus, &msg).await
            }
        },
    )
    .await
}

/// The body of a request that may be empty (or only whitespace): the
/// default request.
fn request_body<T: serde::de::DeserializeOwned + Default>(
    msg: &Message,
) -> std::result::Result<T, String> {
    if msg.payload.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        codec::decode::<T>(msg.headers.as_ref(), &msg.payload).map_err(|err| err.to_string())
    }
}

async fn pause(bus: &Bus, msg: &Message) -> Result<()> {
    let now = Utc::now();
    let request = request_body::<PauseRequest>(msg)
        .and_then(|request| Ok((request.ends_at(now)?, request.reason)));
    let (until, reason) = match request {
        Ok(request) => request,
        Err(err) => return refuse(bus, msg, &format!("bad pause request: {err}")).await,
    };
    let Some(Running { id: job, trace: cx }) = running_job(bus, msg, "pause").await? else {
        return Ok(());
    };
    let entry = LedgerEntry::Paused {
        until,
        reason,
        at: now,
    };
    let id = LedgerEntry::pause_msg_id(&job, "pause", request_seq(msg));
    trace::carrying(
        cx,
        bus.record_entry(&job, &entry, &id, "recording the pause request"),
    )
    .await?;
    tracing::info!(job, ?until, "pause requested");
    Ok(())
}

async fn resume(bus: &Bus, msg: &Message) -> Result<()> {
    let request = match request_body::<ResumeRequest>(msg) {
        Ok(request) => request,
        Err(err) => return refuse(bus, msg, &format!("bad resume request: {err}")).await,
    };
    let Some(Running { id: job, trace: cx }) = running_job(bus, msg, "resume").await? else {
        return Ok(());
    };
    let entry = LedgerEntry::Resumed {
        reason: request.reason,
        at: Utc::now(),
    };
    let id = LedgerEntry::pause_msg_id(&job, "resume", request_seq(msg));
    trace::carrying(
        cx,
        bus.record_entry(&job, &entry, &id, "recording the resume request"),
    )
    .await?;
    tracing::info!(job, "resume requested");
    Ok(())
}

async fn cancel(bus: &Bus, msg: &Message) -> Result<()> {
    let request = match request_body::<CancelRequest>(msg) {
        Ok(request) => request,
        Err(err) => return refuse(bus, msg, &format!("bad cancel request: {err}")).await,
    };
    let Some(Running { id: job, trace: cx }) = running_job(bus, msg, "cancel").await? else {
        return Ok(());
    };
    let entry = LedgerEntry::Cancel {
        reason: request.reason,
        at: Utc::now(),
    };
    trace::carrying(
        cx,
        bus.record_fact(&job, &entry, "recording the cancel request"),
    )
    .await?;
    tracing::info!(job, "cancel requested");
    Ok(())
}

async fn reconfigure(bus: &Bus, msg: &Message) -> Result<()> {
    let change = codec::decode::<ConfigChange>(msg.headers.as_ref(), &msg.payload)
        .map_err(|err| err.to_string())
        .and_then(|change| {
            change.validate().map_err(|r| r.to_string())?;
            Ok(change)
        });
    let change = match change {
        Ok(change) => change,
        Err(err) => return refuse(bus, msg, &format!("bad settings change: {err}")).await,
    };
    let Some(Running { id: job, trace: cx }) = running_job(bus, msg, "settings change").await?
    else {
        return Ok(());
    };
    // One ledger entry per request, however often it is redelivered.
    let entry = LedgerEntry::Config {
        change: change.clone(),
        at: Utc::now(),
    };
    let id = LedgerEntry::config_msg_id(&job, request_seq(msg));
    trace::carrying(
        cx,
        bus.record_entry(&job, &entry, &id, "recording the settings change"),
    )
    .await?;
    tracing::info!(job, ?change, "settings change requested");
    Ok(())
}

/// A running job a request is for.
struct Running {
    id: String,
    /// The job's trace context: its ledger entries carry it, whoever asked.
    trace: trace::TraceContext,
}

/// The job a request on `<ns>.jobs.<kind>.<job>` is for, if it is still
/// running; dead-letters requests for invalid or unknown jobs.
async fn running_job(bus: &Bus, msg: &Message, what: &str) -> Result<Option<Running>> {
    let job = msg.subject.as_str().rsplit('.').next().unwrap_or_default();
    if names::validate_job_id(job).is_err() {
        refuse(bus, msg, &format!("{what} for an invalid job id")).await?;
        return Ok(None);
    }
    let state = match bus.kv.jobs.entry(job).await.ctx("reading job state")? {
        Some(entry) if entry.operation == Operation::Put => {
            codec::decode_as::<JobState>(codec::Format::Json, &entry.value)?
        }
        _ => {
            refuse(bus, msg, &format!("{what} for unknown job {job:?}")).await?;
            return Ok(None);
        }
    };
    if !state.status.is_active() {
        tracing::info!(job, status = %state.status, "{what} for a job that is already stopping or ended");
        return Ok(None);
    }
    Ok(Some(Running {
        id: job.to_string(),
        trace: trace::remote(state.traceparent.as_deref()),
    }))
}

/// The request's sequence in the jobs stream: what its ledger entry's id
/// is made of, so a redelivered request is recorded once.
fn request_seq(msg: &Message) -> u64 {
    msg.info().map(|i| i.stream_sequence).unwrap_or_default()
}

async fn refuse(bus: &Bus, msg: &Message, reason: &str) -> Result<()> {
    let job = msg.subject.as_str().rsplit('.').next();
    bus.dead_letter_message(Stage::Fetch, job, reason, msg)
        .await
}
