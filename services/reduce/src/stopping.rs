//! Stopping a job: cancel, timeout, a failure policy breached, a failed
//! source. No new item may start; items already running finish and count.
//!
//! The reducer pauses the job's task consumer (the server stops handing out
//! its tasks; migrate stops pulling them once it sees `cancelling`), then
//! waits until no task of the job is in flight — migrate stores an item's
//! result before it acks the task, so by then every result is on the ledger —
//! and appends `drained`, which ends the job when folded.

use std::time::Duration;

use chrono::Utc;
use jetflow_protocol::{
    job::{JobState, JobStatus},
    messages::LedgerEntry,
};
use jetflow_runtime::{nats::task_queue, Bus, Result};

/// Pauses the job's task consumer for good: the job will not run new items.
pub async fn pause_tasks(bus: &Bus, job: &str) -> Result<()> {
    task_queue::pause(bus, job).await
}

/// What the reducer should append to the ledger now, if anything: `drained`
/// once a stopping job has nothing in flight, `timed_out` once an active
/// job's timeout has passed.
pub async fn due_entry(bus: &Bus, state: &JobState) -> Result<Option<LedgerEntry>> {
    let now = Utc::now();
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
