//! Telling the world what a fold changed: batch records (KV), batch and
//! job lifecycle events, and the log lines an operator follows a job by
//! (docs/observability.md).
//!
//! These run *before* the job state is checkpointed. They are derived
//! deterministically from the ledger, so a reducer that folds the same
//! entries again after a crash writes the same records and the same events
//! (events de-duplicate by id) — and anyone who sees a `batch_done` event
//! can rely on it, because the state that lets fetch move on comes after.

use chrono::Utc;
use futures::future::try_join_all;
use jetflow_protocol::{
    codec,
    job::{BatchRecord, BatchStatus, JobState, OpenBatch},
    messages::{EventKind, JobEvent},
    names::Names,
};
use jetflow_runtime::{Bus, Result, ResultExt};

use crate::fold::Effects;

/// Writes the batch records and publishes the batch events of `effects`.
pub async fn batches(bus: &Bus, state: &JobState, effects: &Effects) -> Result<()> {
    let open = effects.touched.iter().filter_map(|batch| {
        state
            .open_batches
            .get(batch)
            .map(|open| record(&state.id, *batch, open, false))
    });
    let finished = effects
        .finished_batches
        .iter()
        .map(|(batch, open)| record(&state.id, *batch, open, true));
    let writes = open.chain(finished).map(|record| {
        let key = Names::batch_key(&record.job, record.batch);
        let value = codec::to_json(&record);
        async move {
            bus.kv
                .batches
                .put(key, value)
                .await
                .ctx("writing batch record")
        }
    });
    try_join_all(writes).await?;

    let events = effects.finished_batches.iter().map(|(batch, open)| {
        let mut event = JobEvent::new(&state.id, EventKind::BatchDone);
        event.batch = Some(*batch);
        event.total = Some(open.size);
        event.succeeded = Some(open.succeeded);
        event.failed = Some(open.failed);
        async move { bus.publish_event(&event, Some(*batch)).await }
    });
    try_join_all(events).await?;
    for (batch, open) in &effects.finished_batches {
        // One line per finished batch with the job's running total, so a
        // job can be followed in the logs alone (docs/observability.md).
        tracing::info!(
            job = %state.id,
            batch,
            succeeded = open.succeeded,
            failed = open.failed,
            size = open.size,
            total_done = state.succeeded + state.failed,
            total_succeeded = state.succeeded,
            total_failed = state.failed,
            "batch {batch} completed: {}/{} successful, {} failed; total: {} items ({} successful, {} failed)",
            open.succeeded, open.size, open.failed,
            state.succeeded + state.failed, state.succeeded, state.failed,
        );
    }
    Ok(())
}

/// Publishes a `paused` or `resumed` event for each pause and resume the
/// fold took in (de-duplicated by the ledger entry's sequence).
pub async fn pauses(bus: &Bus, state: &JobState, effects: &Effects) -> Result<()> {
    for change in &effects.pauses {
        let kind = match change.paused {
            Some(_) => EventKind::Paused,
            None => EventKind::Resumed,
        };
        let mut event = JobEvent::new(&state.id, kind);
        event.reason = change.reason.clone();
        bus.publish_event(&event, Some(change.seq)).await?;
    }
    Ok(())
}

/// The final event of the job `state` ends: its status, tally, reason and
/// reductions (also what its notifications send).
pub fn final_event(state: &JobState) -> JobEvent {
    let kind = match state.status {
        jetflow_protocol::job::JobStatus::Completed => EventKind::Completed,
        jetflow_protocol::job::JobStatus::Partial => EventKind::Partial,
        jetflow_protocol::job::JobStatus::Cancelled => EventKind::Cancelled,
        _ => EventKind::Failed,
    };
    let mut event = JobEvent::new(&state.id, kind);
    event.reason = state.reason.clone();
    event.total = Some(state.total);
    event.succeeded = Some(state.succeeded);
    event.failed = Some(state.failed);
    event.results = state.results.clone();
    event
}

/// Publishes the job's final event and logs its tally.
pub async fn ended(bus: &Bus, state: &JobState) -> Result<()> {
    bus.publish_event(&final_event(state), None).await?;
    tracing::info!(
        job = %state.id,
        status = %state.status,
        total = state.total,
        succeeded = state.succeeded,
        failed = state.failed,
        retries = state.retries,
        dead_lettered = state.dead_lettered,
        rate = state.rate().map(|r| format!("{r:.0}/s")).unwrap_or_default(),
        reason = state.reason.as_deref().unwrap_or(""),
        "job {}: {} items ({} successful, {} failed)",
        state.status, state.total, state.succeeded, state.failed,
    );
    Ok(())
}

fn record(job: &str, batch: u64, open: &OpenBatch, finished: bool) -> BatchRecord {
    let status = match (finished, open.failed > 0, open.dispatched_at.is_some()) {
        (true, true, _) => BatchStatus::Partial,
        (true, false, _) => BatchStatus::Completed,
        (false, _, true) => BatchStatus::Processing,
        (false, _, false) => BatchStatus::Pending,
    };
    BatchRecord {
        job: job.to_string(),
        batch,
        status,
        size: open.size,
        succeeded: open.succeeded,
        failed: open.failed,
        fetched_at: open.fetched_at,
        dispatched_at: open.dispatched_at,
        finished_at: finished.then(Utc::now),
    }
}
