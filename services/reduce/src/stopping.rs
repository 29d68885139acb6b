//! Stopping a job: cancel, timeout, a failure policy breached, a failed
//! source. No new item may start; items already running finish and count.
//!
//! The reducer pauses the job's task consumer (the server stops handing out
//! its tasks; migrate stops pulling them once it sees `cancelling`), then
//! waits until no task of the job is in flight — migrate stores an item's
//! result before it acks the task, so by then every result is on the ledger —
//! and appends `drained`, which ends the job when folded.

use std::time::Duration;

use async_nats::jetstream::consumer::Info;
use chrono::Utc;
use jetflow_shared::{
    job::{JobState, JobStatus},
    messages::LedgerEntry,
    Bus, Result, ResultExt,
};

/// Pauses the job's task consumer for good: the job will not run new items.
pub async fn pause_tasks(bus: &Bus, job: &str) -> Result<()> {
    let names = &bus.names;
    let stream = bus
        .js
        .get_stream(names.tasks_stream())
        .await
        .ctx("opening tasks stream")?;
    let forever = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
    match stream
        .pause_consumer(&names.task_consumer(job), forever)
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if err.to_string().contains("not found") => Ok(()),
        Err(err) => Err(err).ctx("pausing the job's tasks"),
    }
}

/// What the reducer should append to the ledger now, if anything: `drained`
/// once a stopping job has nothing in flight, `timed_out` once an active
/// job's timeout has passed.
pub async fn due_entry(bus: &Bus, state: &JobState) -> Result<Option<(LedgerEntry, String)>> {
    let now = Utc::now();
    match state.status {
        JobStatus::Cancelling => {
            if in_flight(bus, &state.id).await? == 0 || drain_overdue(state) {
                let entry = LedgerEntry::Drained { at: now };
                return Ok(Some((entry, format!("{}:drained", state.id))));
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
                let entry = LedgerEntry::TimedOut { at: now };
                return Ok(Some((entry, format!("{}:timeout", state.id))));
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// Tasks of the job handed out and not yet acknowledged.
async fn in_flight(bus: &Bus, job: &str) -> Result<usize> {
    let names = &bus.names;
    let info: std::result::Result<Info, _> = bus
        .js
        .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
            names.task_consumer(job),
            names.tasks_stream(),
        )
        .await
        .map(|consumer| consumer.cached_info().clone());
    match info {
        Ok(info) => Ok(info.num_ack_pending),
        Err(err) if err.to_string().contains("not found") => Ok(0),
        Err(err) => Err(err).ctx("reading the job's tasks in flight"),
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
