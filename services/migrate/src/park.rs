//! The retry engine: an item whose call must be tried again later waits
//! out its delay *parked* — as a JetStream message schedule on its own
//! retry subject (`<ns>.retry.<job>.<item key>`) in the task stream, which
//! the server publishes back to the job's task subject when it is due.
//!
//! While parked, the item holds nothing: its original task is acked, so it
//! is not one of the job's `max_ack_pending` (the concurrency slots), and
//! no process remembers it, so a crash of any process loses no retry (the
//! schedule is a stored, replicated message). In order, and why:
//!
//! 1. `parked` goes on the job's ledger and is stored — before the
//!    schedule, so that the reducer sees an item parked before it can see
//!    the result of the retried call, and counts it parked once
//!    (`Nats-Msg-Id` from the task's sequence).
//! 2. The schedule is stored, carrying the calls spent so far (and, for a
//!    chain of steps, where it resumes); its `Nats-Msg-Id` and its subject
//!    (one schedule per subject) make a repeat schedule it once.
//! 3. The caller acks the task.
//!
//! A crash before 3 redelivers the task, which repeats 1-2 harmlessly or
//! runs the item again (at least once, same idempotency key); the
//! schedule then finds the item's outcome and adds no call
//! (docs/exactly-once.md, "Retries").

use std::time::Duration;

use async_nats::jetstream::Message;
use chrono::{DateTime, SecondsFormat, Utc};
use jetflow_protocol::{
    codec, headers,
    messages::{LedgerEntry, StepResume, TaskMessage},
};
use jetflow_runtime::{Result, ResultExt};

use crate::context::JobContext;

/// One retry to park.
pub(crate) struct Parking<'a> {
    /// The task as received.
    pub msg: &'a Message,
    /// Its content.
    pub task: &'a TaskMessage,
    /// Its stream sequence.
    pub seq: u64,
    /// Whether it came from a retry schedule (the item is parked already).
    pub from_schedule: bool,
    /// Handler calls the item has made, counting the one that failed.
    pub calls: u32,
    /// How long to wait.
    pub delay: Duration,
    /// What failed.
    pub error: &'a str,
    /// For a chain of steps: where it resumes.
    pub resume: Option<StepResume>,
}

/// Parks the retry; once this returns, the task may be acked.
pub(crate) async fn park(ctx: &JobContext, parking: Parking<'_>) -> Result<()> {
    let until = Utc::now() + chrono::Duration::from_std(parking.delay).unwrap_or_default();
    let entry = LedgerEntry::Parked {
        batch: parking.task.batch,
        id: parking.task.item.id.clone(),
        first: !parking.from_schedule,
        until,
        error: parking.error.to_string(),
    };
    let id = LedgerEntry::parked_msg_id(&ctx.job, parking.seq);
    ctx.bus
        .record_entry(&ctx.job, &entry, &id, "recording the parked retry")
        .await?;
    let (hdrs, payload) = schedule(ctx, &parking, until);
    ctx.bus
        .js
        .publish_with_headers(
            ctx.bus.names.retry_subject(&ctx.job, &parking.task.item.id),
            hdrs,
            payload,
        )
        .await
        .ctx("scheduling the retry")?
        .await
        .ctx("storing the retry schedule")?;
    Ok(())
}

/// The schedule's headers and body: the task (with where a chain resumes),
/// due at `until`, into the job's task subject.
fn schedule(
    ctx: &JobContext,
    parking: &Parking<'_>,
    until: DateTime<Utc>,
) -> (async_nats::HeaderMap, bytes::Bytes) {
    let original = parking.msg.headers.as_ref();
    let content_type = original
        .and_then(|h| h.get(headers::CONTENT_TYPE))
        .map(|v| v.as_str().to_string());
    let mut hdrs = async_nats::HeaderMap::new();
    if let Some(ct) = &content_type {
        hdrs.insert(headers::CONTENT_TYPE, ct.as_str());
    }
    // The trace the task belongs to goes on with it.
    for name in ["traceparent", "tracestate"] {
        if let Some(value) = original.and_then(|h| h.get(name)) {
            hdrs.insert(name, value.clone());
        }
    }
    hdrs.insert(headers::ATTEMPTS, parking.calls.to_string().as_str());
    hdrs.insert(headers::SCHEDULE, schedule_at(until).as_str());
    hdrs.insert(
        headers::SCHEDULE_TARGET,
        ctx.bus.names.task_subject(&ctx.job).as_str(),
    );
    hdrs.insert(
        headers::MSG_ID,
        TaskMessage::retry_msg_id(&ctx.job, parking.seq).as_str(),
    );
    let payload = match &parking.resume {
        None => parking.msg.payload.clone(),
        Some(resume) => {
            let task = TaskMessage {
                resume: Some(resume.clone()),
                ..parking.task.clone()
            };
            if content_type.as_deref() == Some(codec::JSON) {
                codec::to_json(&task)
            } else {
                codec::to_msgpack(&task)
            }
        }
    };
    (hdrs, payload)
}

/// The `Nats-Schedule` value of a one-off schedule due at `at`
/// (RFC 3339, UTC, to the millisecond; the server fires within ~250 ms).
fn schedule_at(at: DateTime<Utc>) -> String {
    format!("@at {}", at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_schedule_is_a_utc_instant_to_the_millisecond() {
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 6, 30, 5).unwrap()
            + chrono::Duration::milliseconds(42);
        assert_eq!(schedule_at(at), "@at 2026-12-02T06:30:05.042Z");
    }
}
