//! Stopping a job: cancel, timeout, a failure policy breached, a failed
//! source. No new item may start; items already running finish and count.
//!
//! The reducer pauses the job's task consumer (the server stops handing out
//! its tasks; migrate stops pulling them once it sees `cancelling`), then
//! waits until no task of the job is in flight — migrate stores an item's
//! result before it acks the task, so by then every result is on the ledger —
//! and appends `drained`, which ends the job when folded.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jetflow_protocol::{
    job::{JobState, JobStatus},
    messages::LedgerEntry,
};
use jetflow_runtime::{nats::task_queue, Bus, Result};

/// Pauses the job's task consumer for good: the job will not run new items.
pub async fn pause_tasks(bus: &Bus, job: &str) -> Result<()> {
    task_queue::pause(bus, job).await
}

/// What the reducer should append to the ledger now, if anything, with
/// its de-duplication id: `drained` once a stopping job has nothing in
/// flight, `timed_out` once an active job's timeout has passed (paused or
/// not: a timeout is a deadline), `resumed` once a timed pause has ended.
pub async fn due_entry(bus: &Bus, state: &JobState) -> Result<Option<(LedgerEntry, String)>> {
    let now = Utc::now();
    if let Some(ended) = pause_ended(state, now) {
        return Ok(Some(ended));
    }
    let entry = stop_due(bus, state, now).await?;
    Ok(entry.and_then(|entry| {
        let id = entry.msg_id(&state.id)?;
        Some((entry, id))
    }))
}

/// `drained` or `timed_out`, when due (both name their fact).
async fn stop_due(bus: &Bus, state: &JobState, now: DateTime<Utc>) -> Result<Option<LedgerEntry>> {
    match state.status {
        JobStatus::Cancelling => {
            if task_queue::in_flight(bus, &state.id).await? == 0 || drain_overdue(state) {
                return Ok(Some(LedgerEntry::Drained { at: now }));
            }
            Ok(None)
        }
        status if status.is_active() => {
            let Some(timeout) = state.spec.timeout else {
                return Ok(None);
            };
            let deadline = state.created_at
                + chrono::Duration::from_std(timeout.get()).unwrap_or(chrono::Duration::MAX);
            if now >= deadline {
                return Ok(Some(LedgerEntry::TimedOut { at: now }));
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// `resumed`, with its id (one per pause end), once a paused job's
/// `paused_until` has passed.
fn pause_ended(state: &JobState, now: DateTime<Utc>) -> Option<(LedgerEntry, String)> {
    let until = state.paused_until?;
    (state.status == JobStatus::Paused && now >= until).then(|| {
        let entry = LedgerEntry::Resumed {
            reason: Some("pause ended".into()),
            at: now,
        };
        (entry, LedgerEntry::pause_ended_msg_id(&state.id, until))
    })
}

/// A worker that died mid-call leaves its task pending until `ack_wait`; a
/// handler cannot run longer than its timeout. Past both, stop waiting.
fn drain_overdue(state: &JobState) -> bool {
    let handler_timeout = state
        .spec
        .handler_timeout()
        .map(|t| t.get())
        .unwrap_or(Duration::from_secs(30));
    let grace = handler_timeout * 2 + Duration::from_secs(30);
    let since = state.stopping_since.unwrap_or(state.updated_at);
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    Utc::now() >= since + grace
}
