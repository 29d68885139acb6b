//! Cancel requests on `<ns>.jobs.cancel.<job>`: each becomes a `cancel`
//! entry on the job's ledger, which the reducer folds like anything else —
//! so a cancel is ordered with the job's results and survives any crash.

use std::time::Duration;

use async_nats::jetstream::{
    consumer::{pull, AckPolicy, PullConsumer},
    kv::Operation,
    AckKind, Message,
};
use chrono::Utc;
use futures::StreamExt;
use jetflow_shared::{
    codec,
    job::JobState,
    messages::{CancelRequest, LedgerEntry},
    names, Bus, DeadLetter, Error, Result, ResultExt,
};
use tokio_util::sync::CancellationToken;

/// Consumes cancel requests until `shutdown`.
pub async fn run(bus: Bus, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        if let Err(err) = consume(&bus, &shutdown).await {
            tracing::warn!(error = %err, "cancel consumer interrupted; restarting");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

async fn consume(bus: &Bus, shutdown: &CancellationToken) -> Result<()> {
    let consumer: PullConsumer = bus
        .js
        .create_consumer_on_stream(
            pull::Config {
                durable_name: Some(bus.names.cancel_consumer()),
                filter_subject: bus.names.cancel_subject("*"),
                ack_policy: AckPolicy::Explicit,
                ..Default::default()
            },
            bus.names.jobs_stream(),
        )
        .await
        .ctx("creating the cancel consumer")?;
    let mut messages = consumer.messages().await.ctx("pulling cancel requests")?;
    loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            next = messages.next() => next,
        };
        match next {
            Some(Ok(msg)) => {
                let ack = match handle(bus, &msg).await {
                    Ok(()) => AckKind::Ack,
                    Err(err) => {
                        tracing::warn!(error = %err, "cancel request not handled; will retry");
                        AckKind::Nak(Some(Duration::from_secs(1)))
                    }
                };
                if let Err(err) = msg.ack_with(ack).await {
                    tracing::warn!(error = %err, "cannot acknowledge cancel request");
                }
            }
            Some(Err(err)) => tracing::warn!(error = %err, "error pulling cancel requests"),
            None => {
                return Err(Error::Nats {
                    context: "pulling cancel requests".into(),
                    message: "stream ended".into(),
                })
            }
        }
    }
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
        Err(err) => return dead_letter(bus, msg, job, &format!("bad cancel request: {err}")).await,
    };
    if names::validate_job_id(job).is_err() {
        return dead_letter(bus, msg, job, "cancel request for an invalid job id").await;
    }
    let state = match bus.kv.jobs.entry(job).await.ctx("reading job state")? {
        Some(entry) if entry.operation == Operation::Put => {
            codec::decode_as::<JobState>(codec::Format::Json, &entry.value)?
        }
        _ => return dead_letter(bus, msg, job, &format!("unknown job {job:?}")).await,
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

async fn dead_letter(bus: &Bus, msg: &Message, job: &str, reason: &str) -> Result<()> {
    let info = msg.info().ok();
    let msg_id = info
        .as_ref()
        .map(|i| format!("{}:{}", i.stream, i.stream_sequence))
        .unwrap_or_else(jetflow_shared::instance_id);
    bus.dead_letter(DeadLetter {
        stage: "fetch",
        job: Some(job),
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
