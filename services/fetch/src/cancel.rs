//! Cancel requests on `<ns>.jobs.cancel.<job>`: each becomes a `cancel`
//! entry on the job's ledger, which the reducer folds like anything else —
//! so a cancel is ordered with the job's results and survives any crash.

use async_nats::jetstream::{
    consumer::{pull, AckPolicy},
    kv::Operation,
    Message,
};
use chrono::Utc;
use jetflow_shared::{
    codec, consume,
    job::JobState,
    messages::{CancelRequest, LedgerEntry},
    names, Bus, Result, ResultExt,
};
use tokio_util::sync::CancellationToken;

/// Consumes cancel requests until `shutdown`.
pub async fn run(bus: Bus, shutdown: CancellationToken) {
    let config = pull::Config {
        durable_name: Some(bus.names.cancel_consumer()),
        filter_subject: bus.names.cancel_subject("*"),
        ack_policy: AckPolicy::Explicit,
        ..Default::default()
    };
    let stream = bus.names.jobs_stream();
    consume::one_at_a_time(
        &bus,
        &stream,
        config,
        "cancel request",
        &shutdown,
        |bus, msg| async move { handle(&bus, &msg).await },
    )
    .await
}

async fn handle(bus: &Bus, msg: &Message) -> Result<()> {
    let job = msg.subject.as_str().rsplit('.').next().unwrap_or_default();
    let request = if msg.payload.iter().all(u8::is_ascii_whitespace) {
        Ok(CancelRequest::default())
    } else {
        codec::decode::<CancelRequest>(msg.headers.as_ref(), &msg.payload)
    };
    let request = match request {
        Ok(request) => request,
        Err(err) => {
            return bus
                .dead_letter_message(
                    "fetch",
                    Some(job),
                    &format!("bad cancel request: {err}"),
                    msg,
                )
                .await
        }
    };
    if names::validate_job_id(job).is_err() {
        return bus
            .dead_letter_message(
                "fetch",
                Some(job),
                "cancel request for an invalid job id",
                msg,
            )
            .await;
    }
    let state = match bus.kv.jobs.entry(job).await.ctx("reading job state")? {
        Some(entry) if entry.operation == Operation::Put => {
            codec::decode_as::<JobState>(codec::Format::Json, &entry.value)?
        }
        _ => {
            return bus
                .dead_letter_message("fetch", Some(job), &format!("unknown job {job:?}"), msg)
                .await
        }
    };
    if !state.status.is_active() {
        tracing::info!(job, status = %state.status, "cancel request for a job that is already stopping or ended");
        return Ok(());
    }
    let entry = LedgerEntry::Cancel {
        reason: request.reason,
        at: Utc::now(),
    };
    bus.append_ledger(job, &entry, &format!("{job}:cancel"))
        .await?
        .await
        .ctx("recording the cancel request")?;
    tracing::info!(job, "cancel requested");
    Ok(())
}
